"""Each contract rule kind, passing and failing, on real Arrow data through DuckDB."""

from __future__ import annotations

import math
import subprocess
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshops.kernel.errors import InvalidInput
from meshops.mesh.contract_scan import (
    Duplicates,
    Invalid,
    Measure,
    Missing,
    NullCount,
    RowCount,
    ScanPlan,
    _arrow_pass,
    _Source,
    measure_all,
)
from meshops.mesh.contracts import check_operator, relation, run_contract_test
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
        # ODCS: mustBeBetween [a, b] is mustBeGreaterThan a and mustBeLessThan b
        ({"metric": "rowCount", "mustBeBetween": [1, 5]}, True),
        ({"metric": "rowCount", "mustBeBetween": [1, 4]}, False),
        ({"metric": "rowCount", "mustNotBeBetween": [1, 4]}, True),
        ({"metric": "rowCount", "mustNotBeBetween": [3, 5]}, False),
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
    obj = {"name": "t", "properties": COLUMNS, "quality": [{"metric": "rowCount"}]}
    report = run_contract_test(TABLE, "t", columns_of(obj), obj, now=NOW)
    (count,) = [r for r in report.results if r.kind == "quality"]
    assert count.status == "not evaluated" and "no expected count" in count.message
    with pytest.raises(InvalidInput, match="not a number"):
        _verdicts([{"metric": "rowCount", "mustBe": "many"}])
    with pytest.raises(InvalidInput, match="sql quality rule failed") as info:
        _verdicts([{"type": "sql", "query": "SELECT nope FROM t", "mustBe": 0}])
    assert info.value.detail["fix"]


@given(st.floats(-1e6, 1e6, allow_nan=False), st.floats(-1e6, 1e6, allow_nan=False))
def test_between_is_the_conjunction_of_bounds(value: float, other: float) -> None:
    low, high = min(value, other), max(value, other)
    probe = (low + high) / 2
    inside, _ = check_operator({"mustBeBetween": [low, high]}, probe, False)
    outside, _ = check_operator({"mustNotBeBetween": [low, high]}, probe, False)
    both, _ = check_operator({"mustBeGreaterThan": low, "mustBeLessThan": high}, probe, False)
    assert inside == both and outside == (not inside)
    at_bound, _ = check_operator({"mustBeBetween": [low, high]}, low, False)
    assert not at_bound


# --- exact measures: fast paths agree with the DuckDB definition ---


def _by_duckdb(table: pa.Table, measures: list[Measure]) -> dict[Measure, int]:
    """The reference: every measure's SQL definition evaluated by DuckDB."""
    con = duckdb.connect()
    con.register("t", table)
    row = con.execute(f"SELECT {', '.join(m.sql() for m in measures)} FROM t").fetchall()[0]
    con.close()
    return {m: int(v or 0) for m, v in zip(measures, row, strict=True)}


def _by_scan(source: pa.Table | str, schema: pa.Schema, measures: list[Measure]) -> dict:
    with relation(source, "t") as con:
        return measure_all(source, con, "t", schema, measures)


def _both_sources(table: pa.Table, row_group_size: int, measures: list[Measure]) -> list[dict]:
    """measure_all over the table itself and over a Parquet file of it (several row groups)."""
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "t.parquet")
        pq.write_table(table, path, row_group_size=max(1, row_group_size))
        from_file = _by_scan(path, table.schema, measures)
    return [_by_scan(table, table.schema, measures), from_file]


def _duplicates(columns: tuple[str, ...]) -> list[Measure]:
    by_rows = Duplicates(columns, count_rows=True)
    return [Duplicates(columns), by_rows] if len(columns) == 1 else [by_rows]


@pytest.mark.parametrize(
    ("values", "proven"),
    [
        ([1, 2, 3, 5, 8], True),  # increasing: no hash table needed
        ([9, 7, None, 4, None, 1], True),  # decreasing, nulls ignored
        ([3, 1, 2], False),  # unique but unordered: the exact hash count decides (0)
        ([1, 2, 2, 3], False),  # not strictly increasing: the hash count finds 1
        ([5, 1, 5, None, None], False),
        ([None, None], True),
        ([], True),
    ],
)
def test_uniqueness_fast_path_and_fallback_are_exact(
    values: list[int | None], proven: bool, tmp_path: Path
) -> None:
    table = pa.table({"id": pa.array(values, pa.int64())})
    measures = _duplicates(("id",))
    expected = _by_duckdb(table, measures)
    for got in _both_sources(table, 2, measures):
        assert got == {RowCount(): len(values), **expected}
    for source in (table, _parquet_of(table, tmp_path, 2)):
        data = _Source(source)
        found = _arrow_pass(data, ScanPlan(table.schema, measures))
        # proven by the order alone; otherwise Arrow hashed each partition's values
        assert ("id" in found.strict) is proven
        assert found.distinct["id"] == len({v for v in values if v is not None})


