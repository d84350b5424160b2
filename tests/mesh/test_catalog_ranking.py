"""Ranking the known matches of a narrow query in Python (`catalog_search._score`) instead of by
FTS5's bm25, which reads every doclist of the query for its idf: the same hits, scores and
order as FTS5, with and without a domain or tag filter (their words scored in their column),
and words in most products required but not scored, as on the FTS5 path."""

from __future__ import annotations

import random

import pytest

from meshops.kernel.home import Home
from meshops.mesh import catalog, catalog_index, catalog_search
from meshops.mesh.models import SearchResult
from tests.mesh.test_catalog import _fts5_ranking

_WORDS = [f"w{a}{b}" for a in "abcdef" for b in "abcdefghij"]  # none starts another

CASES = [  # (query, domain, tag, the FTS5 query of the words scored)
    ("waa", None, None, '"waa"'),
    ("wab wba", None, None, '"wab" AND "wba"'),
    ("wac", "d1", None, '"wac" AND {domain} : ("d1")'),
    ("wbb wcc", "d2", None, '"wbb" AND "wcc" AND {domain} : ("d2")'),
    ("wad", None, "wab", '"wad" AND {tags} : ("wab")'),
    ("owner wae", None, None, '"wae"'),  # `owner` is in every product: required, not scored
]  # fmt: skip


def _entries(n: int) -> list[dict]:
    """Products of 4-18 words from 60 (each in about a tenth to a third of them)."""
    rng = random.Random(5)
    return [
        catalog.entry(
            f"d{i % 3}.p{i}",
            domain=f"d{i % 3}",
            name=" ".join(rng.choices(_WORDS[:10], k=2)),
            status="published",
            description=" ".join(rng.choices(_WORDS, k=rng.randint(0, 4))),
            tags=rng.sample(_WORDS, 2),
            owners=["owner"],
            columns=[
                {"name": rng.choice(_WORDS), "description": rng.choice(_WORDS)}
                for _ in range(rng.randint(0, 6))
            ],
            latest_version="1.0.0",
        )
        for i in range(n)
    ]


def _search(
    home: Home, cost: int, monkeypatch: pytest.MonkeyPatch, offset: int = 0
) -> list[SearchResult]:
    monkeypatch.setattr(catalog_search, "SCORE_HERE_COST", cost)
    with home.db.read() as conn:
        return [
            catalog_search.search(conn, q, domain=d, tag=t, limit=25, offset=offset)
            for q, d, t, _ in CASES
        ]


def test_known_matches_rank_here_as_fts5_does(
    sqlite_home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sqlite_home.db.begin() as conn:
        catalog_index.index(conn, _entries(600), fresh=True)
    calls: list[int] = []
    score = catalog_search._score
    monkeypatch.setattr(catalog_search, "_score", lambda *a: calls.append(len(a[1])) or score(*a))
    by_fts5 = _search(sqlite_home, 10**9, monkeypatch)  # never cheaper here
    assert not calls
    here = _search(sqlite_home, 0, monkeypatch)  # always cheaper here
    assert len(calls) == len(CASES)
    with sqlite_home.db.read() as conn:
        for (_, _, tag, match), fts5, mine in zip(CASES, by_fts5, here, strict=True):
            expected = _fts5_ranking(conn, match, 1000)
            assert mine.total_exact and mine.total == fts5.total
            assert tag is None or all(tag in h.tags for h in mine.hits)
            assert [h.product for h in mine.hits] == [h.product for h in fts5.hits]
            assert [h.score for h in mine.hits] == pytest.approx([h.score for h in fts5.hits])
            oracle = dict(expected)  # the FTS5 scores of the scored words alone
            assert [h.score for h in mine.hits] == pytest.approx(
                [oracle[h.product] for h in mine.hits]
            )


def test_later_pages_are_the_same_either_way(
    sqlite_home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    with sqlite_home.db.begin() as conn:
        catalog_index.index(conn, _entries(600), fresh=True)
    pages = [_search(sqlite_home, cost, monkeypatch, offset=10) for cost in (10**9, 0)]
    by_fts5, here = ([[h.product for h in r.hits] for r in page] for page in pages)
    assert here == by_fts5 and any(by_fts5)
