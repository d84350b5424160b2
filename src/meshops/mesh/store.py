"""Mesh tables (SQLAlchemy Core on the shared metadata) and their queries.

The catalog's full-text index is `mesh_catalog.search_vector` (a tsvector with a GIN index)
on PostgreSQL and the FTS5 virtual table `mesh_catalog_fts` on SQLite; the latter is created
by the migration only (virtual tables cannot be declared in SQLAlchemy metadata).
"""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
    update,
)
from sqlalchemy.dialects import postgresql

from meshops.kernel.db import BigId, JsonColumn, UtcDateTime, metadata, utcnow
from meshops.kernel.errors import InvalidInput

TsVector = Text().with_variant(postgresql.TSVECTOR(), "postgresql")

mesh_domains = Table(
    "mesh_domains",
    metadata,
    Column("name", String(100), primary_key=True),
    Column("description", Text, nullable=False),
    Column("team", String(200), nullable=False),
    Column("owners", JsonColumn, nullable=False),
    Column("members", JsonColumn, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

mesh_products = Table(
    "mesh_products",
    metadata,
    Column("product", String(200), primary_key=True),  # "<domain>.<name>"
    Column("domain", String(100), nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("description", Text, nullable=False),
    Column("tags", JsonColumn, nullable=False),
    Column("owners", JsonColumn, nullable=False),
    Column("latest_version", String(100), nullable=True),
    Column("sunset", Date, nullable=True),
    Column("replacement", String(200), nullable=True),
    Column("deprecation_reason", Text, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

mesh_versions = Table(
    "mesh_versions",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("product", String(200), ForeignKey("mesh_products.product"), nullable=False),
    Column("version", String(100), nullable=False),
    Column("urn", String(400), nullable=False),
    Column("digest", String(64), nullable=False, index=True),
    Column("row_count", BigId, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("descriptor", JsonColumn, nullable=False),
    Column("inputs", JsonColumn, nullable=False),
    Column("schema_diff", JsonColumn, nullable=False),
    Column("build", JsonColumn, nullable=True),  # models.BuildSummary (mesh_0004)
    UniqueConstraint("product", "version", name="uq_mesh_versions_product_version"),
    UniqueConstraint("urn", name="uq_mesh_versions_urn"),
)

mesh_ports = Table(
    "mesh_ports",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("version_id", BigId, ForeignKey("mesh_versions.id"), nullable=False, index=True),
    Column("position", Integer, nullable=False),
    Column("name", String(100), nullable=False),
    Column("contract_id", String(200), nullable=False),
    Column("snapshot_digest", String(64), nullable=False),
    Column("row_count", BigId, nullable=False),
    Column("bytes", BigId, nullable=False),
    Column("columns", JsonColumn, nullable=False),
    Column("profile", JsonColumn, nullable=False),
    Column("contract", JsonColumn, nullable=False),
)

mesh_quality_results = Table(
    "mesh_quality_results",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("version_id", BigId, ForeignKey("mesh_versions.id"), nullable=False, index=True),
    Column("port", String(100), nullable=False),
    Column("rule", String(400), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("column_name", String(200), nullable=True),
    Column("passed", Boolean, nullable=False),
    Column("severity", String(20), nullable=False),
    Column("observed", JsonColumn, nullable=True),
    Column("expected", Text, nullable=False),
    Column("message", Text, nullable=False),
    Column("checked_at", UtcDateTime, nullable=False),
)

mesh_catalog = Table(
    "mesh_catalog",
    metadata,
    Column("product", String(200), primary_key=True),
    Column("domain", String(100), nullable=False, index=True),
    Column("name", String(100), nullable=False),
    Column("status", String(20), nullable=False),
    Column("description", Text, nullable=False),
    Column("tags", JsonColumn, nullable=False),
    Column("owners", JsonColumn, nullable=False),
    Column("classifications", JsonColumn, nullable=False),
    Column("columns_text", Text, nullable=False),
    Column("latest_version", String(100), nullable=True),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("search_vector", TsVector, nullable=True),
    # A stable integer key (from the product name): the FTS5 rowid, and the facet table's key.
    Column("doc_id", BigId, nullable=True),
    Index("ix_mesh_catalog_search_vector", "search_vector", postgresql_using="gin"),
    Index("ix_mesh_catalog_doc_id", "doc_id", unique=True),
)

# One row per (product, facet, value): domain, status, each tag, each classification.
# Filters are indexed lookups on (facet, value); facet counts an indexed GROUP BY over a
# bounded set of candidate documents (see mesh/catalog_search.py).
mesh_catalog_facets = Table(
    "mesh_catalog_facets",
    metadata,
    Column("doc_id", BigId, primary_key=True, autoincrement=False),
    Column("facet", String(20), primary_key=True),
    Column("value", String(200), primary_key=True),
    Column("product", String(200), nullable=False),
    Index("ix_mesh_catalog_facets_value", "facet", "value", "doc_id"),
)


# --- domains ---


def get_domain(conn: Connection, name: str) -> dict[str, Any] | None:
    row = conn.execute(select(mesh_domains).where(mesh_domains.c.name == name)).mappings().first()
    return dict(row) if row else None


def list_domains(conn: Connection) -> list[dict[str, Any]]:
    return [
        dict(r) for r in conn.execute(select(mesh_domains).order_by(mesh_domains.c.name)).mappings()
    ]


def insert_domain(conn: Connection, row: dict[str, Any]) -> None:
    conn.execute(mesh_domains.insert().values(**row))


def update_domain(conn: Connection, name: str, values: dict[str, Any]) -> None:
    conn.execute(update(mesh_domains).where(mesh_domains.c.name == name).values(**values))


# --- products and versions ---


def get_product(
    conn: Connection, product: str, *, for_update: bool = False
) -> dict[str, Any] | None:
    query = select(mesh_products).where(mesh_products.c.product == product)
    if for_update and conn.dialect.name == "postgresql":
        query = query.with_for_update()
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def list_products(
    conn: Connection, domain: str | None = None, status: str | None = None
) -> list[dict[str, Any]]:
    query = select(mesh_products).order_by(mesh_products.c.product)
    if domain:
        query = query.where(mesh_products.c.domain == domain)
    if status:
        query = query.where(mesh_products.c.status == status)
    return [dict(r) for r in conn.execute(query).mappings()]


def upsert_product(conn: Connection, row: dict[str, Any]) -> None:
    existing = get_product(conn, row["product"])
    if existing is None:
        conn.execute(mesh_products.insert().values(**row))
    else:
        values = {k: v for k, v in row.items() if k not in ("product", "created_at")}
        conn.execute(
            update(mesh_products).where(mesh_products.c.product == row["product"]).values(**values)
        )


def update_product(conn: Connection, product: str, values: dict[str, Any]) -> None:
    conn.execute(
        update(mesh_products)
        .where(mesh_products.c.product == product)
        .values(updated_at=utcnow(), **values)
    )


def version_rows(conn: Connection, product: str) -> list[dict[str, Any]]:
    query = (
        select(mesh_versions).where(mesh_versions.c.product == product).order_by(mesh_versions.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def version_numbers(conn: Connection, product: str) -> list[str]:
    query = select(mesh_versions.c.version).where(mesh_versions.c.product == product)
    return [str(v) for v in conn.execute(query).scalars()]


def get_version_row(conn: Connection, product: str, version: str) -> dict[str, Any] | None:
    query = select(mesh_versions).where(
        mesh_versions.c.product == product, mesh_versions.c.version == version
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


def port_rows(conn: Connection, version_id: int) -> list[dict[str, Any]]:
    query = (
        select(mesh_ports)
        .where(mesh_ports.c.version_id == version_id)
        .order_by(mesh_ports.c.position)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def quality_rows(conn: Connection, version_id: int) -> list[dict[str, Any]]:
    query = (
        select(mesh_quality_results)
        .where(mesh_quality_results.c.version_id == version_id)
        .order_by(mesh_quality_results.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def quality_summary(conn: Connection, product: str) -> list[dict[str, Any]]:
    """Per version: when it was published, rules passed and total (for SLO history)."""
    rows = conn.execute(
        select(mesh_versions.c.id, mesh_versions.c.version, mesh_versions.c.created_at)
        .where(mesh_versions.c.product == product)
        .order_by(mesh_versions.c.id)
    ).mappings()
    out = []
    for row in rows:
        results = [
            r
            for r in conn.execute(
                select(
                    mesh_quality_results.c.passed,
                    mesh_quality_results.c.kind,
                    mesh_quality_results.c.observed,
                ).where(mesh_quality_results.c.version_id == row["id"])
            ).all()
            # custom/text rules and declared-only SLAs are no part of the compliance
            if r.observed not in ("not evaluated", "not checked")
        ]
        out.append(
            {
                "version": row["version"],
                "at": row["created_at"],
                "passed": sum(1 for r in results if r.passed),
                "total": len(results),
                "sla_ok": all(r.passed for r in results if r.kind == "sla"),
            }
        )
    return out


def insert_version(
    conn: Connection,
    version: dict[str, Any],
    ports: list[dict[str, Any]],
    quality: list[dict[str, Any]],
) -> int:
    result = conn.execute(mesh_versions.insert().values(**version))
    assert result.inserted_primary_key is not None
    version_id = int(result.inserted_primary_key[0])
    conn.execute(mesh_ports.insert(), [{**p, "version_id": version_id} for p in ports])
    if quality:
        conn.execute(
            mesh_quality_results.insert(), [{**q, "version_id": version_id} for q in quality]
        )
    return version_id


def find_version_by_digest(conn: Connection, product: str, digest: str) -> dict[str, Any] | None:
    query = select(mesh_versions).where(
        mesh_versions.c.product == product, mesh_versions.c.digest == digest
    )
    row = conn.execute(query).mappings().first()
    return dict(row) if row else None


# --- catalog ---


def as_date(value: Any) -> date | None:
    if value is None or (isinstance(value, date) and not isinstance(value, datetime)):
        return value
    if isinstance(value, datetime):
        return value.date()
    try:
        return date.fromisoformat(str(value))
    except ValueError as exc:  # the caller's text (e.g. a deprecation's sunset)
        raise InvalidInput(
            f"not a date: {str(value)[:40]!r}", {"field": "sunset", "fix": "write YYYY-MM-DD"}
        ) from exc
