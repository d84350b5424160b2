"""The catalog's bulk load (numpy word counts and champion lists) against the incremental
path and the migration's backfill, on SQLite (FTS5)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from meshops.kernel.home import Home
from meshops.mesh import catalog_index, catalog_search
from tests.conftest import make_settings
from tests.mesh.test_catalog import _entry, _varied_entries

QUERIES = [
    ("alpha", None),
    ("alpha bravo", None),
    ("charlie", "d1"),
    ("zulu delta", None),
    ("ech", None),
    ("kilo", "d2"),
    ("p1", None),
]


@pytest.fixture
def other_home(tmp_path: Path) -> Iterator[Home]:
    home = Home(make_settings(tmp_path / "other"))
    yield home
    home.close()


def _side_tables(home: Home) -> tuple[dict[str, int], list[tuple[str, int, float]]]:
    with home.db.read() as conn:
        terms = conn.execute(text("SELECT term, docs FROM mesh_catalog_fts_terms")).all()
        champions = conn.execute(
            text("SELECT term, doc_id, impact FROM mesh_catalog_fts_champions ORDER BY 1, 2")
        ).all()
    return {str(t): int(n) for t, n in terms}, [(str(t), int(d), float(i)) for t, d, i in champions]


def _results(home: Home) -> list[tuple[object, ...]]:
    with home.db.read() as conn:
        found = [catalog_search.search(conn, q, domain=d, limit=10) for q, d in QUERIES]
    return [
        (r.total, r.facets, [h.product for h in r.hits], [round(h.score, 9) for h in r.hits])
        for r in found
    ]


def test_bulk_and_incremental_indexing_give_the_same_lists_and_search_results(
    sqlite_home: Home, other_home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Same batches on both paths (so the same running average length): the same word
    counts, champion lists (full ones too, ties kept by lowest id) and search results."""
    monkeypatch.setattr(catalog_index, "CHAMPIONS", 12)  # short lists: most of them full
    monkeypatch.setattr(catalog_index, "DOMAIN_CHAMPIONS", 5)
    monkeypatch.setattr(catalog_search, "RANK_EXACT", 0)  # rank broad queries from the champions
    entries = _varied_entries(300) + [_entry(i) for i in range(60)]  # many equal impacts
    monkeypatch.setattr(catalog_index._Champions, "REDUCE_AT", 50)  # merge the buffer often
    assert catalog_index.bulk_index(sqlite_home.db, iter(entries), chunk_size=45) == len(entries)
    for start in range(0, len(entries), 45):
        with other_home.db.begin() as conn:
            catalog_index.index(conn, entries[start : start + 45], fresh=True)
    bulk_terms, bulk_champions = _side_tables(sqlite_home)
    terms, champions = _side_tables(other_home)
    assert bulk_terms == terms
    assert [c[:2] for c in bulk_champions] == [c[:2] for c in champions]
    assert [c[2] for c in bulk_champions] == pytest.approx([c[2] for c in champions])
    assert _results(sqlite_home) == _results(other_home)


def test_bulk_index_restores_fts5_merging(sqlite_home: Home) -> None:
    catalog_index.bulk_index(sqlite_home.db, (_entry(i) for i in range(10)))
    with sqlite_home.db.read() as conn:
        automerge = conn.execute(
            text("SELECT v FROM mesh_catalog_fts_config WHERE k = 'automerge'")
        ).scalar()
    assert automerge == 4


def test_bulk_index_onto_a_catalog_merges_the_champion_lists(
    sqlite_home: Home, other_home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A bulk load onto a non-empty catalog merges its lists with the stored ones."""
    monkeypatch.setattr(catalog_index, "CHAMPIONS", 10)
    monkeypatch.setattr(catalog_index, "DOMAIN_CHAMPIONS", 4)
    entries = _varied_entries(120)
    catalog_index.bulk_index(sqlite_home.db, entries[:60])
    catalog_index.bulk_index(sqlite_home.db, entries[60:])
    for part in (entries[:60], entries[60:]):
        with other_home.db.begin() as conn:
            catalog_index.index(conn, part, fresh=True)
    assert _side_tables(sqlite_home)[0] == _side_tables(other_home)[0]
    bulk, incremental = _side_tables(sqlite_home)[1], _side_tables(other_home)[1]
    assert [c[:2] for c in bulk] == [c[:2] for c in incremental]


def test_migration_backfill_streams_a_catalog_of_thousands(sqlite_home: Home) -> None:
    """mesh_0003 on an existing home of 3,000 products (full global lists, many equal
    impacts): the word counts and global champion lists the indexing built."""
    from alembic import command

    from meshops.kernel import schema

    catalog_index.bulk_index(sqlite_home.db, (_entry(i) for i in range(3000)))
    built_terms, built = _side_tables(sqlite_home)
    cfg = schema._alembic_config(sqlite_home.db)
    with sqlite_home.db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "mesh@mesh_0002")
    schema.upgrade(sqlite_home.db)
    terms, champions = _side_tables(sqlite_home)
    assert terms == built_terms
    assert len([c for c in built if c[0] == "orders"]) == catalog_index.CHAMPIONS
    own = [c for c in champions if "_" not in c[0]]  # mesh_0005 rebuilds the domain lists
    assert [c[:2] for c in own] == [c[:2] for c in built if "_" not in c[0]]
    assert [c[2] for c in own] == pytest.approx([c[2] for c in built if "_" not in c[0]])
