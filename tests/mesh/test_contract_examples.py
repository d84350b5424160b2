"""Every ODCS document under tests/mesh/standards/odcs (meshops's own documents in each
version's forms) and, when MESHOPS_STANDARDS_DIR names a folder of them, every official
example file (docs/conformance.md, "Official examples"), read as meshops reads it,
tested against Arrow data built to its declared types: no rule is dropped (one result per
quality rule and per SLA property), no logical type check fails on data of that type, and
nothing raises."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from meshops.mesh import odcs
from meshops.mesh.contracts import run_contract_test
from meshops.mesh.specs import columns_of
from meshops.mesh.standards.documents import load_yaml
from tests.mesh.test_standards_examples import OFFICIAL

STANDARDS = Path(__file__).resolve().parent / "standards" / "odcs"
FILES = sorted(STANDARDS.rglob("*.odcs.yaml"))
if OFFICIAL is not None:
    FILES += sorted((OFFICIAL / "odcs").rglob("*.odcs.yaml"))
ZONED = ("timestamptz", "timestamp with time zone", "timestamp_tz", "timestamp_ltz")


def _arrow_type(prop: dict[str, Any]) -> pa.DataType:
    """An Arrow type holding values of the property's declared types."""
    logical = prop.get("logicalType") or "string"
    physical = str(prop.get("physicalType") or "").lower()
    options = prop.get("logicalTypeOptions") or {}
    if logical == "integer":
        return pa.int64()
    if logical == "number":
        if physical.startswith(("numeric", "decimal", "number")):
            return pa.decimal128(18, 4)
        if physical.startswith(("int", "bigint", "smallint", "serial")):
            return pa.int64()
        return pa.float64()
    if logical == "boolean":
        return pa.bool_()
    if logical == "date":
        return pa.date32()
    if logical == "time":
        return pa.time64("us")
    if logical == "timestamp":
        zoned = options.get("timezone") is True or physical.startswith(ZONED)
        return pa.timestamp("us", tz="UTC" if zoned else None)
    if logical == "object":
        children = [c for c in prop.get("properties") or [] if isinstance(c, dict)]
        return pa.struct(
            [(str(c.get("physicalName") or c["name"]), _arrow_type(c)) for c in children]
        )
    if logical == "array":
        items = prop.get("items")
        return pa.list_(_arrow_type(items) if isinstance(items, dict) else pa.string())
    return pa.string()


def _table(obj: dict[str, Any]) -> pa.Table:
    fields = [
        pa.field(str(p.get("physicalName") or p["name"]), _arrow_type(p))
        for p in obj.get("properties") or []
        if isinstance(p, dict)
    ]
    return pa.schema(fields).empty_table()


def _quality_count(element: dict[str, Any]) -> int:
    own = len([q for q in element.get("quality") or [] if isinstance(q, dict)])
    children = [c for c in element.get("properties") or [] if isinstance(c, dict)]
    if isinstance(element.get("items"), dict):
        children.append(element["items"])
    return own + sum(_quality_count(c) for c in children)


def test_the_documents_are_there() -> None:
    assert FILES, f"no ODCS documents under {STANDARDS}"


@pytest.mark.parametrize("path", FILES, ids=lambda p: "/".join(p.parts[-2:]))
def test_every_rule_of_the_document_is_reported(path: Path) -> None:
    contract = odcs.read(load_yaml(path))
    model = contract.model
    objects = [o for o in model.get("schema") or [] if isinstance(o, dict)]
    sla = [s for s in model.get("slaProperties") or [] if isinstance(s, dict)]
    for index, obj in enumerate(objects):
        columns = columns_of(obj)
        if not columns:
            continue
        port = f"port{index}"
        report = run_contract_test(_table(obj), port, columns, obj, sla, contract=model)
        kinds = [r.kind for r in report.results]
        assert kinds.count("quality") == _quality_count(obj), path
        if len(objects) == 1:
            assert kinds.count("sla") >= len(sla), path
        types = [r for r in report.results if r.rule.endswith(".type")]
        assert all(r.status in ("passed", "not checked") for r in types), [
            r for r in types if r.status == "failed"
        ]
        assert all(r.status != "failed" for r in report.results if r.rule.endswith(".present"))
