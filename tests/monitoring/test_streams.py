"""Drift computed batch by batch equals drift computed on whole columns (hypothesis).

A column split into chunks, or read from Parquet a few rows at a time, must give the
same test, verdict, counts and plot as the same column in one piece (the scores too, bit
for bit, since the reference's spread is merged in fixed blocks: see test_out_of_core.py).
"""

from __future__ import annotations

import itertools
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshops.monitoring import stats, streams
from meshops.monitoring.models import METHODS, MonitorSpec
from meshops.monitoring.monitors import compare_parquet, compare_tables

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

seeds = st.integers(min_value=0, max_value=2**32 - 1)
families = st.sampled_from(["normal", "lognormal", "few", "twenty", "integers", "constant"])


def sample(family: str, rng: np.random.Generator, n: int, shift: float) -> np.ndarray:
    if family == "normal":
        return rng.normal(shift, 1.0, n)
    if family == "lognormal":
        return rng.lognormal(shift, 0.7, n)
    if family == "few":  # at most 5 values: a categorical test
        return rng.integers(0, 4, n).astype(np.float64) + (shift > 0.5)
    if family == "twenty":  # 6 to 20 values: JS/PSI compare value by value
        return rng.integers(0, 18, n).astype(np.float64) + round(shift * 3)
    if family == "integers":
        return rng.integers(0, 300, n).astype(np.float64) + round(shift * 50)
    return np.full(n, 3.0)


def with_gaps(values: np.ndarray, rng: np.random.Generator) -> pa.Array:
    """Some nulls and NaN, which every test drops."""
    mask = rng.random(len(values)) < 0.02
    values = values.copy()
    values[rng.random(len(values)) < 0.01] = np.nan
    return pa.array(values, mask=mask)


def chunked(array: pa.Array, rng: np.random.Generator, pieces: int) -> pa.ChunkedArray:
    """The same values in `pieces` chunks cut at random places (some may be empty)."""
    cuts = np.sort(rng.integers(0, len(array) + 1, pieces - 1))
    bounds = [0, *cuts.tolist(), len(array)]
    return pa.chunked_array(
        [array.slice(a, b - a) for a, b in itertools.pairwise(bounds)], array.type
    )


def assert_same_drift(whole: stats.ColumnDrift, parts: stats.ColumnDrift) -> None:
    assert (parts.method, parts.drifted, parts.exact) == (whole.method, whole.drifted, whole.exact)
    assert (parts.reference_rows, parts.current_rows) == (whole.reference_rows, whole.current_rows)
    assert parts.distinct_values == whole.distinct_values
    assert parts.score == pytest.approx(whole.score, rel=1e-12, abs=1e-15)
    plot, expected = parts.histogram, whole.histogram
    assert (plot.kind, plot.labels) == (expected.kind, expected.labels)
    for name in ("edges", "reference", "current"):
        assert getattr(plot, name) == pytest.approx(getattr(expected, name), rel=1e-12)


@st.composite
def numeric_columns(draw: st.DrawFn) -> tuple[pa.Array, pa.Array, np.random.Generator]:
    rng = np.random.default_rng(draw(seeds))
    family = draw(families)
    ref = sample(family, rng, draw(st.integers(50, 4000)), 0.0)
    cur = sample(family, rng, draw(st.integers(50, 4000)), draw(st.floats(0.0, 1.0)))
    return with_gaps(ref, rng), with_gaps(cur, rng), rng


@PROPERTY
@given(
    numeric_columns(),
    st.sampled_from([None, *METHODS]),
    st.integers(2, 12),
    st.sampled_from([0, stats.EXACT_BELOW_ROWS]),
)
def test_numeric_drift_in_chunks_equals_whole_column(
    columns: tuple[pa.Array, pa.Array, np.random.Generator],
    method: stats.Method | None,
    pieces: int,
    exact_below: int,
) -> None:
    ref, cur, rng = columns
    kwargs = {"method": method, "exact_below": exact_below}
    whole = stats.column_drift("x", ref, cur, "numeric", **kwargs)  # type: ignore[arg-type]
    parts = stats.column_drift(
        "x",
        chunked(ref, rng, pieces),
        chunked(cur, rng, pieces),
        "numeric",
        **kwargs,  # type: ignore[arg-type]
    )
    assert_same_drift(whole, parts)