def _parquet_of(table: pa.Table, folder: Path, row_group_size: int) -> str:
    path = str(folder / "t.parquet")
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def test_tuple_uniqueness_is_proven_by_a_distinct_non_null_member() -> None:
    table = pa.table({"a": [1, 2, 3, 4], "b": ["x", "x", "y", None]})
    measures = [*_duplicates(("b", "a")), *_duplicates(("b",))]
    assert _both_sources(table, 3, measures)[0] == {RowCount(): 4, **_by_duckdb(table, measures)}
    with_null = pa.table({"a": [1, None, 3, None], "b": ["x", "x", "y", "x"]})
    measures = _duplicates(("a", "b"))
    for got in _both_sources(with_null, 3, measures):
        assert got == {RowCount(): 4, **_by_duckdb(with_null, measures)}
        assert got[Duplicates(("a", "b"), count_rows=True)] == 1  # (NULL, 'x') twice


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.one_of(st.none(), st.integers(-5, 40)), max_size=40),
    st.booleans(),
    st.integers(1, 9),
)
def test_integer_measures_agree_with_duckdb(
    values: list[int | None], sort: bool, row_group_size: int
) -> None:
    if sort:  # sorted inputs exercise the proof, the others the fallback
        values = sorted(v for v in values if v is not None) + [None] * values.count(None)
    table = pa.table({"n": pa.array(values, pa.int64())})
    measures: list[Measure] = [
        *_duplicates(("n",)),
        NullCount("n"),
        Missing("n", (0, 7)),
        Invalid("n", valid_values=(1, 2, 3)),
    ]
    expected = {RowCount(): len(values), **_by_duckdb(table, measures)}
    for got in _both_sources(table, row_group_size, measures):
        assert got == expected


@settings(max_examples=40, deadline=None)
@given(
    st.lists(
        st.sampled_from([None, -0.0, 0.0, 1.5, -2.0, float("nan"), float("inf")]), max_size=12
    ),
    st.booleans(),
)
def test_float_duplicates_agree_with_duckdb(values: list[float | None], sort: bool) -> None:
    # Arrow hashing keeps -0.0 and 0.0 apart where DuckDB does not: floats are only proven
    # distinct by their order, else DuckDB counts them
    if sort:
        values = sorted(v for v in values if v is not None and not math.isnan(v))
    table = pa.table({"x": pa.array(values, pa.float64())})
    measures = _duplicates(("x",))
    expected = {RowCount(): len(values), **_by_duckdb(table, measures)}
    for got in _both_sources(table, 3, measures):
        assert got == expected


@settings(max_examples=30, deadline=None)
@given(st.lists(st.one_of(st.none(), st.integers(0, 6)), max_size=20), st.booleans())
def test_temporal_duplicates_agree_with_duckdb(days: list[int | None], sort: bool) -> None:
    # dates, timestamps and durations are counted by sorting the integers they store
    if sort:
        days = sorted(d for d in days if d is not None)
    start = datetime(2025, 1, 1, tzinfo=UTC)
    table = pa.table(
        {
            "day": pa.array([None if d is None else start.date() + timedelta(d) for d in days]),
            "at": pa.array(
                [None if d is None else start + timedelta(hours=d) for d in days],
                pa.timestamp("us", "UTC"),
            ),
            "took": pa.array(
                [None if d is None else timedelta(seconds=d) for d in days], pa.duration("ms")
            ),
        }
    )
    measures = [m for c in ("day", "at", "took") for m in _duplicates((c,))]
    expected = {RowCount(): len(days), **_by_duckdb(table, measures)}
    for got in _both_sources(table, 4, measures):
        assert got == expected


TEXT = st.text(alphabet=["a", "b", "Z", "0", "7", "\n", ".", "é", " "], max_size=6)
PATTERNS = ["a.b", "^[a-z]+$", "[0-9]+", "(a|b)*", "é?.", "Z\\d", "a?", ".*\\.", "(?i)ab"]


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.one_of(st.none(), TEXT), max_size=30),
    st.sampled_from(PATTERNS),
    st.lists(TEXT, max_size=3),
    st.booleans(),
    st.integers(1, 7),
)
def test_string_measures_agree_with_duckdb(
    values: list[str | None],
    pattern: str,
    listed: list[str],
    as_dictionary: bool,
    row_group_size: int,
) -> None:
    column = pa.array(values, pa.string())
    table = pa.table({"s": column.dictionary_encode() if as_dictionary else column})
    measures: list[Measure] = [
        Invalid("s", pattern=pattern),
        Invalid("s", valid_values=tuple(listed)),
        Invalid("s", valid_values=tuple(listed), pattern=pattern),
        Missing("s", tuple(listed)),
        *_duplicates(("s",)),
        NullCount("s"),
    ]
    expected = {RowCount(): len(values), **_by_duckdb(table, measures)}
    for got in _both_sources(table, row_group_size, measures):
        assert got == expected


