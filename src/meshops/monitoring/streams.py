"""Columns read in batches, and the per-column summaries that merge across batches.

A drift test needs a few aggregates of each column, all of which add up batch by batch
exactly: row counts, minimum and maximum, category counts, the counts of a numeric
column's values while it has few of them, and histogram counts. So a column never has to
be in memory at once: `ColumnStream.batches()` yields it in pieces (the chunks of an Arrow
column already in memory, or record batches read from a Parquet file), and each pass
folds them into a summary. Only the tests that need every value (scipy's exact KS and
Wasserstein on small samples, or when a bound straddles the threshold) ask for `whole()`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.dataset as ds
import pyarrow.parquet as pq

FloatArray = npt.NDArray[np.float64]
CountArray = npt.NDArray[np.int64]

PARQUET_BATCH_ROWS = 262_144  # rows decoded at a time from Parquet: ~2 MiB per numeric column
TALLY_PROBE = 1_024  # values looked at before deciding a batch holds too many distinct ones


class ColumnStream(Protocol):
    """One column of a dataset that can be read several times, in batches."""

    def batches(self) -> Iterator[pa.Array]:
        """The column's values, batch after batch (each call starts a new pass)."""
        ...

    def whole(self) -> pa.ChunkedArray:
        """Every value at once (only for small columns or an exact fallback)."""
        ...


@dataclass(frozen=True)
class ArrowColumn:
    """A column already in memory: its chunks are the batches (no copy)."""

    values: pa.ChunkedArray

    def batches(self) -> Iterator[pa.Array]:
        yield from self.values.chunks

    def whole(self) -> pa.ChunkedArray:
        return self.values


@dataclass(frozen=True)
class ParquetColumn:
    """A column of a Parquet file, decoded `batch_rows` rows at a time."""

    path: str
    name: str
    batch_rows: int = PARQUET_BATCH_ROWS

    def batches(self) -> Iterator[pa.Array]:
        with pq.ParquetFile(self.path) as file:
            for batch in file.iter_batches(
                batch_size=self.batch_rows, columns=[self.name], use_threads=False
            ):
                yield batch.column(0)

    def whole(self) -> pa.ChunkedArray:
        return pq.read_table(self.path, columns=[self.name]).column(0)


@dataclass(frozen=True)
class DatasetColumn:
    """A column of Parquet data on disk (`ParquetData`), decoded `batch_rows` rows at a
    time, only the rows its filter keeps."""

    data: ParquetData
    name: str

    def batches(self) -> Iterator[pa.Array]:
        for batch in self.data.dataset.to_batches(
            columns=[self.name],
            filter=self.data.filter,
            batch_size=self.data.batch_rows,
            use_threads=False,  # columns are compared in parallel already
        ):
            yield batch.column(0)

    def whole(self) -> pa.ChunkedArray:
        return self.data.dataset.to_table(columns=[self.name], filter=self.data.filter).column(0)


@dataclass
class ParquetData:
    """Data a monitor compares that stays on disk: Parquet file(s) (a file, a folder, a
    stored blob), optionally filtered to a window. Drift monitors read it column by column
    in batches, so memory stays bounded whatever its size; `to_table` reads it whole (for
    the monitors that need every row at once)."""

    dataset: ds.Dataset
    filter: ds.Expression | None = None
    batch_rows: int = field(default_factory=lambda: PARQUET_BATCH_ROWS)
    _rows: int | None = field(default=None, repr=False)

    @classmethod
    def open(cls, path: str, filter: ds.Expression | None = None) -> ParquetData:
        return cls(ds.dataset(path, format="parquet"), filter)

    @property
    def schema(self) -> pa.Schema:
        return self.dataset.schema

    @property
    def num_rows(self) -> int:
        """Rows (those the filter keeps): from the footers when there is no filter."""
        if self._rows is None:
            self._rows = int(self.dataset.count_rows(filter=self.filter))
        return self._rows

    def column(self, name: str) -> ColumnStream:
        return DatasetColumn(self, name)

    def to_table(self) -> pa.Table:
        return self.dataset.to_table(filter=self.filter)


def as_stream(column: ColumnStream | pa.ChunkedArray | pa.Array) -> ColumnStream:
    if isinstance(column, pa.Array):
        return ArrowColumn(pa.chunked_array([column]))
    if isinstance(column, pa.ChunkedArray):
        return ArrowColumn(column)
    return column


