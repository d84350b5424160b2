"""Drift statistics checked against scipy on generated distributions (hypothesis)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from scipy import special
from scipy import stats as sps
from scipy.spatial import distance

from meshops.monitoring import stats
from meshops.monitoring.stats import CategoryCounts, column_drift

PROPERTY = settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])

seeds = st.integers(min_value=0, max_value=2**32 - 1)
sizes = st.integers(min_value=30, max_value=3000)
shifts = st.floats(min_value=-2.0, max_value=2.0)
scales = st.floats(min_value=0.2, max_value=5.0)
families = st.sampled_from(["normal", "exponential", "uniform", "lognormal", "integers"])


def sample(family: str, rng: np.random.Generator, n: int, shift: float, scale: float) -> np.ndarray:
    if family == "normal":
        return rng.normal(shift, scale, n)
    if family == "exponential":
        return rng.exponential(scale, n) + shift
    if family == "uniform":
        return rng.uniform(shift, shift + scale * 3, n)
    if family == "lognormal":
        return rng.lognormal(shift / 4, min(scale, 1.5), n)
    return rng.integers(0, 40, n).astype(np.float64) * scale + shift


@st.composite
def numeric_pairs(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(draw(seeds))
    family = draw(families)
    ref = sample(family, rng, draw(sizes), 0.0, 1.0)
    cur = sample(family, rng, draw(sizes), draw(shifts), draw(scales))
    return ref, cur


@st.composite
def count_pairs(draw: st.DrawFn) -> CategoryCounts:
    k = draw(st.integers(min_value=2, max_value=12))
    ref = draw(st.lists(st.integers(1, 5000), min_size=k, max_size=k))
    cur = draw(st.lists(st.integers(0, 5000), min_size=k, max_size=k).filter(lambda c: sum(c) > 0))
    return CategoryCounts([f"c{i}" for i in range(k)], np.array(ref), np.array(cur))


@PROPERTY
@given(numeric_pairs())
def test_binned_wasserstein_is_within_its_bound_of_scipy(
    pair: tuple[np.ndarray, np.ndarray],
) -> None:
    ref, cur = pair
    hist = stats.fine_histogram(ref, cur, stats.sturges_bins(len(ref) + len(cur)), 1024)
    estimate, error = stats.wasserstein_bounds(hist)
    exact = sps.wasserstein_distance(ref, cur)
    assert abs(estimate - exact) <= error + 1e-9 * max(1.0, exact)


@PROPERTY
@given(numeric_pairs())
def test_ks_statistic_bounds_contain_scipy(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    hist = stats.fine_histogram(ref, cur, stats.sturges_bins(len(ref) + len(cur)), 1024)
    low, high = stats.ks_statistic_bounds(hist)
    exact = sps.ks_2samp(ref, cur).statistic
    assert low - 1e-12 <= exact <= high + 1e-12


@PROPERTY
@given(numeric_pairs(), st.sampled_from(["wasserstein", "ks"]))
def test_fast_path_verdict_equals_scipy_verdict(
    pair: tuple[np.ndarray, np.ndarray], method: stats.Method
) -> None:
    """Forced onto the binned path (exact_below=0), the verdict is still scipy's."""
    ref, cur = pair
    result = column_drift(
        "x", pa.array(ref), pa.array(cur), "numeric", method=method, exact_below=0
    )
    if method == "wasserstein":
        scipy_score = sps.wasserstein_distance(ref, cur) / max(float(np.std(ref)), 0.001)
        assert result.drifted == (scipy_score >= 0.1)
        if result.exact:
            assert result.score == pytest.approx(scipy_score, rel=1e-9, abs=1e-12)
    else:
        scipy_p = sps.ks_2samp(ref, cur).pvalue
        assert result.drifted == (scipy_p <= 0.05)


@PROPERTY
@given(numeric_pairs())
def test_small_samples_use_scipy_exactly(pair: tuple[np.ndarray, np.ndarray]) -> None:
    ref, cur = pair
    ks = column_drift("x", pa.array(ref), pa.array(cur), "numeric", method="ks")
    assert ks.score == pytest.approx(sps.ks_2samp(ref, cur).pvalue, rel=1e-9, abs=1e-300)
    w = column_drift("x", pa.array(ref), pa.array(cur), "numeric", method="wasserstein")
    norm = max(float(np.std(ref)), 0.001)
    assert w.score == pytest.approx(sps.wasserstein_distance(ref, cur) / norm, rel=1e-9)


@PROPERTY
@given(count_pairs())
def test_chisquare_matches_scipy(counts: CategoryCounts) -> None:
    expected = counts.reference * counts.current.sum() / counts.reference.sum()
    assert stats.chisquare_pvalue(counts) == pytest.approx(
        sps.chisquare(counts.current, expected).pvalue, rel=1e-9, abs=1e-300
    )


@PROPERTY
@given(count_pairs())
def test_jensen_shannon_matches_scipy(counts: CategoryCounts) -> None:
    p = counts.reference / counts.reference.sum()
    q = counts.current / counts.current.sum()
    ours = stats.jensen_shannon(counts.reference, counts.current)
    assert ours == pytest.approx(distance.jensenshannon(p, q), rel=1e-9, abs=1e-12)
    assert 0.0 <= ours <= math.sqrt(math.log(2)) + 1e-12


