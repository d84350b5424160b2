"""Catalog search: facet table, filters, exact totals, bounded facet counts (B8), on SQLite
(FTS5) and PostgreSQL (tsvector) through the `home` fixture."""

from __future__ import annotations

import pytest

from meshops.kernel.home import Home
from meshops.mesh import catalog


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
        catalog.index(conn, [_entry(i) for i in range(n)], fresh=fresh)


def test_search_filters_totals_and_exact_facets(home: Home) -> None:
    _fill(home, 24, fresh=True)
    with home.db.read() as conn:
        result = catalog.search(conn, "orders")
        assert result.total == 24 and not result.facets_estimated
        assert result.facets["domain"] == {"ops": 12, "sales": 12}
        assert result.facets["tag"] == {"bronze": 16, "gold": 8}
        assert result.facets["classification"] == {"pii": 6}
        assert result.facets["status"] == {"published": 24}
        assert len(result.hits) == 20
        page2 = catalog.search(conn, "orders", limit=20, offset=20)
        assert len(page2.hits) == 4
        assert not {h.product for h in result.hits} & {h.product for h in page2.hits}

        sales_gold = catalog.search(conn, "ord", domain="sales", tag="gold")
        assert sales_gold.total == 4  # i in 3, 9, 15, 21
        assert {h.product for h in sales_gold.hits} == {f"sales.orders_{i}" for i in (3, 9, 15, 21)}
        assert sales_gold.facets["domain"] == {"sales": 4}
        pii = catalog.search(conn, "", classification="pii")
        assert pii.total == 6 and [h.product for h in pii.hits] == sorted(
            h.product for h in pii.hits
        )
        # Column text is searchable; names weigh more than columns.
        assert catalog.search(conn, "customer email").total == 6
        assert catalog.search(conn, "nothing-like-this").total == 0


def test_reindex_replaces_and_status_changes_move_facets(home: Home) -> None:
    _fill(home, 6)
    with home.db.begin() as conn:
        catalog.index(conn, [_entry(0, tags=["platinum"])])  # replace one entry
        catalog.set_status(conn, "sales.orders_1", "deprecated")
    with home.db.read() as conn:
        result = catalog.search(conn, "orders")
        assert result.total == 6
        assert result.facets["tag"]["platinum"] == 1
        assert result.facets["status"] == {"deprecated": 1, "published": 5}
        assert catalog.search(conn, "orders", status="deprecated").total == 1
        assert catalog.search(conn, "orders", tag="platinum").hits[0].product == "ops.orders_0"


def test_large_match_sets_have_exact_totals_and_estimated_facets(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(catalog, "FACET_EXACT", 10)
    monkeypatch.setattr(catalog, "FACET_SAMPLE", 10)
    _fill(home, 40, fresh=True)
    with home.db.read() as conn:
        result = catalog.search(conn, "orders")
    assert result.total == 40 and result.facets_estimated
    assert sum(result.facets["status"].values()) == 40  # sample counts scaled to the total
    assert set(result.facets["domain"]) <= {"ops", "sales"}


def test_doc_ids_are_stable_and_distinct() -> None:
    ids = {catalog.doc_id(f"d.p{i}") for i in range(10_000)}
    assert len(ids) == 10_000
    assert catalog.doc_id("d.p1") == catalog.doc_id("d.p1") < 2**62