def numeric_values(column: pa.ChunkedArray | pa.Array) -> FloatArray:
    """Non-null, finite values of a numeric column as float64 (nulls and NaN are dropped
    like Evidently does)."""
    if column.null_count:
        column = pc.drop_null(column)
    values = np.asarray(column.to_numpy(), dtype=np.float64)
    finite = np.isfinite(values)
    return values if bool(finite.all()) else values[finite]


# --------------------------------------------------------------------- few distinct values


@dataclass
class ValueTally:
    """Exact counts of a numeric column's values while it has at most `limit` of them;
    past that only the fact that it has more is kept (`overflow`)."""

    limit: int
    values: FloatArray = field(default_factory=lambda: np.empty(0, dtype=np.float64))
    counts: CountArray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    overflow: bool = False

    def add(self, batch: FloatArray) -> None:
        if self.overflow or len(batch) == 0:
            return
        counts = self._known_counts(batch)
        if int(counts.sum()) != len(batch) and not self._learn(batch):
            self.overflow = True
            self.values, self.counts = self.values[:0], self.counts[:0]
            return
        if len(counts) != len(self.values):
            counts = self._known_counts(batch)
        self.counts += counts

    def _known_counts(self, batch: FloatArray) -> CountArray:
        # One comparison pass per known value beats a binary search per row: at most
        # `limit` (20) values, and comparisons vectorise where searchsorted branches.
        return np.array([np.count_nonzero(batch == v) for v in self.values], dtype=np.int64)

    def _learn(self, batch: FloatArray) -> bool:
        """Add the batch's new values; False when that would make more than `limit`."""
        misses = batch[~np.isin(batch, self.values)] if len(self.values) else batch
        # A cheap look first: continuous columns are ruled out on a small sample.
        if len(self.values) + len(np.unique(misses[:TALLY_PROBE])) > self.limit:
            return False
        new = np.unique(misses)
        if len(self.values) + len(new) > self.limit:
            return False
        merged = np.union1d(self.values, new)
        counts = np.zeros(len(merged), dtype=np.int64)
        counts[np.searchsorted(merged, self.values)] = self.counts
        self.values, self.counts = merged, counts
        return True


# --------------------------------------------------------------------- numeric summaries


SPREAD_BLOCK_ROWS = 65_536  # the spread is merged in blocks of this many values


@dataclass
class Spread:
    """Mean and squared deviations of a column, merged in fixed blocks of values counted
    from the column's start (Chan et al.'s pairwise update). Blocks, not batches: then the
    floats do not depend on where the batches were cut, so a column read from Parquet in
    batches gives bit for bit the figures of the same column in memory."""

    rows: int = 0  # values merged so far (whole blocks)
    mean: float = 0.0
    m2: float = 0.0  # sum of squared deviations from the mean
    pending: FloatArray = field(default_factory=lambda: np.empty(0, dtype=np.float64))

    def add(self, values: FloatArray) -> None:
        if len(self.pending):
            head = values[: SPREAD_BLOCK_ROWS - len(self.pending)]
            values = values[len(head) :]
            self.pending = np.concatenate([self.pending, head])
            if len(self.pending) < SPREAD_BLOCK_ROWS:
                return
            self._merge(self.pending)
            self.pending = self.pending[:0]
        whole = len(values) - len(values) % SPREAD_BLOCK_ROWS
        for start in range(0, whole, SPREAD_BLOCK_ROWS):
            self._merge(values[start : start + SPREAD_BLOCK_ROWS])
        if whole < len(values):
            self.pending = values[whole:].copy()

    def _merge(self, block: FloatArray) -> None:
        self.rows, self.mean, self.m2 = _merged(self.rows, self.mean, self.m2, block)

    @property
    def std(self) -> float:
        """Population standard deviation (numpy's default, ddof=0), the last partial
        block included."""
        rows, _, m2 = _merged(self.rows, self.mean, self.m2, self.pending)
        return math.sqrt(m2 / rows) if rows else 0.0


def _merged(rows: int, mean: float, m2: float, block: FloatArray) -> tuple[int, float, float]:
    n = len(block)
    if n == 0:
        return rows, mean, m2
    block_mean = float(block.mean())
    block_m2 = float(np.var(block)) * n
    total = rows + n
    delta = block_mean - mean
    return total, mean + delta * n / total, m2 + block_m2 + delta * delta * rows * n / total