@PROPERTY
@given(count_pairs())
def test_psi_is_the_symmetric_kl_divergence(counts: CategoryCounts) -> None:
    p = stats.shares(counts.reference, fill_zeros=True)
    q = stats.shares(counts.current, fill_zeros=True)
    symmetric_kl = float(np.sum(special.rel_entr(p, q)) + np.sum(special.rel_entr(q, p)))
    assert stats.psi(counts.reference, counts.current) == pytest.approx(symmetric_kl, rel=1e-9)
    assert stats.psi(counts.reference, counts.reference) == pytest.approx(0.0, abs=1e-12)


@PROPERTY
@given(numeric_pairs())
def test_sturges_bins_are_numpys(pair: tuple[np.ndarray, np.ndarray]) -> None:
    """JS/PSI on numeric columns bin like np.histogram(..., 'sturges') over both samples."""
    ref, cur = pair
    ref = ref + np.linspace(0, 1e-3, len(ref))  # enough distinct values for binning
    combined = np.concatenate([ref, cur])
    edges = np.histogram_bin_edges(combined, bins="sturges")
    expected = distance.jensenshannon(
        np.histogram(ref, edges)[0] / len(ref), np.histogram(cur, edges)[0] / len(cur)
    )
    result = column_drift("x", pa.array(ref), pa.array(cur), "numeric", method="jensenshannon")
    assert result.score == pytest.approx(expected, rel=1e-9, abs=1e-12)


@pytest.mark.parametrize("method", ["ks", "wasserstein", "psi", "jensenshannon"])
@pytest.mark.parametrize("rows", [5_000, 200_000])  # distances are noisy on tiny samples
def test_identical_numeric_distributions_do_not_drift_and_shifted_do(
    method: stats.Method, rows: int
) -> None:
    rng = np.random.default_rng(7)
    ref, same, shifted = rng.normal(0, 1, rows), rng.normal(0, 1, rows), rng.normal(1, 1, rows)
    assert not column_drift("x", pa.array(ref), pa.array(same), "numeric", method=method).drifted
    assert column_drift("x", pa.array(ref), pa.array(shifted), "numeric", method=method).drifted


@pytest.mark.parametrize("method", ["chisquare", "jensenshannon", "psi"])
def test_identical_categories_do_not_drift_and_shifted_do(method: stats.Method) -> None:
    rng = np.random.default_rng(3)
    values = np.array(["a", "b", "c", "d"])
    ref = values[rng.choice(4, 5000, p=[0.4, 0.3, 0.2, 0.1])]
    same = values[rng.choice(4, 5000, p=[0.4, 0.3, 0.2, 0.1])]
    shifted = values[rng.choice(4, 5000, p=[0.1, 0.2, 0.3, 0.4])]
    ref_a = pa.array(ref)
    assert not column_drift("c", ref_a, pa.array(same), "categorical", method=method).drifted
    assert column_drift("c", ref_a, pa.array(shifted), "categorical", method=method).drifted


def test_z_test_matches_the_two_proportion_formula() -> None:
    counts = CategoryCounts(["no", "yes"], np.array([600, 400]), np.array([500, 500]))
    p1, p2 = 0.4, 0.5
    pooled = (p1 * 1000 + p2 * 1000) / 2000
    z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (2 / 1000))
    assert stats.z_test_pvalue(counts) == pytest.approx(2 * sps.norm.sf(abs(z)))


def test_default_methods_follow_evidently() -> None:
    rng = np.random.default_rng(1)
    small, big = rng.normal(size=800), rng.normal(size=5000)
    assert column_drift("x", pa.array(small), pa.array(small), "numeric").method == "ks"
    assert column_drift("x", pa.array(big), pa.array(big), "numeric").method == "wasserstein"
    few = pa.array(rng.integers(0, 4, 5000).astype(float))
    assert column_drift("x", few, few, "numeric").method == "jensenshannon"
    few_small = pa.array(rng.integers(0, 4, 500).astype(float))
    assert column_drift("x", few_small, few_small, "numeric").method == "chisquare"
    cats = pa.array(np.array(["a", "b", "c"])[rng.integers(0, 3, 500)])
    assert column_drift("c", cats, cats, "categorical").method == "chisquare"
    binary = pa.array(np.array(["a", "b"])[rng.integers(0, 2, 500)])
    assert column_drift("c", binary, binary, "categorical").method == "z"
    big_cats = pa.array(np.array(["a", "b", "c"])[rng.integers(0, 3, 5000)])
    assert column_drift("c", big_cats, big_cats, "categorical").method == "jensenshannon"


def test_nulls_and_nan_are_dropped_and_empty_columns_are_refused() -> None:
    ref = pa.array([1.0, 2.0, None, float("nan"), 3.0] * 100)
    result = column_drift("x", ref, ref, "numeric")
    assert result.reference_rows == 300
    with pytest.raises(ValueError, match="no non-null values"):
        column_drift("x", ref, pa.array([None, None], pa.float64()), "numeric")
