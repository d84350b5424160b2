"""Catalog search: ranked full-text search over products with facets.

SQLite: the FTS5 table `mesh_catalog_fts` ranked by bm25 with per-field weights.
PostgreSQL: `mesh_catalog.search_vector` (weighted tsvector, GIN index) ranked by ts_rank_cd.
Both match every query word as a prefix (`ord` finds `orders`), all words required.
"""

from __future__ import annotations

import json
import re
from typing import Any

from sqlalchemy import Connection, text

from meshops.kernel.db import utcnow
from meshops.mesh.models import SearchHit, SearchResult
from meshops.mesh.store import mesh_catalog

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


def index(conn: Connection, entries: list[dict[str, Any]]) -> None:
    """Insert or replace catalog entries (and their full-text rows) in the caller's transaction."""
    if not entries:
        return
    products = [e["product"] for e in entries]
    conn.execute(mesh_catalog.delete().where(mesh_catalog.c.product.in_(products)))
    if conn.dialect.name == "postgresql":
        conn.execute(mesh_catalog.insert(), entries)
        conn.execute(
            text(
                "UPDATE mesh_catalog SET search_vector = "
                "setweight(to_tsvector('simple', name || ' ' || domain), 'A') || "
                "setweight(to_tsvector('simple', coalesce(tags::text, '') || ' ' || "
                "coalesce(owners::text, '')), 'B') || "
                "setweight(to_tsvector('simple', description), 'C') || "
                "setweight(to_tsvector('simple', columns_text), 'D') "
                "WHERE product = ANY(:products)"
            ),
            {"products": products},
        )
        return
    conn.execute(mesh_catalog.insert(), entries)
    conn.execute(
        text("DELETE FROM mesh_catalog_fts WHERE product IN (SELECT value FROM json_each(:p))"),
        {"p": json.dumps(products)},
    )
    conn.execute(
        text(
            "INSERT INTO mesh_catalog_fts (product, name, domain, description, tags, owners, "
            "columns_text) VALUES (:product, :name, :domain, :description, :tags, :owners, "
            ":columns_text)"
        ),
        [
            {
                **{k: e[k] for k in ("product", "name", "domain", "description", "columns_text")},
                "tags": " ".join(e["tags"]),
                "owners": " ".join(e["owners"]),
            }
            for e in entries
        ],
    )


def set_status(conn: Connection, product: str, status: str) -> None:
    conn.execute(
        mesh_catalog.update().where(mesh_catalog.c.product == product).values(status=status)
    )


def _filters(dialect: str, facets: dict[str, str | None]) -> tuple[list[str], dict[str, Any]]:
    clauses, params = [], {}
    if facets.get("domain"):
        clauses.append("c.domain = :f_domain")
        params["f_domain"] = facets["domain"]
    if facets.get("status"):
        clauses.append("c.status = :f_status")
        params["f_status"] = facets["status"]
    for facet, column in (("tag", "tags"), ("classification", "classifications")):
        value = facets.get(facet)
        if not value:
            continue
        params[f"f_{facet}"] = value
        if dialect == "postgresql":
            clauses.append(f"c.{column} ? :f_{facet}")
        else:
            clauses.append(f"EXISTS (SELECT 1 FROM json_each(c.{column}) WHERE value = :f_{facet})")
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
    dialect = conn.dialect.name
    clauses, params = _filters(
        dialect, {"domain": domain, "status": status, "classification": classification, "tag": tag}
    )
    terms = words(query)
    if not terms:
        source, score = "mesh_catalog c", "0.0"
    elif dialect == "postgresql":
        source, score = "mesh_catalog c", "ts_rank_cd(c.search_vector, to_tsquery('simple', :q))"
        clauses.insert(0, "c.search_vector @@ to_tsquery('simple', :q)")
        params["q"] = " & ".join(f"{t}:*" for t in terms)
    else:
        source = "mesh_catalog_fts f JOIN mesh_catalog c ON c.product = f.product"
        score = f"-bm25(mesh_catalog_fts, {_FTS_WEIGHTS})"
        clauses.insert(0, "mesh_catalog_fts MATCH :q")
        params["q"] = " ".join(f'"{t}"*' for t in terms)
    where = f"WHERE {' AND '.join(clauses)}" if clauses else ""
    order = "score DESC, c.product" if terms else "c.product"
    rows = conn.execute(
        text(
            f"SELECT c.product, c.domain, c.name, c.status, c.description, c.tags, c.owners, "
            f"c.latest_version, {score} AS score FROM {source} {where} "
            f"ORDER BY {order} LIMIT :limit OFFSET :offset"
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
    facets = _facet_counts(conn, source, where, params) if with_facets else {}
    return SearchResult(query=query, total=total, hits=hits, facets=facets)


def _facet_counts(
    conn: Connection, source: str, where: str, params: dict[str, Any]
) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for facet in ("domain", "status"):
        rows = conn.execute(
            text(f"SELECT c.{facet}, count(*) FROM {source} {where} GROUP BY c.{facet}"), params
        ).all()
        out[facet] = {str(k): int(n) for k, n in rows}
    for facet, column in (("tag", "tags"), ("classification", "classifications")):
        if conn.dialect.name == "postgresql":
            unnest = f"jsonb_array_elements_text(c.{column})"
            sql = (
                f"SELECT v, count(*) FROM {source} CROSS JOIN LATERAL {unnest} AS v {where} "
                "GROUP BY v"
            )
        else:
            sql = (
                f"SELECT j.value, count(*) FROM {source} JOIN json_each(c.{column}) j {where} "
                "GROUP BY j.value"
            )
        out[facet] = {str(k): int(n) for k, n in conn.execute(text(sql), params).all()}
    return out


def _json_list(value: Any) -> list[str]:
    if isinstance(value, str):
        value = json.loads(value)
    return [str(v) for v in value or []]
