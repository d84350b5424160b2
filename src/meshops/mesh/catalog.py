"""Catalog search: ranked full-text search over products with facets.

SQLite: the FTS5 table `mesh_catalog_fts` ranked by bm25 with per-field weights.
PostgreSQL: `mesh_catalog.search_vector` (weighted tsvector, GIN index) ranked by ts_rank_cd.
Both match every query word as a prefix (`ord` finds `orders`), all words required.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any

from sqlalchemy import Connection, text

from meshops.kernel.db import utcnow
from meshops.mesh.models import SearchHit, SearchResult
from meshops.mesh.store import mesh_catalog, mesh_catalog_facets

FACETS = ("domain", "status", "classification", "tag")
# bm25 weights in FTS5 column order: product (unindexed), name, domain, description, tags,
# owners, columns_text. Names weigh most, then tags/domain, descriptions, then columns.
_FTS_WEIGHTS = "0.0, 10.0, 4.0, 3.0, 5.0, 2.0, 1.5"
_WORD = re.compile(r"[^\W_]+", re.UNICODE)


def words(query: str) -> list[str]:
    return [w.lower() for w in _WORD.findall(query)][:16]


def entry(
    product: str,
    *,
    domain: str,
    name: str,
    status: str,
    description: str,
    tags: list[str],
    owners: list[str],
    columns: list[dict[str, Any]],
    latest_version: str | None,
) -> dict[str, Any]:
    """A catalog row; `columns` are ColumnSpec dicts of every output port."""
    classifications = sorted({str(c["classification"]) for c in columns if c.get("classification")})
    columns_text = " ".join(f"{c['name']} {c.get('description') or ''}".strip() for c in columns)
    return {
        "product": product,
        "domain": domain,
        "name": name,
        "status": status,
        "description": description,
        "tags": sorted(set(tags)),
        "owners": owners,
        "classifications": classifications,
        "columns_text": columns_text,
        "latest_version": latest_version,
        "updated_at": utcnow(),
    }


# Facet counts are exact over up to FACET_EXACT matching documents; above that they are
# computed over a sample of FACET_SAMPLE matching documents (spread evenly: document ids are
# hashes) and scaled to the total, and the result says `facets_estimated`.
FACET_EXACT = 2000
FACET_SAMPLE = 2000


def doc_id(product: str) -> int:
    """A stable 62-bit document id of a product (FTS5 rowid, facet table key)."""
    return int.from_bytes(hashlib.sha256(product.encode()).digest()[:8], "big") >> 2


def _facet_rows(entry: dict[str, Any]) -> list[dict[str, Any]]:
    values = {("domain", entry["domain"]), ("status", entry["status"])}
    values |= {("tag", t) for t in entry["tags"]}
    values |= {("classification", c) for c in entry["classifications"]}
    doc = entry["doc_id"]
    return [
        {"doc_id": doc, "facet": f, "value": v, "product": entry["product"]}
        for f, v in sorted(values)
    ]


def index(conn: Connection, entries: list[dict[str, Any]], *, fresh: bool = False) -> None:
    """Insert or replace catalog entries (their facet and full-text rows too) in the caller's
    transaction. `fresh=True` (bulk loads of products not yet in the catalog) skips deletes."""
    if not entries:
        return
    entries = [{**e, "doc_id": doc_id(e["product"])} for e in entries]
    docs = [e["doc_id"] for e in entries]
    postgres = conn.dialect.name == "postgresql"
    if not fresh:
        for chunk in _chunks(docs):
            conn.execute(
                mesh_catalog_facets.delete().where(mesh_catalog_facets.c.doc_id.in_(chunk))
            )
            conn.execute(mesh_catalog.delete().where(mesh_catalog.c.doc_id.in_(chunk)))
            if not postgres:
                conn.execute(
                    text(
                        "DELETE FROM mesh_catalog_fts "
                        "WHERE rowid IN (SELECT value FROM json_each(:d))"
                    ),
                    {"d": json.dumps(chunk)},
                )
    conn.execute(mesh_catalog.insert(), entries)
    conn.execute(mesh_catalog_facets.insert(), [r for e in entries for r in _facet_rows(e)])
    if postgres:
        conn.execute(
            text(
                "UPDATE mesh_catalog SET search_vector = "
                "setweight(to_tsvector('simple', name || ' ' || domain), 'A') || "
                "setweight(to_tsvector('simple', coalesce(tags::text, '') || ' ' || "
                "coalesce(owners::text, '')), 'B') || "
                "setweight(to_tsvector('simple', description), 'C') || "
                "setweight(to_tsvector('simple', columns_text), 'D') "
                "WHERE doc_id = ANY(:docs)"
            ),
            {"docs": docs},
        )
        return
    conn.execute(
        text(
            "INSERT INTO mesh_catalog_fts (rowid, product, name, domain, description, tags, "
            "owners, columns_text) VALUES (:doc_id, :product, :name, :domain, :description, "
            ":tags, :owners, :columns_text)"
        ),
        [
            {
                **{
                    k: e[k]
                    for k in ("doc_id", "product", "name", "domain", "description", "columns_text")
                },
                "tags": " ".join(e["tags"]),
                "owners": " ".join(e["owners"]),
            }
            for e in entries
        ],
    )


def _chunks(values: list[int], size: int = 500) -> list[list[int]]:
    return [values[i : i + size] for i in range(0, len(values), size)]


def set_status(conn: Connection, product: str, status: str) -> None:
    conn.execute(
        mesh_catalog.update().where(mesh_catalog.c.product == product).values(status=status)
    )
    conn.execute(
        mesh_catalog_facets.update()
        .where(mesh_catalog_facets.c.product == product, mesh_catalog_facets.c.facet == "status")
        .values(value=status)
    )


def _filters(facets: dict[str, str | None]) -> tuple[list[str], dict[str, Any]]:
    """Facet filters as `doc IN (indexed facet lookup)` subqueries (`{doc}` is the column)."""
    clauses, params = [], {}
    for facet in FACETS:
        value = facets.get(facet)
        if not value:
            continue
        params[f"f_{facet}"] = value
        clauses.append(
            "{doc} IN (SELECT doc_id FROM mesh_catalog_facets "
            f"WHERE facet = '{facet}' AND value = :f_{facet})"
        )
    return clauses, params


def search(
    conn: Connection,
    query: str,
    *,
    domain: str | None = None,
    status: str | None = None,
    classification: str | None = None,
    tag: str | None = None,
    limit: int = 20,
    offset: int = 0,
    with_facets: bool = True,
) -> SearchResult:
    """Top hits by relevance, the exact total, and facet counts of the matching products.

    SQLite: the FTS5 table alone answers the match, the ranking (bm25, LIMIT first) and the
    count; catalog rows are read for the page of hits only. PostgreSQL: the tsvector GIN
    index. Facet filters and counts use the indexed facet table on both."""
    dialect = conn.dialect.name
    filters, params = _filters(
        {"domain": domain, "status": status, "classification": classification, "tag": tag}
    )
    terms = words(query)
    if terms and dialect != "postgresql":
        doc, source = "f.rowid", "mesh_catalog_fts f"
        clauses = ["mesh_catalog_fts MATCH :q"]
        score = f"-bm25(mesh_catalog_fts, {_FTS_WEIGHTS})"
        params["q"] = " ".join(f'"{t}"*' for t in terms)
    else:
        doc, source, clauses, score = "c.doc_id", "mesh_catalog c", [], "0.0"
        if terms:
            score = "ts_rank_cd(c.search_vector, to_tsquery('simple', :q))"
            clauses.append("c.search_vector @@ to_tsquery('simple', :q)")
            params["q"] = " & ".join(f"{t}:*" for t in terms)
    # On FTS5 the filter is `+f.rowid IN (...)`: the unary plus keeps the constraint away
    # from the virtual table's planner, which would otherwise run the MATCH once per rowid
    # of the subquery (minutes at 100k products) instead of probing the subquery per match.
    fts_doc = "+f.rowid" if doc == "f.rowid" else doc
    clauses += [f.format(doc=fts_doc) for f in filters]
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    order = "score DESC, doc" if terms else "product"
    page = (
        f"SELECT {doc} AS doc, {score} AS score"
        + (", c.product AS product" if not terms else "")
        + f" FROM {source} {where} ORDER BY {order} LIMIT :limit OFFSET :offset"
    )
    rows = conn.execute(
        text(
            "SELECT c.product, c.domain, c.name, c.status, c.description, c.tags, c.owners, "
            f"c.latest_version, p.score FROM ({page}) p JOIN mesh_catalog c ON c.doc_id = p.doc "
            f"ORDER BY p.score DESC, {'p.doc' if terms else 'c.product'}"
        ),
        {**params, "limit": limit, "offset": offset},
    ).mappings()
    hits = [
        SearchHit(
            product=r["product"],
            domain=r["domain"],
            name=r["name"],
            status=r["status"],
            description=r["description"],
            tags=_json_list(r["tags"]),
            owners=_json_list(r["owners"]),
            latest_version=r["latest_version"],
            score=float(r["score"] or 0.0),
        )
        for r in rows
    ]
    total = int(conn.execute(text(f"SELECT count(*) FROM {source} {where}"), params).scalar() or 0)
    facets: dict[str, dict[str, int]] = {facet: {} for facet in FACETS} if with_facets else {}
    estimated = False
    if with_facets and total:
        estimated = total > FACET_EXACT
        # A bounded candidate set: every match when few, else the first FACET_SAMPLE by
        # document id (hash order, so an even sample) -- no ranking needed for counting.
        candidates = f"SELECT {doc} FROM {source} {where}" + (
            f" ORDER BY {doc} LIMIT {FACET_SAMPLE}" if estimated else ""
        )
        counted = conn.execute(
            text(
                "SELECT facet, value, count(*) FROM mesh_catalog_facets "
                f"WHERE doc_id IN ({candidates}) GROUP BY facet, value"
            ),
            params,
        ).all()
        scale = total / min(total, FACET_SAMPLE) if estimated else 1.0
        for facet, value, n in counted:
            facets[str(facet)][str(value)] = max(1, round(int(n) * scale))
    return SearchResult(
        query=query, total=total, hits=hits, facets=facets, facets_estimated=estimated
    )


def _json_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = json.loads(value)
    return [str(v) for v in value or []]
