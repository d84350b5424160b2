"""How the contract scan splits its work: a Parquet row group's columns are read in two
groups of about equal size, each a task of its own, and their findings joined; the order
proof compares a column's first values before all of them. Both must leave every count
as DuckDB gives it."""

from __future__ import annotations

import tempfile
from itertools import pairwise
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshops.mesh import contract_scan
from meshops.mesh.contract_scan import (
    ORDER_PROBE,
    Duplicates,
    Invalid,
    Measure,
    Missing,
    NullCount,
    _order_of,
    _Source,
    measure_all,
    quote,
)


def _parquet(folder: str, table: pa.Table, row_group_size: int) -> str:
    path = str(Path(folder) / "t.parquet")
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def test_columns_are_read_in_two_groups_of_about_equal_size() -> None:
    table = pa.table(
        {
            "small": pa.array([1] * 2000, pa.int8()),
            "wide": pa.array([f"value-{i:0>40}" for i in range(2000)]),
            "ids": pa.array(range(2000), pa.int64()),
            "tiny": pa.array([True] * 2000),
        }
    )
    with tempfile.TemporaryDirectory() as folder:
        source = _Source(_parquet(folder, table, 500))
        columns = ["small", "wide", "ids", "tiny"]
        groups = source.column_groups(columns, workers=2)
        assert groups == [["wide"], ["small", "ids", "tiny"]]  # the wide strings alone
        assert source.column_groups(columns, workers=1) == [columns]
        # a column read alone is a group of its own; the largest group comes first
        alone = source.column_groups(columns, workers=2, alone=["ids"])
        assert alone == [["wide"], ["ids"], ["small", "tiny"]]
        assert source.column_groups(["wide"], workers=2) == [["wide"]]
    assert _Source(table).column_groups(columns, workers=2) == [columns]  # in memory


@settings(max_examples=40, deadline=None)
@given(
    ids=st.lists(st.one_of(st.none(), st.integers(0, 60)), min_size=1, max_size=60),
    ordered=st.booleans(),
    row_group_size=st.integers(1, 25),
)
def test_joined_groups_count_as_duckdb_does(
    ids: list[int | None], ordered: bool, row_group_size: int
) -> None:
    if ordered:
        ids = list(range(len(ids)))
    words = [None if i is None else ("n/a", "a", "b7", "")[i % 4] for i in ids]
    table = pa.table({"id": pa.array(ids, pa.int64()), "word": pa.array(words, pa.string())})
    measures: list[Measure] = [
        NullCount("id"),
        NullCount("word"),
        Duplicates(("id",)),
        Duplicates(("id", "word"), count_rows=True),
        Invalid("word", valid_values=("a", "")),
        Invalid("word", pattern="^b[0-9]$"),
        Missing("word", values=("", "n/a")),
    ]
    con = duckdb.connect()
    con.register("t", table)
    with tempfile.TemporaryDirectory() as folder:
        path = _parquet(folder, table, row_group_size)
        assert len(_Source(path).column_groups(["id", "word"], workers=2)) == 2
        got = measure_all(path, con, "t", table.schema, measures)
    for measure in measures:
        want = con.execute(f"SELECT {measure.sql()} FROM {quote('t')}").fetchone()
        assert want is not None
        assert got[measure] == int(want[0] or 0), measure


@settings(max_examples=200, deadline=None)
@given(
    values=st.lists(st.integers(-5, 5), max_size=3 * ORDER_PROBE),
    ascending=st.booleans(),
    break_at=st.integers(0, 3 * ORDER_PROBE),
)
def test_the_order_probe_never_decides_alone(
    values: list[int], ascending: bool, break_at: int
) -> None:
    """Runs ordered for the whole probe and broken later, runs broken inside the probe,
    and ordered runs: the order found is the brute force's."""
    if values and break_at < len(values):  # ordered up to break_at, whatever after
        run = list(range(break_at)) if ascending else list(range(break_at, 0, -1))
        values = run + values[break_at:]
    order = _order_of(pa.array(values, pa.int64()))
    pairs = list(pairwise(values))
    assert order.count == len(values)
    if len(values) > 1:
        assert order.increasing == all(b > a for a, b in pairs)
        assert order.decreasing == (not order.increasing and all(b < a for a, b in pairs))


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.integers(-3, 3)), min_size=1, max_size=50),
    ordered_head=st.booleans(),
    batch_rows=st.sampled_from([1, 2, 5, 1 << 17]),
    row_group_size=st.integers(1, 30),
    dtype=st.sampled_from([pa.int8(), pa.int32(), pa.int64(), pa.uint16()]),
)
def test_a_small_range_read_until_covered_counts_as_duckdb_does(
    values: list[int | None],
    ordered_head: bool,
    batch_rows: int,
    row_group_size: int,
    dtype: pa.DataType,
) -> None:
    """A row group's batches of a small-range integer column stop being read once their
    distinct values hold every integer between the group's least and greatest value; the
    duplicates counted are still DuckDB's (also when the first batches were ordered and the
    values are read a second time)."""
    if ordered_head:
        values = [-3, -2, -1, 0, 1, 2, 3, *values]
    if pa.types.is_unsigned_integer(dtype):
        values = [None if v is None else v + 3 for v in values]
    table = pa.table({"q": pa.array(values, dtype)})
    measures: list[Measure] = [Duplicates(("q",)), Duplicates(("q",), count_rows=True)]
    con = duckdb.connect()
    con.register("t", table)
    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as folder:
        patch.setattr(contract_scan, "BATCH_ROWS", batch_rows)
        got = measure_all(_parquet(folder, table, row_group_size), con, "t", table.schema, measures)
    for measure in measures:
        want = con.execute(f"SELECT {measure.sql()} FROM {quote('t')}").fetchone()
        assert want is not None
        assert got[measure] == int(want[0] or 0), measure


def test_reading_stops_once_the_range_is_covered() -> None:
    """Every value 0..9 is in the first batch of the only row group: the other batches are
    not measured."""
    first = [3, 1, 4, 0, 5, 9, 2, 6, 8, 7]  # in no order: the first pass keeps them
    table = pa.table({"q": pa.array([*first, *([5] * 90)], pa.int32())})
    measured: list[int] = []
    scan_batch = contract_scan._scan_batch

    def counting(columns: dict[str, pa.ChunkedArray], work: Any) -> Any:
        measured.append(len(columns["q"]))
        return scan_batch(columns, work)

    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as folder:
        patch.setattr(contract_scan, "BATCH_ROWS", 10)
        patch.setattr(contract_scan, "_scan_batch", counting)
        path = _parquet(folder, table, 100)
        got = measure_all(path, _no_duckdb, "t", table.schema, [Duplicates(("q",))])
    assert got[Duplicates(("q",))] == 90
    assert measured == [10]


def _no_duckdb() -> duckdb.DuckDBPyConnection:
    raise AssertionError("counted without DuckDB")
