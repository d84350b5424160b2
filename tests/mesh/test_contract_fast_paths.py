"""The contract scan's exact shortcuts against the plain evaluation, on generated data:
the pattern check that reads each value's middle in place (no copy), on sliced and
multi-chunk arrays with multi-byte characters; dictionary rows counted per flagged index;
distinct integers counted through a histogram of their range; scalars built from buffers."""

from __future__ import annotations

import re
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshops.mesh.contract_scan import (
    Duplicates,
    Invalid,
    Missing,
    _pattern_matches,
    _scalar,
    measure_all,
)
from meshops.mesh.simple_patterns import simple_pattern

PATTERNS = [
    r"^c[0-9]+@example\.com$",
    "a[0-9]{2,3}b",
    "[A-Za-z]*",
    r"ab\d?",
    "@[a-zA-Z0-9]{0,2}",
    "x",
]
ALPHABET = "abcx@.com9017Z\u00e9\u0661\u4e2d\n"


def _no_duckdb() -> duckdb.DuckDBPyConnection:
    raise AssertionError("these measures are counted without DuckDB")


@settings(max_examples=300, deadline=None)
@given(
    pattern=st.sampled_from(PATTERNS),
    values=st.lists(st.one_of(st.none(), st.text(alphabet=ALPHABET, max_size=10)), max_size=30),
    cut=st.tuples(st.integers(0, 30), st.integers(0, 30)),
    large=st.booleans(),
)
def test_patterns_on_slices_match_as_re2_does(
    pattern: str, values: list[str | None], cut: tuple[int, int], large: bool
) -> None:
    """A slice shares its parent's buffers at an offset: the in-place middles must read the
    slice's own values, and a middle cut inside a multi-byte character must not match."""
    assert simple_pattern(pattern) is not None
    array = pa.array(values, pa.large_string() if large else pa.string())
    start, stop = min(cut), max(cut)
    part = array.slice(start, stop - start)
    fast = _pattern_matches(part, Invalid("s", pattern=pattern))
    assert fast.equals(pc.match_substring_regex(part, f"^(?:{pattern})$"))
    brute = [
        None if v is None else re.fullmatch(pattern, v, re.ASCII) is not None
        for v in part.to_pylist()
    ]
    assert fast.to_pylist() == brute


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.one_of(st.none(), st.text(alphabet=ALPHABET, max_size=8)), max_size=40),
    chunks=st.integers(1, 4),
)
def test_pattern_counts_over_chunks_equal_the_brute_force(
    values: list[str | None], chunks: int
) -> None:
    pattern = r"^c[0-9]+@example\.com$"
    array = pa.array(values, pa.string())
    size = max(1, -(-len(values) // chunks))
    parts = [array.slice(i, size) for i in range(0, len(values), size)] or [array]
    table = pa.table({"s": pa.chunked_array(parts, pa.string())})
    measure = Invalid("s", pattern=pattern)
    counted = measure_all(table, _no_duckdb, "t", table.schema, [measure])[measure]
    assert counted == sum(
        1 for v in values if v is not None and not re.fullmatch(pattern, v, re.ASCII)
    )


@settings(max_examples=80, deadline=None)
@given(
    indices=st.lists(st.one_of(st.none(), st.integers(0, 7)), max_size=60),
    invalid=st.sets(st.integers(0, 7)),
    index_type=st.sampled_from([pa.int8(), pa.int32(), pa.uint16(), pa.int64(), pa.uint64()]),
)
def test_rows_of_few_and_many_flagged_values_equal_the_brute_force(
    indices: list[int | None], invalid: set[int], index_type: pa.DataType
) -> None:
    """Up to FEW_FLAGGED flagged dictionary values are counted by comparisons, more by a
    bincount: both must count every row pointing at a flagged value, nulls excluded."""
    words = [f"w{i}" for i in range(8)]
    column = pa.DictionaryArray.from_arrays(pa.array(indices, index_type), pa.array(words))
    table = pa.table({"c": column})
    valid = tuple(w for i, w in enumerate(words) if i not in invalid)
    measure_invalid = Invalid("c", valid_values=valid)
    measure_missing = Missing("c", values=tuple(words[i] for i in sorted(invalid)))
    counted = measure_all(table, _no_duckdb, "t", table.schema, [measure_invalid, measure_missing])
    flagged = sum(1 for i in indices if i is not None and i in invalid)
    assert counted[measure_invalid] == flagged
    assert counted[measure_missing] == flagged + sum(1 for i in indices if i is None)


@settings(max_examples=80, deadline=None)
@given(
    values=st.lists(st.integers(-5, 60), min_size=1, max_size=80),
    dtype=st.sampled_from([pa.int8(), pa.int16(), pa.int32(), pa.int64()]),
)
def test_distinct_integers_of_narrow_and_wide_ranges_equal_the_brute_force(
    values: list[int], dtype: pa.DataType
) -> None:
    """A range no wider than the rows is counted by a histogram, a wider one (up to
    SMALL_RANGE_FACTOR times) by a bitmap: both exact."""
    table = pa.table({"n": pa.array(values, dtype)})
    measure = Duplicates(("n",))
    counted = measure_all(table, _no_duckdb, "t", table.schema, [measure])[measure]
    assert counted == len(values) - len(set(values))


@pytest.mark.parametrize(
    ("value", "dtype"),
    [
        (True, pa.bool_()),
        (False, pa.bool_()),
        (-(2**63), pa.int64()),
        (2**63 - 1, pa.int64()),
        (0.1, pa.float64()),
        (float("-inf"), pa.float64()),
        ("", pa.string()),
        ("é@x", pa.large_string()),
    ],
)
def test_scalars_from_buffers_equal_converted_scalars(value: Any, dtype: pa.DataType) -> None:
    built = _scalar(value, dtype)
    assert built.type == dtype
    assert built.equals(pa.scalar(value, dtype))
