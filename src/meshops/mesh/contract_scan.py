"""Exact column measures for contract rules, each column read once (a column whose order
proof fails: twice), row groups in parallel.

A contract test asks for counts: rows, nulls, duplicates, missing and invalid values. The
SQL expression of each measure (`Measure.sql`) is the definition; DuckDB evaluates it when
no faster exact path applies. The faster paths, all exact:

  rows, nulls     Parquet footer statistics (row counts, per-row-group null counts) or the
                  Arrow null bitmaps -- no value is decoded
  uniqueness      a column whose non-null values are strictly increasing (or decreasing)
                  has no duplicates; checked with Arrow comparisons in one pass instead of
                  building a hash table of every value (ids are usually written in order).
                  The first read keeps no value of an ordered run; when the proof fails
                  the column is read again and its distinct values counted exactly: one
                  NumPy sort of the integers under integer and temporal columns, Arrow
                  hashing of strings, binaries and decimals, DuckDB's count(DISTINCT) for
                  floats and for tuples no member column proves distinct.
  value sets      `IN` lists and patterns on string columns with Arrow compute (RE2, like
                  DuckDB); on dictionary-encoded data each distinct value is tested once
                  and the rows are counted through the dictionary indices. A pattern of the
                  shape LITERAL CLASS{m,n} LITERAL (ASCII literals, a digit, letter or
                  alphanumeric class) skips the regex engine: prefix, suffix, length and one
                  character-class kernel decide a full match exactly, several times
                  faster than RE2 (simple_patterns.py); any other pattern goes to RE2. A
                  Parquet row group whose dictionary page holds every value of a string
                  column and none invalid has no invalid row: its rows are not read
                  (parquet_pages.py)
  small ranges    duplicates of an integer column whose values span a range not much wider
                  than its row count are counted through a bitmap of the range, per
                  partition, instead of sorted; a Parquet row group of such a column is
                  read only until its values hold every integer between its least and
                  greatest value (its statistics): the rest adds no distinct value

A table format that keeps exact statistics beside the data (Iceberg's manifests:
iceberg_stats.py) passes them as `StoredStatistics`: its row count, null counts and value
bounds answer row counts, null counts and range checks the bounds prove empty, with no value
read.

The Arrow work runs per partition (a Parquet row group, or a slice of an in-memory table;
a row group's columns in groups of about equal size, each a task) on a thread pool as wide
as the machine: Arrow releases the GIL while decoding and computing, so the partitions use
every core. Each partition is decoded and measured in batches of `BATCH_ROWS` rows, which
keeps memory flat (10^8 rows in under 0.4 GB).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any, TypeVar

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from meshops.kernel.errors import InvalidInput
from meshops.mesh.parquet_pages import chunk_dictionary
from meshops.mesh.simple_patterns import class_matches, simple_pattern

# Rows per partition of an in-memory table: big enough that per-call overhead vanishes,
# small enough that both cores get work on a few million rows.
TABLE_PARTITION_ROWS = 1 << 20
# A Parquet string column whose pages average at most this many bytes per value is almost
# surely dictionary-encoded throughout (a PLAIN value takes 4 bytes of length prefix alone):
# reading it as an Arrow dictionary tests each distinct value once. Only speed depends on
# this guess: a column that fell back to PLAIN pages is hashed into a dictionary, slowly.
DICTIONARY_BYTES_PER_VALUE = 2.0
# Rows decoded and measured at a time within a partition. Decoding a whole row group at
# once builds buffers of tens of MB (10^6 e-mails: 23 MB of text, grown by doubling),
# which the allocator takes fresh from the OS and gives back: zeroing those pages cost a
# third of a contract test's CPU. Batches of this size reuse the same few MB instead and
# stay in the CPU's caches between decoding and measuring; per-batch overheads are still
# small (a dozen Arrow calls per column per 131,072 rows).
BATCH_ROWS = 1 << 17

_Columns = dict[str, pa.ChunkedArray]  # one batch's columns by name


def quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def literal(value: Any) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, bool):
        return "TRUE" if value else "FALSE"
    if isinstance(value, int | float):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def _is_string(dtype: pa.DataType) -> bool:
    if pa.types.is_dictionary(dtype):
        return _is_string(dtype.value_type)
    return bool(
        pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_string_view(dtype)
    )


def _is_signed_integer(dtype: pa.DataType) -> bool:
    if pa.types.is_dictionary(dtype):
        return _is_signed_integer(dtype.value_type)
    return bool(pa.types.is_signed_integer(dtype))


def _is_fixed_temporal(dtype: pa.DataType) -> bool:
    """Dates, times, timestamps and durations: one 32- or 64-bit integer per value."""
    return bool(
        pa.types.is_date(dtype)
        or pa.types.is_time(dtype)
        or pa.types.is_timestamp(dtype)
        or pa.types.is_duration(dtype)
    )


def _is_orderable(dtype: pa.DataType) -> bool:
    """Types whose Arrow order makes 'strictly increasing' imply 'pairwise distinct' in
    DuckDB's sense of DISTINCT (NaN and -0.0 never pass a strict comparison chain)."""
    return bool(
        pa.types.is_integer(dtype)
        or pa.types.is_floating(dtype)
        or pa.types.is_decimal(dtype)
        or _is_fixed_temporal(dtype)
        or pa.types.is_string(dtype)
        or pa.types.is_large_string(dtype)
        or pa.types.is_binary(dtype)
        or pa.types.is_large_binary(dtype)
    )


