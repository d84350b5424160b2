"""The dictionary-page reader of the contract scan (`chunk_dictionary`): a row group's string
column whose dictionary page holds every value of the chunk is judged from that page alone
(no invalid value in the dictionary: no invalid row), without decoding the rows' indices.
Tested against pyarrow's own reading of the same files, written with every codec pyarrow
has, both data page versions, small pages and dictionaries that overflow into PLAIN pages."""

from __future__ import annotations

import tempfile
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshops.mesh import contract_scan, parquet_pages
from meshops.mesh.contract_scan import (
    Invalid,
    Measure,
    _column_chunk,
    measure_all,
    quote,
)
from meshops.mesh.parquet_pages import chunk_dictionary

WORDS = ["placed", "shipped", "", "n/a", "caf\u00e9", "\u0661\u0662", "x" * 40]
CODECS = ["none", "snappy", "gzip", "zstd", "brotli", "lz4"]


@st.composite
def files(draw: st.DrawFn) -> tuple[list[str | None], dict[str, object]]:
    words = draw(st.lists(st.sampled_from(WORDS), min_size=1, max_size=len(WORDS), unique=True))
    rows = draw(st.lists(st.one_of(st.none(), st.sampled_from(words)), max_size=300))
    if draw(st.booleans()):  # many distinct values: the dictionary overflows into PLAIN
        rows += [f"v{i}" for i in range(draw(st.integers(0, 400)))]
    options: dict[str, object] = {
        "row_group_size": draw(st.sampled_from([7, 100, 10_000])),
        "compression": draw(st.sampled_from(CODECS)),
        "use_dictionary": draw(st.booleans()),
        "data_page_version": draw(st.sampled_from(["1.0", "2.0"])),
        "data_page_size": draw(st.sampled_from([64, 1 << 20])),
        "dictionary_pagesize_limit": draw(st.sampled_from([64, 1 << 20])),
    }
    return rows, options


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=files())
def test_a_dictionary_read_holds_every_value_of_its_row_group(
    drawn: tuple[list[str | None], dict[str, object]],
) -> None:
    rows, options = drawn
    table = pa.table({"s": pa.array(rows, pa.string())})
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "t.parquet")
        pq.write_table(table, path, **options)  # type: ignore[arg-type]
        file = pq.ParquetFile(path)
        for group in range(file.num_row_groups):
            chunk = _column_chunk(file.metadata.row_group(group), "s")
            assert chunk is not None
            dictionary = chunk_dictionary(path, chunk)
            values = set(file.read_row_group(group).column("s").drop_null().to_pylist())
            if dictionary is None:
                # only when there is no dictionary, it may have overflowed into PLAIN, or
                # the codec is one the reader leaves to Arrow (LZ4's framings)
                small_limit = options["dictionary_pagesize_limit"] == 64
                known_codec = chunk.compression in parquet_pages.CODECS
                assert not options["use_dictionary"] or small_limit or not known_codec
                continue
            assert options["use_dictionary"]
            assert values <= set(dictionary.to_pylist())


def test_a_dictionary_overflowing_into_plain_pages_is_not_used() -> None:
    table = pa.table({"s": pa.array([f"value {i}" for i in range(5000)])})
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "t.parquet")
        pq.write_table(table, path, dictionary_pagesize_limit=256, data_page_size=256)
        chunk = _column_chunk(pq.read_metadata(path).row_group(0), "s")
        assert chunk is not None and chunk.has_dictionary_page
        assert chunk_dictionary(path, chunk) is None


MEASURES: list[Measure] = [
    Invalid("s", valid_values=tuple(WORDS)),  # nothing invalid: the dictionary answers
    Invalid("s", valid_values=("placed", "shipped")),
    Invalid("s", pattern="[a-z]+"),
]


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=files(), batch_rows=st.sampled_from([5, 1 << 17]))
def test_invalid_counts_with_dictionaries_equal_duckdb(
    drawn: tuple[list[str | None], dict[str, object]], batch_rows: int
) -> None:
    rows, options = drawn
    table = pa.table({"s": pa.array(rows, pa.string())})
    con = duckdb.connect()
    con.register("t", table)
    query = f"SELECT {', '.join(m.sql() for m in MEASURES)} FROM {quote('t')}"
    expected = [int(v or 0) for v in con.execute(query).fetchall()[0]]
    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as folder:
        patch.setattr(contract_scan, "BATCH_ROWS", batch_rows)
        path = str(Path(folder) / "t.parquet")
        pq.write_table(table, path, **options)  # type: ignore[arg-type]
        counted = measure_all(path, _no_duckdb, "t", table.schema, MEASURES)
    assert [counted[m] for m in MEASURES] == expected


def _no_duckdb() -> duckdb.DuckDBPyConnection:
    raise AssertionError("these measures are counted without DuckDB")


def test_a_row_group_judged_by_its_dictionary_is_not_read(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Valid dictionaries settle their row groups: the column is never decoded."""
    table = pa.table({"s": pa.array(["placed", "shipped", None] * 100)})
    read: list[list[str]] = []
    original = contract_scan._Source.reader

    def spying(self: contract_scan._Source, *args: object, **kwargs: object) -> object:
        inner = original(self, *args, **kwargs)  # type: ignore[arg-type]

        def wrapped(i: int, wanted: list[str]) -> object:
            read.append(wanted)
            return inner(i, wanted)

        return wrapped

    monkeypatch.setattr(contract_scan._Source, "reader", spying)
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "t.parquet")
        pq.write_table(table, path, row_group_size=50)
        measure = Invalid("s", valid_values=("placed", "shipped"))
        counted = measure_all(path, _no_duckdb, "t", table.schema, [measure])
    assert counted[measure] == 0
    assert read == [[]] * 6


def test_page_headers_longer_than_the_first_read_are_read_whole() -> None:
    """Page statistics of long strings make a page header longer than the first 1 KiB the
    reader takes: it reads more, and finds the same dictionary."""
    long_words = ["a" * 3000, "b" * 3000, "c"]
    table = pa.table({"s": pa.array(long_words * 20)})
    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "t.parquet")
        pq.write_table(table, path, data_page_size=64, compression="zstd")
        chunk = _column_chunk(pq.read_metadata(path).row_group(0), "s")
        assert chunk is not None
        dictionary = chunk_dictionary(path, chunk)
    assert dictionary is not None and sorted(dictionary.to_pylist()) == sorted(long_words)


def test_a_dictionary_not_worth_it_stops_the_reading() -> None:
    table = pa.table({"s": pa.array(["x", "y"] * 50)})
    asked: list[list[str]] = []

    def unwanted(values: pa.Array) -> bool:
        asked.append(values.to_pylist())
        return False

    with tempfile.TemporaryDirectory() as folder:
        path = str(Path(folder) / "t.parquet")
        pq.write_table(table, path)
        chunk = _column_chunk(pq.read_metadata(path).row_group(0), "s")
        assert chunk is not None
        assert chunk_dictionary(path, chunk, unwanted) is None
        assert chunk_dictionary(path, chunk) is not None
    assert [sorted(v) for v in asked] == [["x", "y"]]