@dataclass
class NumericSummary:
    """One pass over a numeric column: rows, range, spread (reference only) and few values."""

    tally: ValueTally
    spread: Spread | None = field(default_factory=Spread)  # None: not tracked (current side)
    rows: int = 0
    low: float = math.inf
    high: float = -math.inf

    def add(self, values: FloatArray) -> None:
        n = len(values)
        if n == 0:
            return
        self.low = min(self.low, float(values.min()))
        self.high = max(self.high, float(values.max()))
        if self.spread is not None:
            self.spread.add(values)
        self.rows += n
        self.tally.add(values)

    @property
    def std(self) -> float:
        return self.spread.std if self.spread is not None else 0.0


def summarize_numeric(column: ColumnStream, tally_limit: int, spread: bool) -> NumericSummary:
    summary = NumericSummary(ValueTally(tally_limit), Spread() if spread else None)
    for batch in column.batches():
        summary.add(numeric_values(batch))
    return summary


# ------------------------------------------------------------------------------ histograms


@dataclass(frozen=True)
class HistogramGrid:
    """`coarse_bins * per_coarse` equal-width bins over [low, high]. Values land in coarse
    bins exactly like np.histogram puts them (edge comparisons included), so summing
    each run of `per_coarse` fine bins gives np.histogram's counts."""

    low: float
    high: float
    coarse_bins: int
    per_coarse: int

    @property
    def bins(self) -> int:
        return self.coarse_bins * self.per_coarse

    def count(self, values: FloatArray) -> CountArray:
        index = np.subtract(values, self.low)
        np.multiply(index, self.bins / (self.high - self.low), out=index)
        fine = index.astype(np.intp)
        np.clip(fine, 0, self.bins - 1, out=fine)  # the top edge belongs to the last bin
        self._fix_coarse_edges(values, fine)
        return np.bincount(fine, minlength=self.bins).astype(np.int64)

    def _fix_coarse_edges(self, values: FloatArray, fine: npt.NDArray[np.intp]) -> None:
        """Float rounding can put a value a fine bin away from where its coarse edge says;
        only values in the first or last fine bin of a coarse bin can be on the wrong
        side, so only those (about 2 in `per_coarse`) are compared with the edges."""
        per = self.per_coarse
        # (offset + 1) mod per is 1 for a coarse bin's first fine bin, 0 for its last.
        shifted = fine + 1
        if per & (per - 1) == 0:  # a power of two: a mask, no integer division
            np.bitwise_and(shifted, per - 1, out=shifted)
        else:
            np.remainder(shifted, per, out=shifted)
        near = np.flatnonzero(shifted <= 1)
        if len(near) == 0:
            return
        edges = np.linspace(self.low, self.high, self.coarse_bins + 1)
        near_values = values[near]
        coarse = fine[near] // per
        below = near_values < edges[coarse]
        above = (near_values >= edges[coarse + 1]) & (coarse != self.coarse_bins - 1)
        fine[near[below]] = coarse[below] * per - 1
        fine[near[above]] = (coarse[above] + 1) * per


def histogram_counts(column: ColumnStream, grid: HistogramGrid) -> CountArray:
    counts = np.zeros(grid.bins, dtype=np.int64)
    for batch in column.batches():
        values = numeric_values(batch)
        if len(values):
            counts += grid.count(values)
    return counts


# ---------------------------------------------------------------------------- categories


def category_value_counts(column: ColumnStream) -> tuple[list[object], list[int]]:
    """Each value's count (Arrow's hash aggregation per batch, merged by value)."""
    parts = [_batch_value_counts(batch) for batch in column.batches()]
    parts = [p for p in parts if len(p)]
    if not parts:
        return [], []
    if len(parts) == 1:
        merged = parts[0]
    else:
        table = pa.table(
            {
                "values": pa.concat_arrays([p.field("values") for p in parts]),
                "counts": pa.concat_arrays([p.field("counts") for p in parts]),
            }
        )
        merged_table = table.group_by("values").aggregate([("counts", "sum")])
        merged = pa.StructArray.from_arrays(
            [
                merged_table.column("values").combine_chunks(),
                merged_table.column("counts_sum").combine_chunks(),
            ],
            names=["values", "counts"],
        )
    return merged.field("values").to_pylist(), merged.field("counts").to_pylist()


def _batch_value_counts(batch: pa.Array) -> pa.StructArray:
    if isinstance(batch.type, pa.DictionaryType):
        batch = batch.cast(batch.type.value_type)
    if batch.null_count:
        batch = pc.drop_null(batch)
    counts: pa.StructArray = pc.value_counts(batch)
    return counts