def _exact_count_method(dtype: pa.DataType) -> str | None:
    """How Arrow/NumPy count distinct values exactly as DuckDB's DISTINCT would: "sort" the
    integers underneath integer and temporal types, "hash" strings, binaries and decimals;
    None for floats (Arrow keeps -0.0 and 0.0 apart, DuckDB does not) and other types."""
    if pa.types.is_integer(dtype) or _is_fixed_temporal(dtype):
        return "sort"
    if _is_orderable(dtype) and not pa.types.is_floating(dtype):
        return "hash"
    return None


def _storage_integers(values: pa.Array) -> np.ndarray[Any, Any]:
    """The integers a null-free integer or temporal array stores, viewed without copying.
    Read from the buffer directly: Array.to_numpy() imports pandas (seconds under load)."""
    width = values.type.bit_width
    signed = not pa.types.is_unsigned_integer(values.type)
    dtype = np.dtype(f"{'i' if signed else 'u'}{width // 8}")
    data = values.buffers()[1]
    return np.frombuffer(
        data, dtype=dtype, count=len(values), offset=values.offset * dtype.itemsize
    )


def _same_kind(values: Sequence[Any], dtype: pa.DataType) -> bool:
    """Literals Arrow compares exactly as DuckDB would (no implicit casts in between)."""
    if _is_string(dtype):
        return all(isinstance(v, str) for v in values)
    if _is_signed_integer(dtype):
        return all(
            isinstance(v, int) and not isinstance(v, bool) and -(2**63) <= v < 2**63 for v in values
        )
    return False


@lru_cache(maxsize=256)  # each batch of a column asks again for the same set
def _value_set(values: tuple[Any, ...], dtype: pa.DataType) -> pa.Array:
    """`values` (all str, or all int64 for an integer column) as an Arrow array for `dtype`.
    Built from buffers: converting Python objects with pa.array() imports pandas, a second
    or more of a contract test on a loaded machine."""
    if not _is_string(dtype):
        numbers = np.asarray(values, dtype=np.int64)
        return pa.Array.from_buffers(pa.int64(), len(values), [None, pa.py_buffer(numbers)])
    encoded = [str(v).encode() for v in values]
    offsets = np.cumsum([0, *(len(e) for e in encoded)], dtype=np.int32)
    buffers = [None, pa.py_buffer(offsets), pa.py_buffer(b"".join(encoded))]
    return pa.Array.from_buffers(pa.string(), len(values), buffers).cast(dtype)


def _scalar(value: bool | int | float | str, dtype: pa.DataType) -> pa.Scalar:
    """`value` as an Arrow scalar of `dtype` (bool, int64, float64 or a string type), built
    from buffers: pa.scalar() converts a Python object, and the first conversion in a
    process imports pandas (a quarter of a second, more under load)."""
    if isinstance(value, str):
        return _value_set((value,), dtype)[0]
    if pa.types.is_boolean(dtype):
        data = pa.py_buffer(b"\x01" if value else b"\x00")
    else:
        data = pa.py_buffer(np.array([value], dtype=_NUMPY_TYPES[dtype]))
    return pa.Array.from_buffers(dtype, 1, [None, data])[0]


_NUMPY_TYPES = {pa.int64(): np.int64, pa.float64(): np.float64}
_FALSE = _scalar(False, pa.bool_())


# --- measures ---


@dataclass(frozen=True)
class RowCount:
    def sql(self) -> str:
        return "count(*)"


@dataclass(frozen=True)
class NullCount:
    column: str

    def sql(self) -> str:
        return f"count(*) - count({quote(self.column)})"


@dataclass(frozen=True)
class Duplicates:
    """`count(col) - count(DISTINCT col)` (nulls ignored), or with `count_rows` the
    ODCS duplicateValues form `count(*) - count(DISTINCT (cols))`: for one column its nulls
    count as duplicates; for several, the tuples are compared (nulls inside included)."""

    columns: tuple[str, ...]
    count_rows: bool = False

    def __post_init__(self) -> None:
        if not self.count_rows and len(self.columns) != 1:
            raise ValueError("duplicates of several columns are counted by rows")

    def sql(self) -> str:
        if not self.columns:
            return "0"
        row = ", ".join(quote(c) for c in self.columns)
        if self.count_rows:
            return f"count(*) - count(DISTINCT ({row}))"
        return f"count({row}) - count(DISTINCT {row})"


@dataclass(frozen=True)
class Missing:
    """Rows that are null or one of `values` (with `text`, compared with the column's text:
    for columns whose values have no literal form in a contract, such as dates)."""

    column: str
    values: tuple[Any, ...] = ()
    text: bool = False

    def sql(self) -> str:
        col = _operand(self.column, self.text)
        extra = (
            f" OR {col} IN ({', '.join(literal(v) for v in self.values)})" if self.values else ""
        )
        return f"count(*) FILTER (WHERE {quote(self.column)} IS NULL{extra})"


@dataclass(frozen=True)
class Invalid:
    """Non-null rows outside `valid_values` or not fully matching `pattern` (a null row is
    never invalid: nulls are what nullValues and missingValues count). `valid_values` holds
    no None: a null among a contract's valid values changes nothing, and an empty tuple
    makes every non-null value invalid."""

    column: str
    valid_values: tuple[Any, ...] | None = None
    pattern: str | None = None
    text: bool = False

    def __post_init__(self) -> None:
        if self.valid_values is None and not self.pattern:
            raise ValueError("invalid values need valid values or a pattern")
        if self.valid_values is not None and any(v is None for v in self.valid_values):
            raise ValueError("valid values hold no null: null rows are never invalid")

    def sql(self) -> str:
        col = quote(self.column)
        conditions = []
        if self.valid_values is not None:
            if self.valid_values:
                listed = ", ".join(literal(v) for v in self.valid_values)
                conditions.append(f"{_operand(self.column, self.text)} NOT IN ({listed})")
            else:
                conditions.append("TRUE")
        if self.pattern:
            conditions.append(
                f"NOT regexp_full_match(CAST({col} AS VARCHAR), {literal(self.pattern)})"
            )
        return f"count(*) FILTER (WHERE {col} IS NOT NULL AND ({' OR '.join(conditions)}))"


