"""Catalog search: facet table, filters, exact totals, bounded facet counts (B8), on SQLite
(FTS5) and PostgreSQL (tsvector) through the `home` fixture."""

from __future__ import annotations

import random

import pytest
from sqlalchemy import Connection, text

from meshops.kernel.errors import InvalidInput
from meshops.kernel.home import Home
from meshops.mesh import catalog, catalog_index, catalog_search


def _entry(i: int, *, status: str = "published", tags: list[str] | None = None) -> dict:
    domain = "sales" if i % 2 else "ops"
    return catalog.entry(
        f"{domain}.orders_{i}",
        domain=domain,
        name=f"orders_{i}",
        status=status,
        description=f"daily orders number {i}",
        tags=tags if tags is not None else (["gold"] if i % 3 == 0 else ["bronze"]),
        owners=["alice"],
        columns=[
            {"name": "customer_email", "description": "who", "classification": "pii"}
            if i % 4 == 0
            else {"name": "amount", "description": "money"},
        ],
        latest_version="1.0.0",
    )


def _fill(home: Home, n: int, *, fresh: bool = False) -> None:
    with home.db.begin() as conn:
        catalog_index.index(conn, [_entry(i) for i in range(n)], fresh=fresh)


def test_search_filters_totals_and_exact_facets(home: Home) -> None:
    _fill(home, 24, fresh=True)
    with home.db.read() as conn:
        result = catalog_search.search(conn, "orders")
        assert result.total == 24 and not result.facets_estimated
        assert result.facets["domain"] == {"ops": 12, "sales": 12}
        assert result.facets["tag"] == {"bronze": 16, "gold": 8}
        assert result.facets["classification"] == {"pii": 6}
        assert result.facets["status"] == {"published": 24}
        assert len(result.hits) == 20
        page2 = catalog_search.search(conn, "orders", limit=20, offset=20)
        assert len(page2.hits) == 4
        assert not {h.product for h in result.hits} & {h.product for h in page2.hits}

        sales_gold = catalog_search.search(conn, "ord", domain="sales", tag="gold")
        assert sales_gold.total == 4  # i in 3, 9, 15, 21
        assert {h.product for h in sales_gold.hits} == {f"sales.orders_{i}" for i in (3, 9, 15, 21)}
        assert sales_gold.facets["domain"] == {"sales": 4}
        pii = catalog_search.search(conn, "", classification="pii")
        assert pii.total == 6 and [h.product for h in pii.hits] == sorted(
            h.product for h in pii.hits
        )
        # Column text is searchable; names weigh more than columns.
        assert catalog_search.search(conn, "customer email").total == 6
        assert catalog_search.search(conn, "nothing-like-this").total == 0


def test_reindex_replaces_and_status_changes_move_facets(home: Home) -> None:
    _fill(home, 6)
    with home.db.begin() as conn:
        catalog_index.index(conn, [_entry(0, tags=["platinum"])])  # replace one entry
        catalog_index.set_status(conn, "sales.orders_1", "deprecated")
    with home.db.read() as conn:
        result = catalog_search.search(conn, "orders")
        assert result.total == 6
        assert result.facets["tag"]["platinum"] == 1
        assert result.facets["status"] == {"deprecated": 1, "published": 5}
        assert catalog_search.search(conn, "orders", status="deprecated").total == 1
        platinum = catalog_search.search(conn, "orders", tag="platinum")
        assert platinum.hits[0].product == "ops.orders_0"


def test_large_match_sets_have_exact_totals_and_estimated_facets(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_search, "FACET_SAMPLE", 10)
    _fill(home, 40, fresh=True)
    with home.db.read() as conn:
        result = catalog_search.search(conn, "orders")
    assert result.total == 40 and result.facets_estimated
    assert sum(result.facets["status"].values()) == 40  # sample counts scaled to the total
    assert set(result.facets["domain"]) <= {"ops", "sales"}


def test_doc_ids_are_stable_and_distinct() -> None:
    ids = {catalog.doc_id(f"d.p{i}") for i in range(10_000)}
    assert len(ids) == 10_000
    assert catalog.doc_id("d.p1") == catalog.doc_id("d.p1") < 2**62


