"""The contract scan measures each partition (a Parquet row group, a slice of a table) in
batches of `BATCH_ROWS` rows. Batches that split a row group anywhere -- inside a strictly
ordered run, between a dictionary's flagged rows, at a null -- must give the counts DuckDB
gives over the whole file (each measure's SQL is its definition)."""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshops.mesh import contract_scan
from meshops.mesh.contract_scan import (
    Duplicates,
    Invalid,
    Measure,
    Missing,
    NullCount,
    OutOfRange,
    measure_all,
    quote,
)

WORDS = ["a", "b", "c7", "c12", "", "n/a", "\u00e9", "c\u0661"]
MEASURES: list[Measure] = [
    NullCount("id"),
    NullCount("word"),
    Duplicates(("id",)),
    Duplicates(("id",), count_rows=True),
    Duplicates(("word",)),
    Duplicates(("small",)),
    Invalid("word", valid_values=("a", "b")),
    Invalid("word", pattern=r"^c[0-9]+$"),
    Missing("word", values=("", "n/a")),
    OutOfRange("small", low=2, high=5),
]


@st.composite
def columns(draw: st.DrawFn) -> dict[str, list[Any]]:
    rows = draw(st.integers(0, 40))
    ids: list[int | None] = list(range(rows))
    if draw(st.booleans()):  # ids out of order, repeated or missing: the exact paths count
        ids = draw(st.lists(st.one_of(st.none(), st.integers(0, 30)), min_size=rows))[:rows]
    elif draw(st.booleans()):
        ids.reverse()
    words = draw(st.lists(st.one_of(st.none(), st.sampled_from(WORDS)), min_size=rows))
    small = draw(st.lists(st.one_of(st.none(), st.integers(0, 7)), min_size=rows))
    return {"id": ids, "word": words[:rows], "small": small[:rows]}


def _expected(table: pa.Table) -> dict[Measure, int]:
    con = duckdb.connect()
    con.register("t", table)
    row = con.execute(f"SELECT {', '.join(m.sql() for m in MEASURES)} FROM {quote('t')}")
    return dict(zip(MEASURES, (int(v or 0) for v in row.fetchall()[0]), strict=True))


def _no_duckdb() -> duckdb.DuckDBPyConnection:
    raise AssertionError("these measures are counted without DuckDB")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    data=columns(),
    batch_rows=st.sampled_from([1, 2, 3, 7, 1 << 17]),
    group_rows=st.sampled_from([1, 4, 9, 64]),
    dictionary=st.booleans(),
    in_memory=st.booleans(),
)
def test_counts_over_batches_equal_duckdb(
    data: dict[str, list[Any]],
    batch_rows: int,
    group_rows: int,
    dictionary: bool,
    in_memory: bool,
) -> None:
    table = pa.table(
        {
            "id": pa.array(data["id"], pa.int64()),
            "word": pa.array(data["word"], pa.string()),
            "small": pa.array(data["small"], pa.int32()),
        }
    )
    expected = _expected(table)
    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as folder:
        patch.setattr(contract_scan, "BATCH_ROWS", batch_rows)
        patch.setattr(contract_scan, "TABLE_PARTITION_ROWS", group_rows)
        source: pa.Table | str = table
        if not in_memory:
            source = str(Path(folder) / "t.parquet")
            pq.write_table(table, source, row_group_size=group_rows, use_dictionary=dictionary)
        # DuckDB is never asked: every one of these measures has an exact Arrow path
        counted = measure_all(source, _no_duckdb, "t", table.schema, MEASURES)
    assert {m: counted[m] for m in MEASURES} == expected


def test_an_empty_row_group_counts_nothing() -> None:
    """A file whose only row group holds no row: every count is 0, no value is read."""
    table = pa.table({"id": pa.array([], pa.int64()), "word": pa.array([], pa.string())})
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "empty.parquet")
        with pq.ParquetWriter(path, table.schema) as writer:
            writer.write_table(table)
        assert pq.read_metadata(path).num_row_groups == 1
        wanted = [Duplicates(("id",)), Invalid("word", pattern="a+"), NullCount("word")]
        counted = measure_all(path, _no_duckdb, "t", table.schema, wanted)
    assert [counted[m] for m in wanted] == [0, 0, 0]


@pytest.mark.parametrize(
    ("ids", "duplicates"),
    [
        ([5, 6, 7, 1, 2, 3], 0),  # each batch ordered, the file not: distinct all the same
        ([1, 2, 3, 3, 4, 5], 1),  # ordered batches meeting at an equal value
        ([7, 8, 9, 1, 2, 9], 1),  # the repeat lies in the last batch, far from the first
        ([3, 2, 1, 4, 5, 6], 0),  # one decreasing and one increasing batch
    ],
)
@pytest.mark.parametrize("in_memory", [True, False])
def test_ordered_batches_out_of_order_are_counted_again(
    ids: list[int], duplicates: int, in_memory: bool
) -> None:
    """The first pass keeps no values of strictly ordered batches; when the order fails
    across them, the second pass counts every value."""
    table = pa.table({"id": pa.array(ids, pa.int64()), "s": pa.array([str(i) for i in ids])})
    wanted = [Duplicates(("id",)), Duplicates(("s",))]
    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as folder:
        patch.setattr(contract_scan, "BATCH_ROWS", 3)
        patch.setattr(contract_scan, "TABLE_PARTITION_ROWS", 6)
        source: pa.Table | str = table
        if not in_memory:
            source = str(Path(folder) / "t.parquet")
            pq.write_table(table, source, row_group_size=6)
        counted = measure_all(source, _no_duckdb, "t", table.schema, wanted)
    assert [counted[m] for m in wanted] == [duplicates, duplicates]


def test_nested_and_dotted_columns_are_read_by_their_own_leaves() -> None:
    """The reader asks Parquet for the leaves under each wanted top-level field: a struct's
    and a list's leaves, and a flat column whose name holds a dot, each counted as itself."""
    table = pa.table(
        {
            "a.b": pa.array([1, None, 3], pa.int64()),
            "s": pa.array([{"x": 1, "y": "q"}, None, {"x": None, "y": None}]),
            "l": pa.array([[1], None, [2, 3]]),
            "a": pa.array(["u", "u", None]),
        }
    )
    wanted = [NullCount("a.b"), NullCount("s"), NullCount("l"), Duplicates(("a",))]
    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as folder:
        patch.setattr(contract_scan, "BATCH_ROWS", 2)
        path = str(Path(folder) / "t.parquet")
        pq.write_table(table, path, write_statistics=False)  # nulls counted from the values
        counted = measure_all(path, _no_duckdb, "t", table.schema, wanted)
    assert [counted[m] for m in wanted] == [1, 1, 1, 1]