@dataclass(frozen=True)
class OutOfRange:
    """Non-null rows below `low` or above `high`: bounds included (the ODCS 3.0 `between`,
    `minCheck` and `maxCheck` rules' min and max, logicalTypeOptions minimum / maximum), or
    with `open` excluded (exclusiveMinimum / exclusiveMaximum: a value equal to the bound
    is out)."""

    column: str
    low: float | None = None
    high: float | None = None
    open: bool = False

    def __post_init__(self) -> None:
        if self.low is None and self.high is None:
            raise ValueError("a range needs a low or a high bound")

    def sql(self) -> str:
        col = quote(self.column)
        below, above = ("<=", ">=") if self.open else ("<", ">")
        conditions = [f"{col} {below} {self.low!r}"] if self.low is not None else []
        if self.high is not None:
            conditions.append(f"{col} {above} {self.high!r}")
        return f"count(*) FILTER (WHERE {' OR '.join(conditions)})"


def _operand(column: str, text: bool) -> str:
    return f"CAST({quote(column)} AS VARCHAR)" if text else quote(column)


Measure = RowCount | NullCount | Duplicates | Missing | Invalid | OutOfRange
_ValueMeasure = Missing | Invalid | OutOfRange


# --- what the Arrow pass computes per partition ---


@dataclass
class _Order:
    """Order of one column's non-null values in a run of rows: enough to chain runs."""

    count: int = 0
    first: pa.Scalar | None = None
    last: pa.Scalar | None = None
    increasing: bool = True
    decreasing: bool = True

    def then(self, other: _Order) -> _Order:
        if other.count == 0:
            return self
        if self.count == 0:
            return other
        assert self.last is not None and other.first is not None
        return _Order(
            self.count + other.count,
            self.first,
            other.last,
            self.increasing and other.increasing and _greater(other.first, self.last),
            self.decreasing and other.decreasing and _greater(self.last, other.first),
        )

    @property
    def strict(self) -> bool:
        return self.increasing or self.decreasing


def _greater(a: pa.Scalar, b: pa.Scalar) -> bool:
    return bool(pc.greater(a, b).as_py())


def _non_null_values(chunk: pa.Array) -> pa.Array:
    if isinstance(chunk, pa.DictionaryArray):
        chunk = chunk.dictionary_decode()
    return chunk.drop_null() if chunk.null_count else chunk


def _order_of(values: pa.Array) -> _Order:
    n = len(values)
    if n == 0:
        return _Order()
    if n == 1:
        return _Order(1, values[0], values[0])
    later, earlier = values.slice(1), values.slice(0, n - 1)
    increasing = _every(pc.greater, later, earlier)
    decreasing = not increasing and _every(pc.less, later, earlier)
    return _Order(n, values[0], values[n - 1], increasing, decreasing)


# The order of a column's first values is compared before all of them: a column in no
# order (most that are not ids) shows it within a few values, and its full comparisons
# (two passes over every batch) are skipped.
ORDER_PROBE = 32


def _every(compare: Callable[[pa.Array, pa.Array], pa.Array], a: pa.Array, b: pa.Array) -> bool:
    """Does compare(a[k], b[k]) hold at every k (a and b of one length, null-free)."""
    if len(a) > ORDER_PROBE:
        head = compare(a.slice(0, ORDER_PROBE), b.slice(0, ORDER_PROBE))
        if not pc.all(head).as_py():
            return False
    return bool(pc.all(compare(a, b)).as_py())


@dataclass
class _Distinct:
    """What decides a column's duplicates in a run of rows: the order of its non-null values
    (a strict order proves them distinct) and what an exact count needs otherwise (None:
    DuckDB counts them): for "sort", the values themselves; for "hash", each partition's
    distinct values. `complete` is false when the values of some strictly ordered run were
    not kept (the first pass keeps none: see `_arrow_pass`)."""

    order: _Order = field(default_factory=_Order)
    parts: list[pa.Array] | None = field(default_factory=list)
    method: str | None = None
    complete: bool = True

    def then(self, other: _Distinct) -> _Distinct:
        parts: list[pa.Array] | None = None
        if self.parts is not None and other.parts is not None:
            parts = [*self.parts, *other.parts]
        return _Distinct(
            self.order.then(other.order),
            parts,
            self.method or other.method,
            self.complete and other.complete,
        )

    @property
    def needs_values(self) -> bool:
        """The order proves nothing and the values to count were not all kept."""
        return not self.order.strict and self.method is not None and not self.complete

    def distinct_count(self) -> int | None:
        """Distinct non-null values, or None when only DuckDB can count them."""
        if self.order.strict:
            return self.order.count
        if self.parts is None or self.method is None:
            return None
        assert self.complete, "a second pass keeps the values of every run"
        if not self.parts:
            return 0
        if self.method == "sort":
            # one vectorised sort beats hashing 10^7 integers several times over
            merged = np.concatenate([_storage_integers(p) for p in self.parts])
            merged.sort()
            return int(np.count_nonzero(merged[1:] != merged[:-1])) + 1
        return len(pc.unique(pa.chunked_array(self.parts, self.parts[0].type)))


