"""Batch scoring: a data product version in, a new data product version of predictions out.

The input is read through the mesh's one governed read path (interface "serving", so the
owner sees the read in usage); the output is published with the mesh's programmatic
publish, with the input version and the model version as its inputs (lineage edges).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pyarrow as pa

from meshops.kernel.errors import InvalidInput, NotFound
from meshops.serving.models import jsonable
from meshops.serving.trust import check_may_load

if TYPE_CHECKING:
    from meshops.kernel.home import Context
    from meshops.mesh.models import DataProductVersion
    from meshops.registry.loaded import LoadedModel
    from meshops.serving.ray_batch import RayScoring

PORT = "predictions"
CHUNK_ROWS = 100_000


def score_product(
    ctx: Context,
    mesh: Any,
    uri: str,
    product: str,
    version: str | None,
    *,
    output: str,
    output_version: str | None,
    port: str | None,
    keep_columns: list[str] | None,
    trust_model_code: bool = False,
    ray: RayScoring | None = None,
) -> DataProductVersion:
    """`ray`: score on Ray Data (serving/ray_batch.py) instead of in this process."""
    from meshops.registry.service import RegistryService

    domain, name = _split(output)
    ctx.authorize("serving.write", domain)
    registry = RegistryService(ctx)
    check_may_load(ctx.home, uri, registry.resolve(uri), trust_model_code)
    model = registry.load_model(uri, trust=trust_model_code)
    if trust_model_code:
        with ctx.db.begin() as conn:
            ctx.audit(
                conn,
                "serving.trust_model_code",
                model.version.urn,
                detail={"batch_output": output, "input": product, "model": uri},
            )
    source = mesh.get_version(product, version)
    table = mesh.read(
        product, source.version, port, interface="serving", purpose=f"batch scoring {uri}"
    )
    if ray is None:
        scored = score_table(model, table, keep_columns)
    else:
        from meshops.serving import ray_batch

        package = ray_batch.model_package(ctx, model.version, trust_model_code)
        scored = score_table(
            model,
            table,
            keep_columns,
            predict=lambda names: ray_batch.predict_on_ray(model, package, table, names, ray),
        )
    next_version = output_version or _next_version(mesh, output, scored)
    descriptor = {
        "apiVersion": "v1.0.0",
        "kind": "DataProduct",
        "id": output,
        "name": name,
        "domain": domain,
        "version": next_version,
        "status": "active",
        "description": {"purpose": f"Predictions of {model.uri} on {source.urn}"},
        # Accountable owner (governance requires one): whoever ran the scoring.
        "team": {"members": [{"username": ctx.actor.name, "role": "owner"}]},
        "outputPorts": [{"name": PORT, "version": next_version, "contractId": f"{PORT}-contract"}],
    }
    published: DataProductVersion = mesh.publish_arrow(
        descriptor,
        {PORT: contract_for(scored)},
        {PORT: scored},
        inputs=[source.urn, model.version.urn],
    )
    return published


def score_table(
    model: LoadedModel,
    table: pa.Table,
    keep: list[str] | None,
    predict: Callable[[list[str]], list[Any] | pa.Array] | None = None,
) -> pa.Table:
    """Predictions for every row (in chunks, so memory stays bounded by the chunk), next to
    the kept input columns (all of them by default) and the model version. Rows are checked
    against the signature as a predict request's records are (nulls accepted in every
    column, a value of another type refused naming its row), before anything is published.
    `predict(names)`: the predictions some other way (on Ray), given the columns to score."""
    keep = list(table.column_names) if keep is None else keep
    missing = [c for c in keep if c not in table.column_names]
    if missing:
        raise InvalidInput(
            f"cannot keep missing column(s) {missing}",
            {"field": "keep_columns", "expected": table.column_names},
        )
    signature = model.signature
    by_columns = signature is not None and signature.kind == "columns"
    names = signature.input_names if signature is not None and by_columns else table.column_names
    absent = [n for n in names if n not in table.column_names]
    if absent:
        raise InvalidInput(
            f"the input has no column(s) {absent} that {model.uri} needs",
            {"field": "product", "missing": absent, "expected": names},
        )
    predictions = _predict_in_chunks(model, table, names) if predict is None else predict(names)
    columns = {c: table.column(c) for c in keep}
    columns["prediction"] = (
        predictions if isinstance(predictions, pa.Array) else _prediction_array(predictions)
    )
    columns["model"] = pa.array([model.name] * table.num_rows, pa.string())
    columns["model_version"] = pa.array([model.version.version] * table.num_rows, pa.int64())
    return pa.table(columns)


def _predict_in_chunks(model: LoadedModel, table: pa.Table, names: list[str]) -> list[Any]:
    predictions: list[Any] = []
    for offset in range(0, max(table.num_rows, 1), CHUNK_ROWS):
        part = table.slice(offset, CHUNK_ROWS).select(names)
        if part.num_rows:
            # Checked per row against the signature; an error names the row of the input.
            out = jsonable(model.predict(part.to_pandas(), first=offset))
            predictions.extend(out if isinstance(out, list) else [out] * part.num_rows)
    return predictions


def _prediction_array(values: list[Any]) -> pa.Array:
    if all(isinstance(v, bool | int | float | str) for v in values):
        try:
            return pa.array(values)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            pass
    import json

    return pa.array([json.dumps(v) for v in values], pa.string())


def _logical(dtype: pa.DataType) -> str:
    if pa.types.is_boolean(dtype):
        return "boolean"
    if pa.types.is_integer(dtype):
        return "integer"
    if pa.types.is_floating(dtype) or pa.types.is_decimal(dtype):
        return "number"
    if pa.types.is_timestamp(dtype):
        return "timestamp"
    if pa.types.is_date(dtype):
        return "date"
    return "string"


def contract_for(table: pa.Table) -> dict[str, Any]:
    return {
        "apiVersion": "v3.0.2",
        "kind": "DataContract",
        "id": f"{PORT}-contract",
        "version": "1.0.0",
        "status": "active",
        "schema": [
            {
                "name": PORT,
                "properties": [
                    {"name": f.name, "logicalType": _logical(f.type)} for f in table.schema
                ],
            }
        ],
    }


def _split(output: str) -> tuple[str, str]:
    domain, sep, name = output.partition(".")
    if not sep or not domain or not name:
        raise InvalidInput(
            f"the output product must be named domain.name, got {output!r}",
            {"field": "output", "fix": "e.g. sales.churn_scores"},
        )
    return domain, name


def _next_version(mesh: Any, output: str, scored: pa.Table) -> str:
    """The next minor version of `output`, or the next major one when the new predictions'
    columns drop or retype a column of the latest version (the mesh refuses a breaking
    change without a major bump: e.g. other `keep_columns`, another model's output type)."""
    try:
        versions = mesh.list_versions(output)
    except NotFound:
        return "1.0.0"
    latest, best = None, (0, -1)
    for v in versions:
        parts = str(v.version).split("-")[0].split(".")
        if len(parts) == 3 and all(p.isdigit() for p in parts):
            key = (int(parts[0]), int(parts[1]))
            if key > best:
                latest, best = v, key
    if latest is None:
        return "1.0.0"
    new = {f.name: _logical(f.type) for f in scored.schema}
    old = {c.name: c.logical_type for p in latest.ports if p.name == PORT for c in p.columns}
    breaking = any(new.get(name) != logical for name, logical in old.items())
    return f"{best[0] + 1}.0.0" if breaking else f"{best[0]}.{best[1] + 1}.0"