def test_dictionary_encoded_parquet_column_is_read_as_a_dictionary(tmp_path: Path) -> None:
    statuses = pa.array(["placed", "shipped", "lost", None] * 5_000)
    table = pa.table({"status": statuses})
    path = str(tmp_path / "s.parquet")
    pq.write_table(table, path, row_group_size=3_000)
    assert _Source(path)._dictionary_encoded("status")
    measures: list[Measure] = [
        Invalid("status", valid_values=("placed", "shipped")),
        Missing("status", ("lost",)),
    ]
    got = _by_scan(path, table.schema, measures)
    assert got[measures[0]] == 5_000 and got[measures[1]] == 10_000
    assert got == {RowCount(): 20_000, **_by_duckdb(table, measures)}


def test_null_counts_come_from_parquet_statistics_or_the_data(tmp_path: Path) -> None:
    table = pa.table({"x": pa.array([1.5, None, 2.0, None, None], pa.float64())})
    with_stats, without = str(tmp_path / "a.parquet"), str(tmp_path / "b.parquet")
    pq.write_table(table, with_stats, row_group_size=2)
    pq.write_table(table, without, row_group_size=2, write_statistics=False)
    assert _Source(with_stats).stored_nulls("x") == 3
    assert _Source(without).stored_nulls("x") is None
    for path in (with_stats, without):
        assert _by_scan(path, table.schema, [NullCount("x")])[NullCount("x")] == 3


def test_measures_arrow_cannot_judge_exactly_go_to_duckdb() -> None:
    table = pa.table({"d": pa.array([1.5, 2.0, None]), "n": [10, 20, 30]})
    plan = ScanPlan(
        table.schema,
        [Invalid("d", valid_values=(1.5,)), Invalid("n", pattern="^1"), Missing("n", ("10",))],
    )
    assert not plan.work and len(plan.in_duckdb) == 3
    got = _by_scan(table, table.schema, plan.in_duckdb)
    assert got == {RowCount(): 3, **_by_duckdb(table, plan.in_duckdb)}


def test_a_bad_pattern_is_explained() -> None:
    columns = [dict(c, quality=[]) for c in COLUMNS]
    columns[1]["quality"] = [{"metric": "invalidValues", "arguments": {"pattern": "(a"}}]
    with pytest.raises(InvalidInput, match="invalid pattern") as info:
        _verdicts([], columns)
    assert info.value.detail["field"] == "quality.arguments.pattern"


def test_parquet_and_table_sources_give_the_same_report(tmp_path: Path) -> None:
    path = str(tmp_path / "t.parquet")
    pq.write_table(TABLE, path, row_group_size=2)
    rules = [{"metric": "invalidValues", "arguments": {"pattern": "^[A-Z]{2}$"}}]
    columns = [dict(c, quality=rules) if c["name"] == "country" else c for c in COLUMNS]
    obj = {"name": "t", "properties": columns, "quality": [{"metric": "rowCount", "mustBe": 4}]}
    from_table = run_contract_test(TABLE, "t", columns_of(obj), obj, now=NOW)
    from_file = run_contract_test(path, "t", columns_of(obj), obj, now=NOW)
    assert [r.model_dump() for r in from_table.results] == [
        r.model_dump() for r in from_file.results
    ]
    country = next(r for r in from_file.results if r.rule.startswith("quality.t.country"))
    assert country.observed == 2 and not country.passed


def test_a_contract_test_does_not_import_pandas(tmp_path: Path) -> None:
    # pandas takes 0.5-2 s to import; pyarrow pulls it in from pa.array() on Python values
    # and Array.to_numpy(), so the scan builds arrays from buffers instead
    path = _parquet_of(pa.table({"id": [3, 1, 2, 2], "s": ["a", "b", None, "c"]}), tmp_path, 2)
    script = f"""
import sys
from meshops.mesh.contracts import run_contract_test
from meshops.mesh.specs import columns_of
obj = {{"name": "t", "properties": [
    {{"name": "id", "logicalType": "integer", "unique": True}},
    {{"name": "s", "logicalType": "string", "quality": [
        {{"metric": "invalidValues", "arguments": {{"validValues": ["a"], "pattern": "^[a-z]$"}}}},
        {{"metric": "missingValues", "arguments": {{"missingValues": ["c"]}}}}]}}]}}
report = run_contract_test({path!r}, "t", columns_of(obj), obj)
assert [r.observed for r in report.results if not r.passed] == [1.0, 2.0, 2.0]
print("pandas" in sys.modules)
"""
    done = subprocess.run(
        [sys.executable, "-c", script], check=False, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"