def _distinct_of(chunk: pa.Array, method: str | None, keep_ordered: bool) -> _Distinct:
    """`chunk`'s order, and its distinct values unless they are strictly ordered and not
    `keep_ordered`."""
    values = _non_null_values(chunk)
    order = _order_of(values)
    if method is None:
        return _Distinct(order, None)
    if order.strict and not keep_ordered:
        return _Distinct(order, [], method, complete=False)
    if order.strict:
        keep = values
    elif method == "sort":
        keep = _small_range_distinct(values) or values
    else:
        # hashing per partition first keeps only the distinct values of low-cardinality columns
        keep = pc.unique(values)
    return _Distinct(order, [keep], method)


# A partition's integers are marked in a bitmap of their range when the range is at most
# this many times their count: the bitmap costs no more memory than the values themselves.
SMALL_RANGE_FACTOR = 4


def _small_range_distinct(values: pa.Array) -> pa.Array | None:
    """The distinct values of a null-free integer or temporal array in ascending order, found
    through a bitmap of their range; None when the range is too wide (or the storage is
    unsigned 64-bit, whose range arithmetic numpy cannot do in int64)."""
    ints = _storage_integers(values)
    if len(ints) == 0 or ints.dtype == np.uint64:
        return None
    low, high = int(ints.min()), int(ints.max())
    if high - low >= SMALL_RANGE_FACTOR * len(ints):
        return None
    span = high - low + 1
    # the offsets fit 32 bits (the range is at most 4x a partition's rows); narrower
    # integers are widened first so that their offsets cannot wrap
    wide = ints if ints.dtype.itemsize >= 4 else ints.astype(np.int32)
    shifted = wide - wide.dtype.type(low)
    if span <= len(ints):
        # a count per value of the range then takes at most 8 bytes per row, and counting
        # is several times faster than scattering flags
        seen = np.bincount(shifted, minlength=span) > 0
    else:
        seen = np.zeros(span, dtype=np.bool_)
        seen[shifted] = True
    distinct = (np.flatnonzero(seen) + low).astype(ints.dtype)
    return pa.Array.from_buffers(values.type, len(distinct), [None, pa.py_buffer(distinct)])


def _pattern_matches(values: pa.Array, measure: Invalid) -> pa.Array:
    assert measure.pattern
    simple = simple_pattern(measure.pattern)
    if simple is not None and (
        pa.types.is_string(values.type) or pa.types.is_large_string(values.type)
    ):
        if simple.kernel is None:  # a literal: the whole value equals it
            return pc.equal(values, _scalar(simple.prefix, values.type))
        return class_matches(values, simple)
    try:
        return pc.match_substring_regex(values, _full_match(measure.pattern))
    except pa.ArrowInvalid as exc:
        raise InvalidInput(
            f"invalid pattern {measure.pattern!r} for column {measure.column}: {exc}",
            {"field": "quality.arguments.pattern", "fix": "use RE2 regular expression syntax"},
        ) from exc


def _full_match(pattern: str) -> str:
    # RE2 without the multi-line flag: ^ and $ are the ends of the text, so this is
    # DuckDB's regexp_full_match (also RE2) as a search.
    return f"^(?:{pattern})$"


def _offending(chunk: pa.Array, measure: _ValueMeasure) -> int:
    """Rows of `chunk` the measure counts; dictionary chunks test each value once."""
    if isinstance(chunk, pa.DictionaryArray):
        flags = pc.fill_null(_value_flags(chunk.dictionary, measure), _FALSE)
        counted = 0
        if pc.any(flags).as_py():
            counted = _rows_of_flagged(chunk.indices, flags)
    else:
        counted = int(pc.sum(_value_flags(chunk, measure)).as_py() or 0)  # nulls not summed
    return counted + chunk.null_count if isinstance(measure, Missing) else counted


# With at most this many flagged dictionary values, the rows of each are counted by one
# comparison pass apiece (a tenth of a bincount's time); with more, by one bincount.
FEW_FLAGGED = 4


def _rows_of_flagged(indices: pa.Array, flags: pa.Array) -> int:
    """Rows whose dictionary index points at a flagged value, counted per index instead of
    gathering a flag per row."""
    present = indices.drop_null() if indices.null_count else indices
    positions = _storage_integers(present)
    flagged = np.flatnonzero(
        np.frombuffer(flags.cast(pa.uint8()).buffers()[1], np.uint8, len(flags))
    )
    if len(flagged) <= FEW_FLAGGED:
        # each index as the positions' own type: a NumPy int64 would widen them all first
        of_type = positions.dtype.type
        return sum(int(np.count_nonzero(positions == of_type(k))) for k in flagged)
    if positions.dtype == np.uint64:  # bincount takes no unsigned 64-bit indices
        positions = positions.astype(np.int64)
    per_value = np.bincount(positions, minlength=len(flags))
    return int(per_value[flagged].sum())


def _value_flags(values: pa.Array, measure: _ValueMeasure) -> pa.Array:
    """Per value: does the measure count it (false or null for null values)."""
    if isinstance(measure, Missing):
        # is_in is false for null rows (no null in the set): _offending adds the nulls
        return pc.is_in(values, _value_set(measure.values, values.type))
    if isinstance(measure, OutOfRange):
        out: pa.Array | None = None
        less, greater = (pc.less_equal, pc.greater_equal) if measure.open else (pc.less, pc.greater)
        if measure.low is not None:
            out = less(values, _bound(measure.low))
        if measure.high is not None:
            above = greater(values, _bound(measure.high))
            out = above if out is None else pc.or_kleene(out, above)
        assert out is not None
        return out
    bad: pa.Array | None = None
    if measure.valid_values is not None:
        outside = pc.invert(pc.is_in(values, _value_set(measure.valid_values, values.type)))
        bad = pc.and_(outside, pc.is_valid(values))  # null rows are never invalid
    if measure.pattern:
        unmatched = pc.invert(_pattern_matches(values, measure))
        bad = unmatched if bad is None else pc.or_kleene(bad, unmatched)
    assert bad is not None
    return bad


