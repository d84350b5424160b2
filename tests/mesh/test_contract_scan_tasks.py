"""How the contract scan splits its work: a Parquet row group's columns are read in two
groups of about equal size, each a task of its own, and their findings joined; the order
proof compares a column's first values before all of them. Both must leave every count
as DuckDB gives it."""

from __future__ import annotations

import tempfile
from itertools import pairwise
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
from hypothesis import given, settings
from hypothesis import strategies as st

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
