"""Estimated catalog totals on SQLite (FTS5): exact when the walk over the matches ends early
or a word bounds the total, flagged when estimated, and within the stated error of the
exact count (`catalog_search.estimate_total`, standard error 1/sqrt(sample))."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import Connection, text

from meshops.kernel.errors import InvalidInput
from meshops.kernel.home import Home
from meshops.mesh import catalog, catalog_index, catalog_search

_COMMON = ["alpha", "bravo", "charlie", "delta"]  # each in about half of the products
_RARE = ["xray", "yankee"]  # each in about 2% of the products


def _generated(n: int) -> list[dict]:
    """Products of common and rare words (fixed seed), in three domains."""
    rng = random.Random(11)
    return [
        catalog.entry(
            f"d{i % 3}.p{i}",
            domain=f"d{i % 3}",
            name=f"p{i}",
            status="published",
            description=" ".join(w for w in _COMMON if rng.random() < 0.5),
            tags=[w for w in _RARE if rng.random() < 0.02],
            owners=["owner"],
            columns=[{"name": "amount", "description": "money"}],
            latest_version="1.0.0",
        )
        for i in range(n)
    ]


def _exact_count(conn: Connection, query: str, domain: str | None = None) -> int:
    match = " AND ".join(f'"{w}"' for w in query.split())
    if domain:
        match += f' AND {{domain}} : "{domain}"'
    return int(
        conn.execute(
            text("SELECT count(*) FROM mesh_catalog_fts WHERE mesh_catalog_fts MATCH :q"),
            {"q": match},
        ).scalar_one()
    )


@pytest.fixture
def generated(sqlite_home: Home) -> Home:
    catalog_index.bulk_index(sqlite_home.db, _generated(3000))
    return sqlite_home


def test_small_and_bounded_totals_are_exact(
    generated: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_search, "TOTAL_SAMPLE", 50)
    monkeypatch.setattr(catalog_search, "TOTAL_EXACT", 100)
    with generated.db.read() as conn:
        for query in ("xray", "xray alpha", "yankee bravo charlie", "xray yankee"):
            # At most ~60 products hold a rare word: its document list bounds the walk.
            result = catalog_search.search(conn, query)
            assert result.total_exact and result.total == _exact_count(conn, query)
        # Long lists for the other words make the whole walk costly: estimated instead.
        monkeypatch.setattr(catalog_search, "EXACT_POSTINGS", 1000)
        result = catalog_search.search(conn, "xray alpha bravo")  # ~15 matches: the walk ends
        assert result.total_exact and result.total == _exact_count(conn, "xray alpha bravo")
        assert not catalog_search.search(conn, "xray owner").total_exact  # ~60 matches > 50 walked
        monkeypatch.setattr(catalog_search, "TOTAL_SAMPLE", 2000)  # the walk ends within the sample
        result = catalog_search.search(conn, "alpha bravo")
        assert result.total_exact and result.total == _exact_count(conn, "alpha bravo")


def test_large_totals_are_flagged_and_within_the_stated_error(
    generated: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_search, "TOTAL_SAMPLE", 200)  # standard error 1/sqrt(200): 7%
    monkeypatch.setattr(catalog_search, "TOTAL_EXACT", 100)
    with generated.db.read() as conn:
        for query, domain in (
            ("alpha", None),  # ~1,500 matches
            ("alpha bravo", None),  # ~750
            ("alpha bravo charlie", None),  # ~375
            ("alpha charlie", "d1"),  # ~250
        ):
            result = catalog_search.search(conn, query, domain=domain)
            exact = _exact_count(conn, query, domain)
            assert not result.total_exact and result.facets_estimated
            assert abs(result.total - exact) <= 4 * exact / np.sqrt(200)  # 4 standard errors
            assert sum(result.facets["status"].values()) == result.total


@settings(max_examples=60, derandomize=True, deadline=None)
@given(
    total=st.integers(min_value=2, max_value=300_000),
    sample=st.integers(min_value=10, max_value=2000),
    seed=st.integers(min_value=0, max_value=2**32 - 1),
)
def test_the_estimate_is_within_five_standard_errors(total: int, sample: int, seed: int) -> None:
    """The count-th lowest of `total` uniform ids estimates `total` within 5/sqrt(count - 2)
    of it (a miss has probability below one in a million)."""
    count = min(total, sample + 1)
    ids = np.random.default_rng(seed).integers(0, 2**62, size=total, dtype=np.int64)
    last = int(np.partition(ids, count - 1)[count - 1])
    estimate = catalog_search.estimate_total(count, last)
    if count == total:  # nothing to estimate: the walk saw every match (sample >= total)
        assert estimate > 0
        return
    assert abs(estimate - total) <= 5 * total / np.sqrt(count - 2)


def test_an_estimate_needs_two_ids() -> None:
    with pytest.raises(InvalidInput):
        catalog_search.estimate_total(1, 10)
    with pytest.raises(InvalidInput):
        catalog_search.estimate_total(5, 2)  # 5 distinct ids cannot all be at most 2


@pytest.mark.parametrize("sample", [50, 1000])
def test_common_words_checked_here_give_the_same_results(
    generated: Home, monkeypatch: pytest.MonkeyPatch, sample: int
) -> None:
    """`owner` (every product) is required but not scored; its check moves from FTS5 into
    the candidates' text when that is cheaper: the totals, facets and hits do not change."""
    monkeypatch.setattr(catalog_search, "TOTAL_SAMPLE", sample)  # 50: estimated totals too
    monkeypatch.setattr(catalog_search, "TOTAL_EXACT", 100)
    queries = [("owner xray", None), ("owner alpha", "d1"), ("alpha owner bravo", None)]

    def results(check_cost: int) -> list[tuple[object, ...]]:
        monkeypatch.setattr(catalog_search, "CHECK_HERE_COST", check_cost)
        with generated.db.read() as conn:
            found = [catalog_search.search(conn, q, domain=d, limit=10) for q, d in queries]
        return [(r.total, r.total_exact, r.facets, [h.product for h in r.hits]) for r in found]

    walked_by_fts5 = results(10**9)
    checked = []
    walk = catalog_search._walk_checking_common_words
    monkeypatch.setattr(
        catalog_search, "_walk_checking_common_words", lambda *a: checked.append(1) or walk(*a)
    )
    assert results(0) == walked_by_fts5 and checked
    exact = [total_exact for _, total_exact, _, _ in walked_by_fts5]
    assert all(exact) if sample == 1000 else not all(exact)
    with generated.db.read() as conn:
        assert walked_by_fts5[0][0] == _exact_count(conn, "xray")  # ~60: exact either way