def test_words_expand_to_indexed_words_and_long_expansions_use_a_prefix_query(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(home, 12, fresh=True)
    with home.db.read() as conn:
        assert catalog_search.search(conn, "ord").total == 12
        assert catalog_search.search(conn, "ord mon").total == 9  # "amount money" where i % 4
        assert catalog_search.search(conn, "zzz orders").total == 0  # no indexed word starts so
        assert catalog_search.search(conn, "orders 1").total == 3  # 1, 10, 11
        monkeypatch.setattr(catalog_search, "EXPANSIONS", 2)  # `1` has three: an FTS5 prefix query
        assert catalog_search.search(conn, "orders 1").total == 3


_VOCABULARY = [
    "alpha", "alphas", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel",
    "india", "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec",
]  # fmt: skip


def _varied_entries(n: int) -> list[dict]:
    """Products of random words (fixed seed) with 1-8 columns: bm25 scores all differ."""
    rng = random.Random(3)
    return [
        catalog.entry(
            f"d{i % 3}.p{i}",
            domain=f"d{i % 3}",
            name=" ".join(rng.choices(_VOCABULARY, k=2)),
            status="published",
            description=" ".join(rng.choices(_VOCABULARY, k=4)),
            tags=[rng.choice(_VOCABULARY)],
            owners=["zulu"],
            columns=[
                {"name": rng.choice(_VOCABULARY), "description": rng.choice(_VOCABULARY)}
                for _ in range(rng.randint(1, 8))
            ],
            latest_version="1.0.0",
        )
        for i in range(n)
    ]


def _fts5_ranking(conn: Connection, match: str, limit: int) -> list[tuple[str, float]]:
    """FTS5's own bm25 over every match: the oracle the faster paths must agree with."""
    rows = conn.execute(
        text(
            "SELECT product, -bm25(mesh_catalog_fts, 0.0, 10.0, 4.0, 3.0, 5.0, 2.0, 1.5) AS s "
            "FROM mesh_catalog_fts WHERE mesh_catalog_fts MATCH :q ORDER BY s DESC, rowid "
            "LIMIT :n"
        ),
        {"q": match, "n": limit},
    )
    return [(str(p), float(s)) for p, s in rows]


def test_champion_lists_rank_like_bm25_over_every_match(
    sqlite_home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_index, "CHAMPIONS", 1000)  # complete lists: the same top-k
    with sqlite_home.db.begin() as conn:
        catalog_index.index(conn, _varied_entries(300), fresh=True)
    monkeypatch.setattr(catalog_search, "RANK_EXACT", 0)  # always try the champions
    with sqlite_home.db.read() as conn:
        for query, match in (
            ("alpha", '"alpha" OR "alphas"'),
            ("alpha bravo", '("alpha" OR "alphas") AND "bravo"'),
        ):
            for offset in (0, 20):
                hits = catalog_search.search(conn, query, limit=20, offset=offset).hits
                expected = _fts5_ranking(conn, match, offset + 20)[offset:]
                assert [h.product for h in hits] == [p for p, _ in expected]
                assert [h.score for h in hits] == pytest.approx([s for _, s in expected])


def test_short_champion_lists_fall_back_to_every_match(
    sqlite_home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_index, "CHAMPIONS", 2)  # far too few to fill a page
    with sqlite_home.db.begin() as conn:
        catalog_index.index(conn, _varied_entries(200), fresh=True)
    monkeypatch.setattr(catalog_search, "RANK_EXACT", 0)
    with sqlite_home.db.read() as conn:
        hits = catalog_search.search(conn, "charlie", limit=20).hits
        expected = _fts5_ranking(conn, '"charlie"', 20)
    assert [h.product for h in hits] == [p for p, _ in expected]
    assert [h.score for h in hits] == pytest.approx([s for _, s in expected])


def test_words_in_most_products_are_required_but_not_scored(sqlite_home: Home) -> None:
    with sqlite_home.db.begin() as conn:
        catalog_index.index(conn, _varied_entries(200), fresh=True)
    with sqlite_home.db.read() as conn:
        # `zulu` (every owner) has the minimum idf: ranking without it is FTS5's ranking.
        result = catalog_search.search(conn, "zulu delta", limit=50)
        expected = _fts5_ranking(conn, '"zulu" AND "delta"', 50)
        assert result.total == len(_fts5_ranking(conn, '"delta"', 1000))
    assert [h.product for h in result.hits] == [p for p, _ in expected]
    assert [h.score for h in result.hits] == pytest.approx([s for _, s in expected], abs=1e-4)


def test_totals_above_the_bound_are_estimated(
    sqlite_home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fill(sqlite_home, 400, fresh=True)
    with sqlite_home.db.read() as conn:
        assert catalog_search.search(conn, "orders").total_exact
        monkeypatch.setattr(catalog_search, "TOTAL_EXACT", 100)  # `orders` is in 400 > 100 products
        assert catalog_search.search(conn, "orders").total == 400  # the walk ends within 1,000
        monkeypatch.setattr(catalog_search, "TOTAL_SAMPLE", 100)
        result = catalog_search.search(conn, "orders")
    assert not result.total_exact and result.facets_estimated
    assert 200 <= result.total <= 800  # 101 of 400 ids: their density estimates the count


def test_reindex_keeps_word_counts_and_champions_in_step(sqlite_home: Home) -> None:
    _fill(sqlite_home, 6)

    def state(conn: Connection, term: str) -> tuple[int, set[int]]:
        docs = conn.execute(
            text("SELECT docs FROM mesh_catalog_fts_terms WHERE term = :t"), {"t": term}
        ).scalar()
        champions = conn.execute(
            text("SELECT doc_id FROM mesh_catalog_fts_champions WHERE term = :t"), {"t": term}
        ).scalars()
        return int(docs or 0), {int(d) for d in champions}

    zero = catalog.doc_id("ops.orders_0")
    with sqlite_home.db.read() as conn:
        assert state(conn, "gold") == (2, {zero, catalog.doc_id("sales.orders_3")})
    with sqlite_home.db.begin() as conn:
        catalog_index.index(conn, [_entry(0, tags=["platinum"])])
    with sqlite_home.db.read() as conn:
        assert state(conn, "gold") == (1, {catalog.doc_id("sales.orders_3")})
        assert state(conn, "platinum") == (1, {zero})
        assert state(conn, "orders") == (
            6,
            {
                catalog.doc_id(f"{d}.orders_{i}")
                for i, d in zip(range(6), ["ops", "sales"] * 3, strict=True)
            },
        )
        assert catalog_search.search(conn, "gold").total == 1


def test_migration_backfills_the_side_tables_as_indexing_builds_them(sqlite_home: Home) -> None:
    from alembic import command

    from meshops.kernel import schema

    with sqlite_home.db.begin() as conn:
        catalog_index.index(conn, _varied_entries(60), fresh=True)

    def side_tables() -> tuple[dict[str, int], dict[tuple[str, int], float]]:
        with sqlite_home.db.read() as conn:
            terms = conn.execute(text("SELECT term, docs FROM mesh_catalog_fts_terms")).all()
            champions = conn.execute(
                text("SELECT term, doc_id, impact FROM mesh_catalog_fts_champions")
            ).all()
        return dict(terms), {(t, d): i for t, d, i in champions}

    built_terms, built_champions = side_tables()
    cfg = schema._alembic_config(sqlite_home.db)
    with sqlite_home.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "mesh@mesh_0002")
    schema.upgrade(sqlite_home.db)
    terms, champions = side_tables()
    assert terms == built_terms and set(champions) == set(built_champions)
    assert list(champions.values()) == pytest.approx([built_champions[k] for k in champions])


def test_bulk_index_commits_chunks_and_searches_like_index(home: Home) -> None:
    indexed = catalog_index.bulk_index(home.db, (_entry(i) for i in range(24)), chunk_size=5)
    assert indexed == 24
    with home.db.read() as conn:
        result = catalog_search.search(conn, "orders")
        assert result.total == 24 and not result.facets_estimated
        assert result.facets["domain"] == {"ops": 12, "sales": 12}
        assert result.facets["tag"] == {"bronze": 16, "gold": 8}
        assert catalog_search.search(conn, "ord", domain="sales", tag="gold").total == 4
    with pytest.raises(InvalidInput, match="chunk_size"):
        catalog_index.bulk_index(home.db, [], chunk_size=0)


def test_bulk_index_side_tables_match_the_migrations_backfill(sqlite_home: Home) -> None:
    """One chunk: the same word counts and champions (impacts too) as the backfill, which
    computes them from the catalog rows in one pass."""
    from alembic import command

    from meshops.kernel import schema

    catalog_index.bulk_index(sqlite_home.db, _varied_entries(60), chunk_size=1000)

    def side_tables() -> tuple[dict[str, int], dict[tuple[str, int], float]]:
        with sqlite_home.db.read() as conn:
            terms = conn.execute(text("SELECT term, docs FROM mesh_catalog_fts_terms")).all()
            champions = conn.execute(
                text("SELECT term, doc_id, impact FROM mesh_catalog_fts_champions")
            ).all()
        return dict(terms), {(t, d): i for t, d, i in champions}

    built_terms, built_champions = side_tables()
    cfg = schema._alembic_config(sqlite_home.db)
    with sqlite_home.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "mesh@mesh_0002")
    schema.upgrade(sqlite_home.db)
    terms, champions = side_tables()
    assert terms == built_terms and set(champions) == set(built_champions)
    assert list(champions.values()) == pytest.approx([built_champions[k] for k in champions])


