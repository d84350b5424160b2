"""Drift statistics between a reference and a current sample, vectorised for big columns.

Tests and defaults follow Evidently's DataDriftPreset so verdicts agree with it:

- reference of at most 1,000 rows: Kolmogorov–Smirnov for numeric columns, chi-square for
  categorical ones (a two-proportion z-test when there are only two values); numeric
  columns with at most 5 distinct values count as categorical;
- larger reference: Wasserstein distance normed by the reference standard deviation for
  numeric columns, Jensen–Shannon distance for categorical ones (and numeric columns with
  at most 5 distinct values);
- p-value tests drift below 0.05 (KS: at or below), distances at or above 0.1;
- JS and PSI bin numeric columns into Sturges equal-width bins over the combined range
  (columns with at most 20 reference values are compared value by value).

Big columns are never sorted, nor held in memory at once: a column is read in batches
(`streams.ColumnStream`) and each pass folds them into aggregates that add up exactly.
The first pass gives rows, range, the reference's spread and, while a column has few
values, each value's count; the second counts each numeric column into a fine equal-width
histogram (np.bincount, no Python loop over rows). Sturges bins are exact aggregates of it;
Wasserstein and KS come from its CDFs with a known error bound, and only when that bound
straddles the threshold is the exact (sorting) scipy computation run, so verdicts are exact.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import numpy as np
import numpy.typing as npt
import pyarrow as pa
from scipy import stats as sps
from scipy.spatial import distance

from meshops.monitoring.models import Method
from meshops.monitoring.streams import (
    ColumnStream,
    HistogramGrid,
    NumericSummary,
    as_stream,
    category_value_counts,
    histogram_counts,
    numeric_values,
    summarize_numeric,
)

ColumnKind = Literal["numeric", "categorical"]
FloatArray = npt.NDArray[np.float64]
CountArray = npt.NDArray[np.int64]

P_VALUE_METHODS = frozenset({"ks", "chisquare", "z"})
DEFAULT_THRESHOLDS: dict[str, float] = {
    "ks": 0.05,
    "chisquare": 0.05,
    "z": 0.05,
    "psi": 0.1,
    "jensenshannon": 0.1,
    "wasserstein": 0.1,
}
NUMERIC_ONLY = frozenset({"ks", "wasserstein"})
SMALL_REFERENCE_ROWS = 1000
FEW_VALUES = 5  # numeric columns with this many distinct values or fewer count as categorical
VALUE_BINNING_MAX_UNIQUE = 20  # JS/PSI compare such numeric columns value by value
FINE_BINS_PER_STURGES_BIN = 1024
EXACT_BELOW_ROWS = 10_000  # below this many rows (both sides), use scipy exactly: cheap there
PLOT_BINS_MAX = 40
TOP_CATEGORIES = 20


def is_drifted(method: str, score: float, threshold: float) -> bool:
    """Evidently's comparison for each test: p-values below (KS: at or below) the
    significance level, distances at or above the threshold."""
    if method == "ks":
        return score <= threshold
    if method in P_VALUE_METHODS:
        return score < threshold
    return score >= threshold


def default_method(kind: ColumnKind, reference_rows: int, distinct_values: int) -> Method:
    """Evidently DataDriftPreset's automatic choice of test."""
    small = reference_rows <= SMALL_REFERENCE_ROWS
    if kind == "numeric" and distinct_values > FEW_VALUES:
        return "ks" if small else "wasserstein"
    if small:
        return "chisquare" if distinct_values > 2 else "z"
    return "jensenshannon"


# ----------------------------------------------------------------------------- column values


@dataclass(frozen=True)
class CategoryCounts:
    """Counts of each value in reference and current, over the union of values."""

    values: list[str]
    reference: CountArray
    current: CountArray

    @property
    def distinct(self) -> int:
        return len(self.values)


def category_counts(reference: ColumnStream, current: ColumnStream) -> CategoryCounts:
    """Value counts of both sides (Arrow's hash aggregation, no Python loop over rows)."""
    ref = _value_counts(reference)
    cur = _value_counts(current)
    keys = sorted(set(ref) | set(cur))
    return CategoryCounts(
        values=keys,
        reference=np.array([ref.get(k, 0) for k in keys], dtype=np.int64),
        current=np.array([cur.get(k, 0) for k in keys], dtype=np.int64),
    )


def _value_counts(column: ColumnStream) -> dict[str, int]:
    values, counts = category_value_counts(column)
    result: dict[str, int] = {}
    for value, count in zip(values, counts, strict=True):
        label = _category_label(value)
        result[label] = result.get(label, 0) + int(count)
    return result