def _bound(value: float) -> pa.Scalar:
    """A range bound for an integer column: exact as int64 when integral."""
    if float(value).is_integer() and -(2**63) <= value < 2**63:
        return _scalar(int(value), pa.int64())
    return _scalar(float(value), pa.float64())


@dataclass
class _ColumnWork:
    nulls: bool = False
    distinct: bool = False  # probe the order (and maybe hash the values) for duplicates
    count_method: str | None = None
    value_sets: list[_ValueMeasure] = field(default_factory=list)
    keep_ordered: bool = False  # keep strictly ordered values too (the second pass)


@dataclass
class _Partial:
    nulls: dict[str, int] = field(default_factory=dict)
    distinct: dict[str, _Distinct] = field(default_factory=dict)
    counts: dict[_ValueMeasure, int] = field(default_factory=dict)

    def then(self, later: _Partial) -> _Partial:
        """The findings of this run of rows followed by `later`'s."""
        return _Partial(
            _added(self.nulls, later.nulls),
            {
                **self.distinct,
                **{
                    name: self.distinct[name].then(d) if name in self.distinct else d
                    for name, d in later.distinct.items()
                },
            },
            _added(self.counts, later.counts),
        )


_K = TypeVar("_K")


def _added(a: dict[_K, int], b: dict[_K, int]) -> dict[_K, int]:
    return {**a, **{key: a.get(key, 0) + value for key, value in b.items()}}


@dataclass
class _Findings:
    """What the Arrow pass learnt, by column (distinct: counts of non-null values)."""

    nulls: dict[str, int] = field(default_factory=dict)
    distinct: dict[str, int | None] = field(default_factory=dict)
    counts: dict[_ValueMeasure, int] = field(default_factory=dict)
    strict: set[str] = field(default_factory=set)  # non-null values strictly ordered


def _scan_partition(
    batches: Iterable[_Columns],
    work: dict[str, _ColumnWork],
    finished: Callable[[_Partial], bool] | None = None,
) -> _Partial:
    """One partition's findings, its batches measured one after the other (in row order)
    until `finished` says the findings so far are those of the whole partition; a
    partition without rows finds nothing (zero counts, no values)."""
    partial = _Partial(
        {name: 0 for name, todo in work.items() if todo.nulls},
        {name: _Distinct(method=todo.count_method) for name, todo in work.items() if todo.distinct},
        {measure: 0 for todo in work.values() for measure in todo.value_sets},
    )
    for columns in batches:
        partial = partial.then(_scan_batch(columns, work))
        if finished is not None and finished(partial):
            break  # the rest of the partition is not decoded
    return partial


def _may_finish_early(todo: _ColumnWork) -> bool:
    """Work that ends when a partition's values cover its range (see `_covering`)."""
    return todo.distinct and todo.count_method == "sort" and not todo.nulls and not todo.value_sets


def _covering(name: str, low: int, high: int) -> Callable[[_Partial], bool]:
    """A test of a partition's findings so far: do the distinct values of integer column
    `name` seen hold every integer from `low` to `high`, the least and greatest value of
    the partition (its Parquet statistics)? Then its other values are among them, and
    reading them would change nothing: its distinct values are known (the order of its
    values is not, and is no longer claimed). Only ranges up to BATCH_ROWS wide are
    tested (a small-range column such as a quantity: one batch of a row group is read)."""
    span = high - low + 1

    def covered(partial: _Partial) -> bool:
        found = partial.distinct[name]
        if span > BATCH_ROWS or not found.complete or not found.parts:
            return False
        seen = np.unique(np.concatenate([_storage_integers(p) for p in found.parts]))
        kept = pa.Array.from_buffers(found.parts[0].type, len(seen), [None, pa.py_buffer(seen)])
        if len(seen) != span or int(seen[0]) != low or int(seen[-1]) != high:
            partial.distinct[name] = _Distinct(found.order, [kept], found.method)
            return False  # (a value outside the bounds: statistics not to be trusted)
        order = _Order(found.order.count, found.order.first, found.order.last, False, False)
        partial.distinct[name] = _Distinct(order, [kept], found.method)
        return True

    return covered


def _scan_batch(columns: _Columns, work: dict[str, _ColumnWork]) -> _Partial:
    partial = _Partial()
    for name, todo in work.items():
        data = columns[name]
        if todo.nulls:
            partial.nulls[name] = data.null_count
        if todo.distinct:
            distinct = _Distinct()
            for chunk in data.chunks:
                distinct = distinct.then(_distinct_of(chunk, todo.count_method, todo.keep_ordered))
            partial.distinct[name] = distinct
        for measure in todo.value_sets:
            partial.counts[measure] = sum(_offending(chunk, measure) for chunk in data.chunks)
    return partial


# --- sources: where partitions come from ---


@dataclass(frozen=True)
class StoredStatistics:
    """Exact statistics of the rows under test, kept beside them (a table format's
    metadata): the row count, null counts of some columns, and for some numeric columns
    the least and greatest non-null value (no NaN among the values: DuckDB orders NaN
    above every number, so a column with NaN has no bounds here)."""

    rows: int
    nulls: dict[str, int] = field(default_factory=dict)
    bounds: dict[str, tuple[float, float]] = field(default_factory=dict)

    def out_of_range(self, measure: OutOfRange) -> int | None:
        """0 when the bounds (or a column of nulls) prove no value out of range; None when
        only counting the values tells."""
        if self.nulls.get(measure.column) == self.rows:
            return 0
        bounds = self.bounds.get(measure.column)
        if bounds is None:
            return None
        least, greatest = bounds
        if measure.open:
            below = measure.low is not None and least <= measure.low
            above = measure.high is not None and greatest >= measure.high
        else:
            below = measure.low is not None and least < measure.low
            above = measure.high is not None and greatest > measure.high
        return None if below or above else 0


