"""Each contract rule kind, passing and failing, on real Arrow data through DuckDB."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given
from hypothesis import strategies as st

from meshops.kernel.errors import InvalidInput
from meshops.mesh.contracts import check_operator, run_contract_test
from meshops.mesh.specs import columns_of

NOW = datetime(2025, 1, 10, tzinfo=UTC)
TABLE = pa.table(
    {
        "id": [1, 2, 3, 4],
        "code": ["a", "b", "b", None],
        "country": ["DE", "N/A", "", "FR"],
        "ts": [NOW - timedelta(hours=h) for h in (1, 2, 3, 30)],
    }
)
COLUMNS = [
    {"name": "id", "logicalType": "integer", "required": True, "primaryKey": True},
    {"name": "code", "logicalType": "string"},
    {"name": "country", "logicalType": "string"},
    {"name": "ts", "logicalType": "timestamp"},
]


def _verdicts(
    quality: list[dict[str, Any]],
    columns: list[dict[str, Any]] | None = None,
    table: pa.Table = TABLE,
    sla: list[dict[str, Any]] | None = None,
) -> dict[str, bool]:
    obj = {"name": "t", "properties": columns or COLUMNS, "quality": quality}
    report = run_contract_test(table, "t", columns_of(obj), obj, sla, now=NOW)
    return {r.rule: r.passed for r in report.results}


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        ({"metric": "rowCount", "mustBe": 4}, True),
        ({"metric": "rowCount", "mustBeGreaterThan": 4}, False),
        ({"metric": "rowCount", "mustBeBetween": [1, 4]}, True),
        ({"metric": "rowCount", "mustNotBeBetween": [1, 4]}, False),
        ({"metric": "duplicateValues", "arguments": {"properties": ["code"]}, "mustBe": 0}, False),
        ({"metric": "duplicateValues", "arguments": {"properties": ["id", "code"]}}, True),
        (
            {"type": "sql", "query": "SELECT count(*) FROM ${object} WHERE id > 2", "mustBe": 2},
            True,
        ),
        ({"type": "sql", "query": "SELECT max(id) FROM t", "mustBeLessThan": 4}, False),
    ],
)
def test_object_level_rules(rule: dict[str, Any], expected: bool) -> None:
    verdicts = _verdicts([rule])
    quality = {k: v for k, v in verdicts.items() if k.startswith("quality.")}
    assert list(quality.values()) == [expected]


@pytest.mark.parametrize(
    ("column", "rule", "expected"),
    [
        ("code", {"metric": "nullValues", "mustBe": 0}, False),
        ("code", {"metric": "nullValues", "mustBeLessOrEqualTo": 25, "unit": "percent"}, True),
        ("code", {"metric": "duplicateValues", "mustBe": 0}, False),
        ("id", {"metric": "duplicateValues"}, True),
        (
            "country",
            {"metric": "missingValues", "arguments": {"missingValues": ["", "N/A"]}},
            False,
        ),
        (
            "country",
            {
                "metric": "missingValues",
                "arguments": {"missingValues": ["", "N/A"]},
                "mustBeLessOrEqualTo": 2,
            },
            True,
        ),
        ("code", {"metric": "invalidValues", "arguments": {"validValues": ["a", "b"]}}, True),
        ("country", {"metric": "invalidValues", "arguments": {"validValues": ["DE", "FR"]}}, False),
        (
            "country",
            {
                "metric": "invalidValues",
                "arguments": {"pattern": "^[A-Z]{2}$"},
                "mustBeLessThan": 3,
            },
            True,
        ),
        ("code", {"metric": "nullValues", "mustBe": 0, "severity": "warning"}, False),
    ],
)
def test_property_level_rules(column: str, rule: dict[str, Any], expected: bool) -> None:
    columns = [dict(c, quality=[rule]) if c["name"] == column else c for c in COLUMNS]
    verdicts = _verdicts([], columns)
    quality = {k: v for k, v in verdicts.items() if k.startswith("quality.")}
    assert list(quality.values()) == [expected]


def test_warning_rules_do_not_fail_the_report() -> None:
    columns = [
        dict(c, quality=[{"metric": "nullValues", "severity": "warning"}])
        if c["name"] == "code"
        else c
        for c in COLUMNS
    ]
    obj = {"name": "t", "properties": columns}
    report = run_contract_test(TABLE, "t", columns_of(obj), obj, now=NOW)
    assert report.passed and not all(r.passed for r in report.results)


def test_schema_rules() -> None:
    columns = [
        {"name": "id", "logicalType": "string", "required": True},
        {"name": "code", "logicalType": "string", "required": True, "unique": True},
        {"name": "missing", "logicalType": "integer"},
        {"name": "country", "logicalType": "string", "physicalType": "varchar"},
        {"name": "ts", "logicalType": "timestamp", "physicalType": "date"},
    ]
    v = _verdicts([], columns)
    assert v["schema.t.id.type"] is False
    assert v["schema.t.code.required"] is False and v["schema.t.code.unique"] is False
    assert v["schema.t.missing.present"] is False
    assert v["schema.t.country.physical_type"] is True and v["schema.t.ts.physical_type"] is False
    composite = [
        dict(c, primaryKey=c["name"] in ("code", "country"), required=False) for c in COLUMNS
    ]
    assert _verdicts([], composite)["schema.t.primary_key"] is True
    undeclared = _verdicts([], COLUMNS[:3])
    assert undeclared["schema.t.ts.declared"] is False


def test_freshness_sla() -> None:
    fresh = [{"property": "freshness", "value": 2, "unit": "h", "element": "t.ts"}]
    stale = [{"property": "latency", "value": 30, "unit": "m", "element": "ts"}]
    assert _verdicts([], sla=fresh)["sla.t.freshness"] is True
    assert _verdicts([], sla=stale)["sla.t.latency"] is False


def test_rule_without_operator_and_bad_sql_are_explained() -> None:
    with pytest.raises(InvalidInput, match="no operator"):
        _verdicts([{"metric": "rowCount"}])
    with pytest.raises(InvalidInput, match="sql quality rule failed") as info:
        _verdicts([{"type": "sql", "query": "SELECT nope FROM t", "mustBe": 0}])
    assert info.value.detail["fix"]


@given(st.floats(-1e6, 1e6, allow_nan=False), st.floats(-1e6, 1e6, allow_nan=False))
def test_between_is_the_conjunction_of_bounds(value: float, other: float) -> None:
    low, high = min(value, other), max(value, other)
    probe = (low + high) / 2
    inside, _ = check_operator({"mustBeBetween": [low, high]}, probe, False)
    outside, _ = check_operator({"mustNotBeBetween": [low, high]}, probe, False)
    both, _ = check_operator(
        {"mustBeGreaterOrEqualTo": low, "mustBeLessOrEqualTo": high}, probe, False
    )
    assert inside == both and outside == (not inside)