def _category_label(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def numeric_as_categories(reference: FloatArray, current: FloatArray) -> CategoryCounts:
    """A numeric column with few values, counted value by value."""
    ref_values, ref_counts = np.unique(reference, return_counts=True)
    cur_values, cur_counts = np.unique(current, return_counts=True)
    return merged_value_counts(ref_values, ref_counts, cur_values, cur_counts)


def merged_value_counts(
    ref_values: FloatArray, ref_counts: CountArray, cur_values: FloatArray, cur_counts: CountArray
) -> CategoryCounts:
    """Two sides' value counts (values sorted) over the union of their values."""
    union = np.union1d(ref_values, cur_values)
    ref = np.zeros(len(union), dtype=np.int64)
    cur = np.zeros(len(union), dtype=np.int64)
    ref[np.searchsorted(union, ref_values)] = ref_counts
    cur[np.searchsorted(union, cur_values)] = cur_counts
    return CategoryCounts([_category_label(float(v)) for v in union], ref, cur)


# ------------------------------------------------------------------- statistics on counts


def chisquare_pvalue(counts: CategoryCounts) -> float:
    """Chi-square goodness of fit of current counts to reference proportions."""
    n_ref, n_cur = counts.reference.sum(), counts.current.sum()
    expected = counts.reference * (n_cur / n_ref)
    if counts.distinct < 2:
        return 1.0
    with np.errstate(divide="ignore", invalid="ignore"):
        return float(sps.chisquare(counts.current, expected).pvalue)


def z_test_pvalue(counts: CategoryCounts) -> float:
    """Two-proportion z-test on the share of the first value (binary columns)."""
    if counts.distinct <= 1:
        return 1.0
    n1, n2 = float(counts.reference.sum()), float(counts.current.sum())
    # Evidently codes the first (sorted) value as 0 and everything else as 1.
    p1 = 1.0 - counts.reference[0] / n1
    p2 = 1.0 - counts.current[0] / n2
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    denominator = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if denominator == 0:
        return 1.0
    return float(2 * sps.norm.sf(abs((p1 - p2) / denominator)))


def shares(counts: CountArray, fill_zeros: bool) -> FloatArray:
    """Counts as shares; with `fill_zeros` empty bins get a tiny share (PSI needs logs)."""
    total = counts.sum()
    result = counts / total if total else np.zeros(len(counts))
    if fill_zeros and (result == 0).any() and (result != 0).any():
        smallest = float(result[result != 0].min())
        result = np.where(result == 0, smallest / 1e6 if smallest <= 1e-4 else 1e-4, result)
    return np.asarray(result, dtype=np.float64)


def psi(reference_counts: CountArray, current_counts: CountArray) -> float:
    """Population stability index: sum of (p - q) * ln(p / q) over bins."""
    p = shares(reference_counts, fill_zeros=True)
    q = shares(current_counts, fill_zeros=True)
    return float(np.sum((p - q) * np.log(p / q)))


def jensen_shannon(reference_counts: CountArray, current_counts: CountArray) -> float:
    """Jensen–Shannon distance (natural log) between the two binned distributions."""
    p = shares(reference_counts, fill_zeros=False)
    q = shares(current_counts, fill_zeros=False)
    return float(distance.jensenshannon(p, q))


# ------------------------------------------------------------ numeric columns, binned


@dataclass(frozen=True)
class FineHistogram:
    """Both samples counted into the same equal-width bins over their combined range."""

    low: float
    high: float
    reference: CountArray
    current: CountArray

    @property
    def bins(self) -> int:
        return len(self.reference)

    @property
    def width(self) -> float:
        return (self.high - self.low) / self.bins

    def cdfs(self) -> tuple[FloatArray, FloatArray]:
        ref = np.cumsum(self.reference) / max(int(self.reference.sum()), 1)
        cur = np.cumsum(self.current) / max(int(self.current.sum()), 1)
        return ref, cur

    def coarsen(self, factor: int) -> tuple[CountArray, CountArray]:
        return (
            self.reference.reshape(-1, factor).sum(axis=1),
            self.current.reshape(-1, factor).sum(axis=1),
        )

    def nonempty_reference_bins(self) -> int:
        return int(np.count_nonzero(self.reference))


def sturges_bins(total_rows: int, low: float = 0.0, high: float = 1.0) -> int:
    """numpy's 'sturges' bin count for `total_rows` values spanning [low, high] (computed
    the way numpy does, width first, so float rounding gives the same count)."""
    if total_rows <= 0 or high <= low:
        return 1
    width = (high - low) / (math.log2(total_rows) + 1.0)
    return math.ceil((high - low) / width)


def fine_histogram(
    reference: FloatArray, current: FloatArray, coarse_bins: int, per_coarse: int
) -> FineHistogram:
    """Counts in `coarse_bins * per_coarse` equal-width bins over the combined range.

    Values are assigned to coarse bins exactly like np.histogram does (including its
    correction for values that float rounding puts on the wrong side of an edge), so
    summing each run of `per_coarse` fine bins gives np.histogram's counts.
    """
    low = float(min(reference.min(), current.min()))
    high = float(max(reference.max(), current.max()))
    grid = histogram_grid(low, high, coarse_bins, per_coarse)
    return FineHistogram(grid.low, grid.high, grid.count(reference), grid.count(current))


def histogram_grid(low: float, high: float, coarse_bins: int, per_coarse: int) -> HistogramGrid:
    """The fine grid over [low, high] (a one-value column gets a unit-wide range)."""
    return HistogramGrid(low, high if high > low else low + 1.0, coarse_bins, per_coarse)


def wasserstein_bounds(hist: FineHistogram) -> tuple[float, float]:
    """The 1-Wasserstein distance from binned CDFs and its worst-case error: inside a bin
    each CDF moves by at most that bin's mass, so the error is at most 2 * bin width."""
    ref, cur = hist.cdfs()
    estimate = float(np.abs(ref - cur).sum() * hist.width)
    return estimate, 2.0 * hist.width


def ks_statistic_bounds(hist: FineHistogram) -> tuple[float, float]:
    """Bounds on the KS statistic: its value on bin edges is a lower bound; inside a bin
    the gap can grow by at most the masses the two samples put in that bin."""
    ref, cur = hist.cdfs()
    lower = float(np.abs(ref - cur).max())
    n_ref, n_cur = max(int(hist.reference.sum()), 1), max(int(hist.current.sum()), 1)
    slack = float((hist.reference / n_ref + hist.current / n_cur).max())
    return lower, min(1.0, lower + slack)


def ks_pvalue_from_statistic(statistic: float, n_ref: int, n_cur: int) -> float:
    """scipy's asymptotic two-sided p-value for the two-sample KS statistic."""
    m, n = sorted([float(n_ref), float(n_cur)], reverse=True)
    return float(np.clip(sps.kstwo.sf(statistic, np.round(m * n / (m + n))), 0.0, 1.0))


# -------------------------------------------------------------------------- per column


@dataclass(frozen=True)
class PlotHistogram:
    """What a report draws: bins (numeric edges or category labels) and both shares."""

    kind: ColumnKind
    edges: list[float] = field(default_factory=list)
    labels: list[str] = field(default_factory=list)
    reference: list[float] = field(default_factory=list)
    current: list[float] = field(default_factory=list)

    def to_json(self) -> dict[str, object]:
        return {
            "kind": self.kind,
            "edges": self.edges,
            "labels": self.labels,
            "reference": self.reference,
            "current": self.current,
        }


@dataclass(frozen=True)
class ColumnDrift:
    feature: str
    kind: ColumnKind
    method: Method
    score: float
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int
    distinct_values: int
    exact: bool
    histogram: PlotHistogram


def column_drift(
    feature: str,
    reference: ColumnStream | pa.ChunkedArray | pa.Array,
    current: ColumnStream | pa.ChunkedArray | pa.Array,
    kind: ColumnKind,
    *,
    method: Method | None = None,
    threshold: float | None = None,
    exact_below: int = EXACT_BELOW_ROWS,
) -> ColumnDrift:
    """Drift of one column: the test (given or Evidently's default), its score and verdict.

    Each side is an Arrow array in memory or a `ColumnStream` read batch by batch; the
    result is the same either way (the aggregates add up exactly across batches)."""
    ref, cur = as_stream(reference), as_stream(current)
    if kind == "numeric":
        return _numeric_drift(feature, ref, cur, method, threshold, exact_below)
    return _categorical_drift(feature, ref, cur, method, threshold)


def _categorical_drift(
    feature: str,
    reference: ColumnStream,
    current: ColumnStream,
    method: Method | None,
    threshold: float | None,
) -> ColumnDrift:
    counts = category_counts(reference, current)
    n_ref, n_cur = int(counts.reference.sum()), int(counts.current.sum())
    _require_rows(feature, n_ref, n_cur)
    chosen = method or default_method("categorical", n_ref, counts.distinct)
    if chosen in NUMERIC_ONLY:
        raise ValueError(f"{chosen} needs a numeric column; {feature!r} is categorical")
    score = _score_counts(chosen, counts)
    limit = DEFAULT_THRESHOLDS[chosen] if threshold is None else threshold
    return ColumnDrift(
        feature,
        "categorical",
        chosen,
        score,
        limit,
        is_drifted(chosen, score, limit),
        n_ref,
        n_cur,
        counts.distinct,
        True,
        _category_plot(counts, "categorical"),
    )


def _score_counts(method: Method, counts: CategoryCounts) -> float:
    if method == "chisquare":
        return chisquare_pvalue(counts)
    if method == "z":
        return z_test_pvalue(counts)
    if method == "psi":
        return psi(counts.reference, counts.current)
    return jensen_shannon(counts.reference, counts.current)


@dataclass(frozen=True)
class _NumericColumn:
    """Both sides of a numeric column after the first pass over them."""

    reference: ColumnStream
    current: ColumnStream
    ref: NumericSummary
    cur: NumericSummary

    @property
    def low(self) -> float:
        return min(self.ref.low, self.cur.low)

    @property
    def high(self) -> float:
        return max(self.ref.high, self.cur.high)

    def value_counts(self) -> CategoryCounts | None:
        """Each value's count on both sides; None when a side has too many values."""
        if self.ref.tally.overflow or self.cur.tally.overflow:
            return None
        ref, cur = self.ref.tally, self.cur.tally
        return merged_value_counts(ref.values, ref.counts, cur.values, cur.counts)

    def whole_values(self) -> tuple[FloatArray, FloatArray]:
        return numeric_values(self.reference.whole()), numeric_values(self.current.whole())

    def histogram(self, coarse_bins: int) -> FineHistogram:
        """The second pass: both sides counted into the same fine grid."""
        grid = histogram_grid(self.low, self.high, coarse_bins, FINE_BINS_PER_STURGES_BIN)
        reference = histogram_counts(self.reference, grid)
        return FineHistogram(grid.low, grid.high, reference, histogram_counts(self.current, grid))


def _numeric_drift(  # noqa: PLR0917 - private helper, called once
    feature: str,
    reference: ColumnStream,
    current: ColumnStream,
    method: Method | None,
    threshold: float | None,
    exact_below: int,
) -> ColumnDrift:
    column = _NumericColumn(
        reference,
        current,
        summarize_numeric(reference, VALUE_BINNING_MAX_UNIQUE, spread=True),
        summarize_numeric(current, VALUE_BINNING_MAX_UNIQUE, spread=False),
    )
    n_ref, n_cur = column.ref.rows, column.cur.rows
    _require_rows(feature, n_ref, n_cur)
    values = column.value_counts()
    # Unknown means more than VALUE_BINNING_MAX_UNIQUE on a side: many, for every default.
    distinct = values.distinct if values is not None else VALUE_BINNING_MAX_UNIQUE + 1
    chosen = method or default_method("numeric", n_ref, distinct)
    limit = DEFAULT_THRESHOLDS[chosen] if threshold is None else threshold
    exact = n_ref + n_cur < exact_below
    few_values = distinct <= FEW_VALUES
    if chosen in ("chisquare", "z") or (few_values and chosen in ("jensenshannon", "psi")):
        counts = values if values is not None else numeric_as_categories(*column.whole_values())
        score = _score_counts(chosen, counts)
        plot = _category_plot(counts, "numeric")
        exact = True
    else:
        sturges = sturges_bins(n_ref + n_cur, column.low, column.high)
        hist = column.histogram(sturges)
        if values is None:  # a lower bound: values in distinct bins differ
            distinct = max(distinct, int(np.count_nonzero(hist.reference + hist.current)))
        if chosen in ("jensenshannon", "psi"):
            score, exact = _binned_score(chosen, column, values, hist), True
        elif chosen == "wasserstein":
            score, exact = _wasserstein(column, hist, limit, exact)
        else:
            score, exact = _ks(column, hist, limit, exact)
        plot = _numeric_plot(hist, sturges)
    return ColumnDrift(
        feature,
        "numeric",
        chosen,
        score,
        limit,
        is_drifted(chosen, score, limit),
        n_ref,
        n_cur,
        distinct,
        exact,
        plot,
    )


def _binned_score(
    method: Method, column: _NumericColumn, values: CategoryCounts | None, hist: FineHistogram
) -> float:
    # Few reference values: Evidently compares value by value, over both sides' values.
    if not column.ref.tally.overflow:
        counts = values if values is not None else numeric_as_categories(*column.whole_values())
        return _score_counts(method, counts)
    ref, cur = hist.coarsen(FINE_BINS_PER_STURGES_BIN)
    return psi(ref, cur) if method == "psi" else jensen_shannon(ref, cur)


def _reference_norm(std: float) -> float:
    return max(std, 0.001)


def _wasserstein(
    column: _NumericColumn, hist: FineHistogram, threshold: float, exact: bool
) -> tuple[float, bool]:
    if not exact:
        norm = _reference_norm(column.ref.std)
        estimate, error = wasserstein_bounds(hist)
        low, high = (estimate - error) / norm, (estimate + error) / norm
        if is_drifted("wasserstein", low, threshold) == is_drifted("wasserstein", high, threshold):
            return estimate / norm, False
    reference, current = column.whole_values()
    norm = _reference_norm(float(np.std(reference)))
    return float(sps.wasserstein_distance(reference, current)) / norm, True


def _ks(
    column: _NumericColumn, hist: FineHistogram, threshold: float, exact: bool
) -> tuple[float, bool]:
    n_ref, n_cur = column.ref.rows, column.cur.rows
    if not exact and max(n_ref, n_cur) > 10_000:  # scipy uses the asymptotic p-value here too
        low, high = ks_statistic_bounds(hist)
        p_high = ks_pvalue_from_statistic(low, n_ref, n_cur)
        p_low = ks_pvalue_from_statistic(high, n_ref, n_cur)
        if is_drifted("ks", p_high, threshold) == is_drifted("ks", p_low, threshold):
            return ks_pvalue_from_statistic((low + high) / 2, n_ref, n_cur), False
    reference, current = column.whole_values()
    return float(sps.ks_2samp(reference, current).pvalue), True


def _require_rows(feature: str, n_ref: int, n_cur: int) -> None:
    if n_ref == 0 or n_cur == 0:
        side = "reference" if n_ref == 0 else "current"
        raise ValueError(f"column {feature!r} has no non-null values in the {side} data")


def _numeric_plot(hist: FineHistogram, sturges: int) -> PlotHistogram:
    groups = sturges
    while groups > PLOT_BINS_MAX and groups % 2 == 0:
        groups //= 2
    factor = hist.bins // groups
    ref, cur = hist.coarsen(factor)
    edges = np.linspace(hist.low, hist.high, groups + 1)
    return PlotHistogram(
        "numeric",
        edges=[float(e) for e in edges],
        reference=[float(v) for v in shares(ref, False)],
        current=[float(v) for v in shares(cur, False)],
    )


def _category_plot(counts: CategoryCounts, kind: ColumnKind) -> PlotHistogram:
    ref, cur = shares(counts.reference, False), shares(counts.current, False)
    order = np.argsort(-(ref + cur), kind="stable")[:TOP_CATEGORIES]
    return PlotHistogram(
        kind,
        labels=[counts.values[i] for i in order],
        reference=[float(ref[i]) for i in order],
        current=[float(cur[i]) for i in order],
    )


# ------------------------------------------------------------------------- whole tables


def infer_kind(data_type: pa.DataType) -> ColumnKind | None:
    """Numeric Arrow types are numeric; strings, booleans and dictionaries categorical."""
    if pa.types.is_integer(data_type) or pa.types.is_floating(data_type):
        return "numeric"
    if pa.types.is_decimal(data_type):
        return "numeric"
    if (
        pa.types.is_string(data_type)
        or pa.types.is_large_string(data_type)
        or pa.types.is_boolean(data_type)
        or pa.types.is_dictionary(data_type)
    ):
        return "categorical"
    return None


@dataclass(frozen=True)
class DatasetDrift:
    columns: list[ColumnDrift]
    # None: any drifted column is dataset drift
    drift_share: float | None = None

    @property
    def drifted_columns(self) -> int:
        return sum(1 for c in self.columns if c.drifted)

    @property
    def share_drifted(self) -> float:
        return self.drifted_columns / len(self.columns) if self.columns else 0.0

    @property
    def dataset_drift(self) -> bool:
        """Evidently's dataset verdict: the share of drifted columns reaches drift_share;
        without drift_share, any drifted column."""
        if self.drift_share is None:
            return self.drifted_columns > 0
        return bool(self.columns) and self.share_drifted >= self.drift_share