class _Source:
    """Row count, cheap null counts and the partitions of a Parquet file or Arrow table."""

    def __init__(self, source: pa.Table | str, statistics: StoredStatistics | None = None) -> None:
        self.table = source if isinstance(source, pa.Table) else None
        self.path = source if isinstance(source, str) else None
        self.metadata = pq.read_metadata(source) if isinstance(source, str) else None
        self.statistics = statistics

    @property
    def rows(self) -> int:
        if self.statistics is not None:
            return self.statistics.rows
        if self.table is not None:
            return int(self.table.num_rows)
        assert self.metadata is not None
        return int(self.metadata.num_rows)

    def stored_nulls(self, column: str) -> int | None:
        """Nulls of `column` without reading it, when the source knows them exactly."""
        if self.statistics is not None and column in self.statistics.nulls:
            return self.statistics.nulls[column]
        if self.table is not None:
            return int(self.table.column(column).null_count)
        assert self.metadata is not None
        total = 0
        for group in range(self.metadata.num_row_groups):
            chunk = _column_chunk(self.metadata.row_group(group), column)
            stats = chunk.statistics if chunk is not None else None
            if stats is None or not stats.has_null_count:
                return None
            total += int(stats.null_count)
        return total

    def partition_count(self) -> int:
        if self.metadata is not None:
            return int(self.metadata.num_row_groups)
        assert self.table is not None
        return max(1, -(-int(self.table.num_rows) // TABLE_PARTITION_ROWS))

    def reader(
        self, columns: list[str], plain: set[str], threads: bool
    ) -> Callable[[int, list[str]], Iterator[_Columns]]:
        """A function reading partition i's `wanted` columns (some of `columns`) as batches
        of {name: ChunkedArray}, in row order."""
        if self.table is not None:
            table = self.table.select(columns)

            def slice_of(i: int, wanted: list[str]) -> Iterator[_Columns]:
                part = table.slice(i * TABLE_PARTITION_ROWS, TABLE_PARTITION_ROWS)
                for start in range(0, part.num_rows, BATCH_ROWS):
                    batch = part.slice(start, BATCH_ROWS)  # no copy: the measures' buffers
                    yield {name: batch.column(name) for name in wanted}  # stay small

            return slice_of
        assert self.path is not None and self.metadata is not None
        path, metadata = self.path, self.metadata
        # columns probed for duplicates are compared and hashed as plain values
        as_dictionary = [c for c in columns if c not in plain and self._dictionary_encoded(c)]

        def row_group(i: int, wanted: list[str]) -> Iterator[_Columns]:
            if not wanted:
                return
            # One reader per call: readers are not shared between threads.
            reader = pq.ParquetReader(memory_pool=_decode_pool())
            reader.open(path, metadata=metadata, read_dictionary=as_dictionary)
            # the leaves (Parquet columns) under the wanted top-level fields, as paths
            leaves = [j for j, at in enumerate(reader.column_paths) if at[0] in wanted]
            for batch in reader.iter_batches(BATCH_ROWS, [i], leaves, use_threads=threads):
                yield {name: pa.chunked_array([batch.column(name)]) for name in wanted}

        return row_group

    def column_groups(
        self, columns: list[str], workers: int, alone: Iterable[str] = ()
    ) -> list[list[str]]:
        """`columns` as the groups each partition is read in, one task per group: with
        several workers, a Parquet file's columns in two groups of about equal decoded size
        (the footer's uncompressed sizes). Ten row groups on two cores otherwise leave one
        core idle for half a row group at the end, on average: 5 % of a contract test.
        Columns `alone` (of a Parquet file) are groups of their own. The largest group
        comes first: its tasks start first, and the last tasks to run are small ones."""
        if self.metadata is None:
            return [columns]
        size = dict.fromkeys(columns, 0)
        for group in range(self.metadata.num_row_groups):
            for name in columns:
                chunk = _column_chunk(self.metadata.row_group(group), name)
                size[name] += chunk.total_uncompressed_size if chunk is not None else 0
        singles = [[name] for name in columns if name in set(alone)]
        rest = [name for name in columns if [name] not in singles]
        groups: list[list[str]] = [rest] if workers <= 1 or len(rest) < 2 else [[], []]
        if len(groups) == 2:
            totals = [0, 0]
            for name in sorted(rest, key=lambda c: -size[c]):
                lighter = 0 if totals[0] <= totals[1] else 1
                groups[lighter].append(name)
                totals[lighter] += size[name]
        found = [sorted(g, key=columns.index) for g in groups if g] + singles
        return sorted(found, key=lambda g: -sum(size[name] for name in g))

    def integer_bounds(self, i: int, column: str) -> tuple[int, int] | None:
        """The least and greatest value of integer column `column` in row group i, from
        the Parquet statistics; None when not known (or not an integer column)."""
        if self.metadata is None:
            return None
        chunk = _column_chunk(self.metadata.row_group(i), column)
        if chunk is None or chunk.physical_type not in ("INT32", "INT64"):
            return None
        stats = chunk.statistics
        if stats is None or not stats.has_min_max:
            return None
        low, high = stats.min, stats.max
        if type(low) is not int or type(high) is not int:  # dates, times, decimals
            return None
        return low, high

    def settled(self, i: int, work: dict[str, _ColumnWork]) -> set[str]:
        """Columns whose work in partition i is done without reading their rows: a string
        column checked only for invalid values, whose row group's dictionary page holds
        every value of the chunk and none of them invalid (each count is 0; a null row
        is never invalid). The dictionary page and the page headers are read, not the
        indices of 10^6 rows."""
        if self.metadata is None or self.path is None:
            return set()
        done = set()
        for name, todo in work.items():
            if todo.nulls or todo.distinct or not todo.value_sets:
                continue
            if not all(isinstance(m, Invalid) for m in todo.value_sets):
                continue
            chunk = _column_chunk(self.metadata.row_group(i), name)

            def none_invalid(values: pa.Array, todo: _ColumnWork = todo) -> bool:
                return not any(_flags_any(values, m) for m in todo.value_sets)

            if chunk is not None and chunk_dictionary(self.path, chunk, none_invalid) is not None:
                done.add(name)
        return done

    def _dictionary_encoded(self, column: str) -> bool:
        assert self.metadata is not None
        values = size = 0
        for group in range(self.metadata.num_row_groups):
            chunk = _column_chunk(self.metadata.row_group(group), column)
            if (
                chunk is None
                or chunk.physical_type != "BYTE_ARRAY"
                or not chunk.has_dictionary_page
            ):
                return False
            values += chunk.num_values
            size += chunk.total_uncompressed_size
        return values > 0 and size / values <= DICTIONARY_BYTES_PER_VALUE


def _flags_any(values: pa.Array, measure: _ValueMeasure) -> bool:
    """Does the measure count any of `values`."""
    return bool(pc.any(pc.fill_null(_value_flags(values, measure), _FALSE)).as_py())


@lru_cache(maxsize=1)
def _decode_pool() -> pa.MemoryPool:
    """The memory pool the Parquet batches are decoded into: jemalloc where pyarrow has it.
    The default (mimalloc) pool takes fresh pages for the decoders' growing buffers in each
    thread's first row group, which the kernel zeroes 2 MB at a time (transparent huge
    pages): 0.15-0.2 s of system CPU per scan thread in a 10^7-row contract test, against
    0.05 s with jemalloc, which reuses what it freed. Arrow compute keeps the default."""
    try:
        return pa.jemalloc_memory_pool()
    except NotImplementedError:  # a pyarrow built without jemalloc
        return pa.default_memory_pool()


def _column_chunk(group: pq.RowGroupMetaData, column: str) -> pq.ColumnChunkMetaData | None:
    for j in range(group.num_columns):
        chunk = group.column(j)
        if chunk.path_in_schema == column:
            return chunk
    return None


# --- the plan ---


class ScanPlan:
    """Which measures Arrow answers, which DuckDB answers, and the answers."""

    def __init__(self, schema: pa.Schema, measures: Iterable[Measure]) -> None:
        self.schema = schema
        self.measures = list(dict.fromkeys(measures))
        self.work: dict[str, _ColumnWork] = {}
        self.in_duckdb: list[Measure] = []
        for measure in self.measures:
            self._route(measure)

    def _type(self, column: str) -> pa.DataType | None:
        index = self.schema.get_field_index(column)
        return self.schema.field(index).type if index >= 0 else None

    def _column(self, name: str) -> _ColumnWork:
        return self.work.setdefault(name, _ColumnWork())

    def _route(self, measure: Measure) -> None:
        if isinstance(measure, RowCount):
            return
        if isinstance(measure, NullCount):
            if self._type(measure.column) is not None:
                self._column(measure.column).nulls = True
                return
        elif isinstance(measure, Duplicates):
            for name in measure.columns:
                dtype = self._type(name)
                if dtype is not None and _is_orderable(dtype):
                    probe = self._column(name)
                    probe.distinct = probe.nulls = True
                    probe.count_method = _exact_count_method(dtype)
            # DuckDB counts what the probes leave open (tuples, floats, nested types)
        elif self._value_set_in_arrow(measure):
            self._column(measure.column).value_sets.append(measure)
            return
        self.in_duckdb.append(measure)

    def _value_set_in_arrow(self, measure: _ValueMeasure) -> bool:
        dtype = self._type(measure.column)
        if dtype is None:
            return False
        if isinstance(measure, OutOfRange):
            # integers compare exactly as float64 up to 2**53; floats go to DuckDB, which
            # orders NaN above every number
            return bool(pa.types.is_integer(dtype))
        if measure.text:
            return False
        if isinstance(measure, Missing):
            return _same_kind(measure.values, dtype)
        if measure.pattern and not _is_string(dtype):
            return False  # DuckDB's CAST(col AS VARCHAR) text of numbers and dates decides
        valid = measure.valid_values
        return valid is None or _same_kind(valid, dtype)


def measure_all(
    source: pa.Table | str,
    con: duckdb.DuckDBPyConnection | Callable[[], duckdb.DuckDBPyConnection],
    relation_name: str,
    schema: pa.Schema,
    measures: Iterable[Measure],
    *,
    statistics: StoredStatistics | None = None,
) -> dict[Measure, int]:
    """The exact value of every measure over `source` (also the DuckDB view `relation_name`
    of `con`, or of the connection `con()` returns); `statistics`, exact figures of the same
    rows, answer what they can without reading values."""
    measures = list(measures)
    values: dict[Measure, int] = {}
    if statistics is not None:
        ranges = [m for m in measures if isinstance(m, OutOfRange)]
        proven = {m: statistics.out_of_range(m) for m in ranges}
        values.update({m: v for m, v in proven.items() if v is not None})
    plan = ScanPlan(schema, [m for m in measures if m not in values])
    data = _Source(source, statistics)
    values[RowCount()] = data.rows
    found = _arrow_pass(data, plan)
    pending: list[Measure] = []
    for measure in plan.measures:
        value = _answer(measure, found, data.rows)
        if value is None:
            pending.append(measure)
        else:
            values[measure] = value
    if pending:
        # a callable opens the DuckDB view only now: most contracts never need it
        connection = con if isinstance(con, duckdb.DuckDBPyConnection) else con()
        row = connection.execute(
            f"SELECT {', '.join(m.sql() for m in pending)} FROM {quote(relation_name)}"
        ).fetchall()[0]
        values.update({m: int(v or 0) for m, v in zip(pending, row, strict=True)})
    return values


def _answer(measure: Measure, found: _Findings, rows: int) -> int | None:
    """The measure's value from the Arrow findings, or None when DuckDB must count it."""
    if isinstance(measure, RowCount):
        return rows
    if isinstance(measure, NullCount):
        return found.nulls.get(measure.column)
    if isinstance(measure, Missing | Invalid | OutOfRange):
        return found.counts.get(measure)
    if len(measure.columns) != 1:
        # Tuples are distinct when one member column is distinct and never null.
        proven = any(c in found.strict and found.nulls.get(c) == 0 for c in measure.columns)
        return 0 if proven and measure.columns else None
    column = measure.columns[0]
    distinct = found.distinct.get(column)
    if distinct is None:
        return None
    non_null = rows - found.nulls[column]
    # the row form of one column also counts its nulls as duplicates
    return non_null - distinct + (found.nulls[column] if measure.count_rows else 0)


def _arrow_pass(data: _Source, plan: ScanPlan) -> _Findings:
    found = _Findings()
    work: dict[str, _ColumnWork] = {}
    for name, todo in plan.work.items():
        known = data.stored_nulls(name) if todo.nulls else None
        if known is not None:
            found.nulls[name] = known
        count_nulls = todo.nulls and known is None
        if count_nulls or todo.distinct or todo.value_sets:
            work[name] = _ColumnWork(count_nulls, todo.distinct, todo.count_method, todo.value_sets)
    if not work:
        return found
    partials = _scan_partitions(data, work)
    distinct = {name: _in_row_order(partials, name) for name, todo in work.items() if todo.distinct}
    # The first pass keeps no strictly ordered values (ids usually are: keeping them cost
    # memory and a fifth of the scan's CPU in fresh pages). A column whose order fails
    # somewhere is read again, keeping every value, and counted exactly.
    again = {
        name: _ColumnWork(distinct=True, count_method=work[name].count_method, keep_ordered=True)
        for name, d in distinct.items()
        if d.needs_values
    }
    if again:
        for name in again:  # the first pass's values go before the second's come
            del distinct[name]
            for partial in partials:
                del partial.distinct[name]
        second = _scan_partitions(data, again)
        distinct.update({name: _in_row_order(second, name) for name in again})
    for name, todo in work.items():
        if todo.nulls:
            found.nulls[name] = sum(p.nulls[name] for p in partials)
        for measure in todo.value_sets:
            found.counts[measure] = sum(p.counts[measure] for p in partials)
    for name, merged in distinct.items():
        found.distinct[name] = merged.distinct_count()
        if merged.order.strict:
            found.strict.add(name)
    return found


def _in_row_order(partials: list[_Partial], name: str) -> _Distinct:
    merged = _Distinct()
    for partial in partials:  # in row order
        merged = merged.then(partial.distinct[name])
    return merged


def _scan_partitions(data: _Source, work: dict[str, _ColumnWork]) -> list[_Partial]:
    """Each partition's findings, in row order. A partition's columns are read in
    `data.column_groups` of about equal size, each a task of its own: smaller tasks leave
    less of the last one running on one core while the others are idle."""
    count = data.partition_count()
    workers = min(count, os.cpu_count() or 1)
    # With fewer partitions than cores, let Arrow decode the columns of one in parallel.
    probed = {name for name, todo in work.items() if todo.distinct}
    read = data.reader(list(work), probed, threads=count < (os.cpu_count() or 1))
    # a column whose reading may end early is read alone
    alone = {name for name, todo in work.items() if _may_finish_early(todo)}
    groups = data.column_groups(list(work), workers, alone)
    tasks = [(i, group) for group in groups for i in range(count)]  # the largest first

    def scan(task: tuple[int, list[str]]) -> _Partial:
        i, group = task
        mine = {name: work[name] for name in group}
        settled = data.settled(i, mine)
        todo = {name: w for name, w in mine.items() if name not in settled}
        bounds = data.integer_bounds(i, group[0]) if group[0] in alone else None
        finished = _covering(group[0], *bounds) if bounds is not None else None
        partial = _scan_partition(read(i, list(todo)), todo, finished)
        partial.counts.update({m: 0 for name in settled for m in work[name].value_sets})
        return partial

    if workers <= 1:
        found = [scan(task) for task in tasks]
    else:
        with ThreadPoolExecutor(max_workers=workers, thread_name_prefix="contract-scan") as pool:
            found = list(pool.map(scan, tasks))
    # the groups of one partition hold different columns: their findings join
    per_partition: list[list[_Partial]] = [[] for _ in range(count)]
    for (i, _), partial in zip(tasks, found, strict=True):
        per_partition[i].append(partial)
    return [_joined(parts) for parts in per_partition]


def _joined(parts: list[_Partial]) -> _Partial:
    """The findings of one run of rows measured in parts, each part other columns."""
    whole = _Partial()
    for part in parts:
        whole.nulls.update(part.nulls)
        whole.distinct.update(part.distinct)
        whole.counts.update(part.counts)
    return whole