def test_bulk_index_keeps_the_best_champions_across_chunks(
    sqlite_home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_index, "CHAMPIONS", 1000)  # complete lists: the same top-k as bm25
    catalog_index.bulk_index(sqlite_home.db, _varied_entries(300), chunk_size=7)
    monkeypatch.setattr(catalog_search, "RANK_EXACT", 0)  # always rank from the champions
    with sqlite_home.db.read() as conn:
        docs = dict(conn.execute(text("SELECT term, docs FROM mesh_catalog_fts_terms")).all())
        kept = dict(
            conn.execute(
                text(
                    "SELECT term, count(*) FROM mesh_catalog_fts_champions "
                    "WHERE instr(term, '_') = 0 GROUP BY term"
                )
            ).all()
        )
        assert kept == docs  # every product of every word is one of its champions
        in_domain = conn.execute(
            text(
                "SELECT substr(ch.term, instr(ch.term, '_') + 1), c.domain "
                "FROM mesh_catalog_fts_champions ch JOIN mesh_catalog c USING (doc_id) "
                "WHERE ch.term LIKE 'zulu\\_%' ESCAPE '\\'"
            )
        ).all()
        assert (
            len(in_domain) == 3 * catalog_index.DOMAIN_CHAMPIONS
        )  # zulu is in all 100 of each: full lists
        assert all(key == domain for key, domain in in_domain)
        hits = catalog_search.search(conn, "alpha bravo", limit=20).hits
        expected = _fts5_ranking(conn, '("alpha" OR "alphas") AND "bravo"', 20)
    assert [h.product for h in hits] == [p for p, _ in expected]
    assert [h.score for h in hits] == pytest.approx([s for _, s in expected])


def test_domain_filtered_queries_rank_from_the_domains_champion_lists(
    sqlite_home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog_index, "DOMAIN_CHAMPIONS", 1000)  # complete lists: the same top-k
    with sqlite_home.db.begin() as conn:
        catalog_index.index(conn, _varied_entries(300), fresh=True)
    monkeypatch.setattr(catalog_search, "RANK_EXACT", 0)  # always try the champions
    with sqlite_home.db.read() as conn:
        result = catalog_search.search(conn, "alpha bravo", domain="d1", limit=10)
        everywhere = _fts5_ranking(conn, '("alpha" OR "alphas") AND "bravo"', 1000)
    # The query words' bm25 over the whole catalog, among the domain's products only.
    expected = [(p, score) for p, score in everywhere if p.startswith("d1.")][:10]
    assert result.total == sum(p.startswith("d1.") for p, _ in everywhere)
    assert [h.product for h in result.hits] == [p for p, _ in expected]
    assert [h.score for h in result.hits] == pytest.approx([s for _, s in expected])
