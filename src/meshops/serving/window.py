"""Reading the prediction log back: chunks -> one Arrow table, windows for monitors, and
the ODPS/ODCS documents of the prediction-log data product."""

from __future__ import annotations

import json
from datetime import datetime
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from meshops.serving.predlog import log_schema

if TYPE_CHECKING:
    from meshops.kernel.blobs import BlobStore
    from meshops.serving.models import Endpoint

BASE = ["request_id", "record", "model", "model_version", "role", "time", "latency_ms"]
PORT = "predictions"


def read_chunks(blobs: BlobStore, chunks: list[Any]) -> pa.Table:
    tables = [pq.read_table(pa.BufferReader(blobs.get_bytes(c.digest))) for c in chunks]
    if not tables:
        return log_schema().empty_table()
    return pa.concat_tables(tables)


def read_window(
    blobs: BlobStore,
    chunks: list[Any],
    start: datetime | None,
    end: datetime | None,
    include_shadow: bool,
) -> pa.Table:
    table = read_chunks(blobs, chunks)
    mask = None
    time_type = log_schema().field("time").type
    if start is not None:
        mask = pc.greater_equal(table["time"], pa.scalar(start, type=time_type))
    if end is not None:
        upper = pc.less(table["time"], pa.scalar(end, type=time_type))
        mask = upper if mask is None else pc.and_(mask, upper)
    if not include_shadow:
        served = pc.not_equal(table["role"], "shadow")
        mask = served if mask is None else pc.and_(mask, served)
    if mask is not None:
        table = table.filter(mask)
    return table.sort_by([("time", "ascending"), ("request_id", "ascending")])


def expand(raw: pa.Table, labels: dict[tuple[str, int], Any] | None) -> pa.Table:
    """One column per input and feature instead of the stored JSON objects."""
    inputs = [json.loads(s) for s in raw.column("inputs").to_pylist()]
    features = [json.loads(s) for s in raw.column("features").to_pylist()]
    predictions = [json.loads(s) for s in raw.column("prediction").to_pylist()]
    columns: dict[str, pa.Array] = {name: raw.column(name).combine_chunks() for name in BASE}
    # One column per name the model saw: the request's value where it sent one (requests
    # win over the feature store), else the value the feature store added.
    for name in _names(inputs + features):
        if name not in columns:
            columns[name] = _array(
                [
                    r[name] if name in r else f.get(name)
                    for r, f in zip(inputs, features, strict=True)
                ]
            )
    columns["prediction"] = _array(predictions)
    if labels is not None:
        ids = raw.column("request_id").to_pylist()
        records = raw.column("record").to_pylist()
        columns["label"] = _array(
            [labels.get((rid, rec)) for rid, rec in zip(ids, records, strict=True)]
        )
    return pa.table(columns)


def _names(rows: list[dict[str, Any]]) -> list[str]:
    seen: dict[str, None] = {}
    for row in rows:
        for key in row:
            seen.setdefault(key)
    return list(seen)


def _array(values: list[Any]) -> pa.Array:
    """Typed when the values agree on a scalar type, else their JSON text (never lossy)."""
    if all(v is None or isinstance(v, bool | int | float | str) for v in values):
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    return pa.array([None if v is None else json.dumps(v) for v in values], type=pa.string())


_LOGICAL = {
    pa.string(): "string",
    pa.int32(): "integer",
    pa.float64(): "number",
}


def log_contract(enriched: bool = False) -> dict[str, Any]:
    """The ODCS contract of the prediction-log port (the stored log schema). With feature
    enrichment the `features` column holds values looked up from governed products, so it
    is classified confidential: a grant must name it to read it in clear."""
    properties = []
    for field in log_schema():
        logical = _LOGICAL.get(field.type, "timestamp")
        prop: dict[str, Any] = {"name": field.name, "logicalType": logical}
        if enriched and field.name == "features":
            prop["classification"] = "confidential"
        properties.append(prop)
    return {
        "apiVersion": "v3.0.2",
        "kind": "DataContract",
        "id": f"{PORT}-contract",
        "version": "1.0.0",
        "status": "active",
        "description": {
            "purpose": "Every prediction an endpoint made: inputs, features, output, model "
            "version, latency and time (inputs/features/prediction as JSON text)."
        },
        "schema": [{"name": PORT, "properties": properties}],
    }


def log_descriptor(endpoint: Endpoint, version: str) -> dict[str, Any]:
    name = endpoint.log_product.split(".", 1)[1]
    return {
        "apiVersion": "v1.0.0",
        "kind": "DataProduct",
        "id": endpoint.log_product,
        "name": name,
        "domain": endpoint.domain,
        "version": version,
        "status": "active",
        "description": {
            "purpose": f"Every prediction endpoint {endpoint.name} served, with its inputs, "
            "added features, output, model version and latency.",
            "usage": "Monitoring, auditing and joining feedback labels; one version per roll.",
        },
        # Accountable owner (governance requires one): whoever configured the endpoint.
        "team": {"members": [{"username": endpoint.created_by, "role": "owner"}]},
        "outputPorts": [{"name": PORT, "version": version, "contractId": f"{PORT}-contract"}],
    }