@PROPERTY
@given(seeds, st.integers(1, 60), st.integers(2, 12), st.sampled_from(["chisquare", "psi", None]))
def test_categorical_drift_in_chunks_equals_whole_column(
    seed: int, categories: int, pieces: int, method: stats.Method | None
) -> None:
    rng = np.random.default_rng(seed)
    labels = np.array([f"v{i}" for i in range(categories)])
    ref = pa.array(labels[rng.integers(0, categories, 2000)], mask=rng.random(2000) < 0.05)
    cur = pa.array(labels[rng.integers(0, categories, 1500)]).dictionary_encode()
    whole = stats.column_drift("c", ref, cur, "categorical", method=method)
    parts = stats.column_drift(
        "c", chunked(ref, rng, pieces), chunked(cur, rng, pieces), "categorical", method=method
    )
    assert_same_drift(whole, parts)
    assert parts.score == whole.score  # counts are integers: nothing to round


@PROPERTY
@given(seeds, st.integers(1, 30), st.integers(1, 40), st.integers(1, 8))
def test_value_tally_counts_like_numpy_until_the_limit(
    seed: int, distinct: int, limit: int, pieces: int
) -> None:
    rng = np.random.default_rng(seed)
    values = rng.choice(rng.normal(size=distinct), 3000)
    tally = streams.ValueTally(limit)
    for piece in np.array_split(values, pieces):
        tally.add(piece)
    expected_values, expected_counts = np.unique(values, return_counts=True)
    assert tally.overflow == (len(expected_values) > limit)
    if not tally.overflow:
        assert tally.values.tolist() == expected_values.tolist()
        assert tally.counts.tolist() == expected_counts.tolist()


@PROPERTY
@given(seeds, st.integers(1, 10), st.integers(1, 64), st.integers(1, 8))
def test_histogram_by_batches_sums_to_numpys_histogram(
    seed: int, coarse: int, per_coarse: int, pieces: int
) -> None:
    rng = np.random.default_rng(seed)
    # Values on the coarse edges too: that is where float rounding could misplace them.
    edges = np.linspace(-1.7, 2.3, coarse + 1)
    values = np.concatenate([rng.uniform(-1.7, 2.3, 2000), rng.choice(edges, 200)])
    grid = streams.HistogramGrid(float(values.min()), float(values.max()), coarse, per_coarse)
    fine = sum(grid.count(piece) for piece in np.array_split(values, pieces) if len(piece))
    expected = np.histogram(values, np.linspace(grid.low, grid.high, coarse + 1))[0]
    assert np.asarray(fine).reshape(coarse, per_coarse).sum(axis=1).tolist() == expected.tolist()


@PROPERTY
@given(seeds, st.integers(1, 10))
def test_merged_spread_is_numpys(seed: int, pieces: int) -> None:
    rng = np.random.default_rng(seed)
    values = rng.lognormal(3, 1.5, 5000)
    summary = streams.NumericSummary(streams.ValueTally(0))
    for piece in np.array_split(values, pieces):
        summary.add(piece)
    assert (summary.rows, summary.low, summary.high) == (5000, values.min(), values.max())
    assert summary.std == pytest.approx(float(np.std(values)), rel=1e-12)


def b6_like_tables(rows: int, seed: int, drifted: bool) -> pa.Table:
    rng = np.random.default_rng(seed)
    shift = 0.5 if drifted else 0.0
    labels = np.array(["a", "b", "c", "d"])
    return pa.table(
        {
            "wide": rng.normal(shift, 1, rows),
            "skewed": rng.lognormal(shift, 0.7, rows),
            "few": rng.integers(0, 3, rows).astype(np.float64),
            "count": rng.integers(0, 12 + int(drifted), rows),
            "colour": pa.array(labels[rng.integers(0, 4 - int(drifted), rows)]),
            "flag": pa.array(rng.random(rows) < 0.3 + shift / 2, mask=rng.random(rows) < 0.1),
        }
    )


@pytest.mark.parametrize("rows", [800, 30_000])  # scipy's exact tests, then the binned path
def test_parquet_read_in_small_batches_equals_tables_in_memory(tmp_path: Path, rows: int) -> None:
    reference, current = b6_like_tables(rows, 1, False), b6_like_tables(rows, 2, True)
    ref_path, cur_path = tmp_path / "reference.parquet", tmp_path / "current.parquet"
    pq.write_table(reference, ref_path, row_group_size=rows // 7)
    pq.write_table(current, cur_path, row_group_size=rows // 5)
    spec = MonitorSpec(name="m", kind="data_drift")
    in_memory = compare_tables(spec, reference, current, workers=1)
    streamed = compare_parquet(spec, str(ref_path), str(cur_path), batch_rows=333, workers=2)
    assert [c.feature for c in streamed.columns] == reference.column_names
    for whole, parts in zip(in_memory.columns, streamed.columns, strict=True):
        assert_same_drift(whole, parts)
    assert streamed.drifted_columns == in_memory.drifted_columns > 0
