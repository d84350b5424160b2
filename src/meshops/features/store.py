"""Feature store tables (metadata only; the online values live in the online store)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Index,
    String,
    Table,
    delete,
    select,
    update,
)

from meshops.features.models import SourceRead, TrainingSetInfo, Watermark
from meshops.kernel.db import JsonColumn, UtcDateTime, metadata, utcnow

feature_definitions = Table(
    "feature_definitions",
    metadata,
    Column("kind", String(32), primary_key=True),
    Column("name", String(128), primary_key=True),
    Column("domain", String(200), nullable=True),
    Column("owner", String(200), nullable=False),
    Column("definition", JsonColumn, nullable=False),
    Column("digest", String(64), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Index("ix_feature_definitions_domain", "domain"),
)

feature_watermarks = Table(
    "feature_watermarks",
    metadata,
    Column("view", String(128), primary_key=True),
    Column("version", String(64), nullable=False),
    Column("digest", String(128), nullable=False),
    Column("event_time", UtcDateTime, nullable=True),
    Column("created_time", UtcDateTime, nullable=True),
    Column("rows", BigInteger, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

training_sets = Table(
    "training_sets",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(128), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("entities_digest", String(64), nullable=False),
    Column("timestamp_column", String(128), nullable=False),
    Column("features", JsonColumn, nullable=False),
    Column("columns", JsonColumn, nullable=False),
    Column("sources", JsonColumn, nullable=False),
    # The definitions the set was computed with, so it can be recomputed exactly.
    Column("definitions", JsonColumn, nullable=False),
    Column("row_count", BigInteger, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_training_sets_digest", "digest"),
    Index("ix_training_sets_name", "name"),
)


# --- definitions -----------------------------------------------------------------------


def get_definitions(conn: Connection, kind: str | None = None) -> list[dict[str, Any]]:
    query = select(feature_definitions).order_by(
        feature_definitions.c.kind, feature_definitions.c.name
    )
    if kind:
        query = query.where(feature_definitions.c.kind == kind)
    return [dict(r) for r in conn.execute(query).mappings()]


def definition_digests(conn: Connection) -> tuple[tuple[str, str, str], ...]:
    """(kind, name, digest) of every definition: what changed, without parsing them."""
    query = select(
        feature_definitions.c.kind, feature_definitions.c.name, feature_definitions.c.digest
    ).order_by(feature_definitions.c.kind, feature_definitions.c.name)
    return tuple((r.kind, r.name, r.digest) for r in conn.execute(query))


def get_definition(conn: Connection, kind: str, name: str) -> dict[str, Any] | None:
    row = (
        conn.execute(
            select(feature_definitions).where(
                feature_definitions.c.kind == kind, feature_definitions.c.name == name
            )
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def upsert_definition(
    conn: Connection,
    kind: str,
    name: str,
    *,
    domain: str | None,
    owner: str,
    definition: dict[str, Any],
    digest: str,
    actor: str,
    exists: bool,
) -> None:
    now = utcnow()
    values = {
        "domain": domain,
        "owner": owner,
        "definition": definition,
        "digest": digest,
        "updated_at": now,
    }
    if exists:
        conn.execute(
            update(feature_definitions)
            .where(feature_definitions.c.kind == kind, feature_definitions.c.name == name)
            .values(**values)
        )
    else:
        conn.execute(
            feature_definitions.insert().values(
                kind=kind, name=name, created_by=actor, created_at=now, **values
            )
        )


def set_domain(conn: Connection, kind: str, name: str, domain: str | None) -> None:
    conn.execute(
        update(feature_definitions)
        .where(feature_definitions.c.kind == kind, feature_definitions.c.name == name)
        .values(domain=domain)
    )


# --- watermarks ------------------------------------------------------------------------


def get_watermark(conn: Connection, view: str) -> Watermark | None:
    row = (
        conn.execute(select(feature_watermarks).where(feature_watermarks.c.view == view))
        .mappings()
        .first()
    )
    return Watermark(**dict(row)) if row else None


def materialized_versions(conn: Connection) -> dict[str, str]:
    """view -> the product version its online values were materialized from."""
    query = select(feature_watermarks.c.view, feature_watermarks.c.version)
    return {r.view: r.version for r in conn.execute(query)}


def set_watermark(conn: Connection, mark: Watermark) -> None:
    conn.execute(delete(feature_watermarks).where(feature_watermarks.c.view == mark.view))
    conn.execute(feature_watermarks.insert().values(**mark.model_dump()))


def delete_watermark(conn: Connection, view: str) -> None:
    conn.execute(delete(feature_watermarks).where(feature_watermarks.c.view == view))


# --- training sets ---------------------------------------------------------------------


def insert_training_set(
    conn: Connection, info: TrainingSetInfo, definitions: dict[str, Any]
) -> None:
    conn.execute(
        training_sets.insert().values(
            id=info.id,
            name=info.name,
            digest=info.digest,
            entities_digest=info.entities_digest,
            timestamp_column=info.timestamp_column,
            features=info.features,
            columns=info.columns,
            sources=[s.model_dump() for s in info.sources],
            definitions=definitions,
            row_count=info.row_count,
            created_by=info.created_by,
            created_at=info.created_at,
        )
    )


def _training_set(row: Any) -> TrainingSetInfo:
    return TrainingSetInfo(
        id=row["id"],
        name=row["name"],
        urn=f"meshops:trainingset:{row['name']}:{row['digest'][:16]}",
        digest=row["digest"],
        entities_digest=row["entities_digest"],
        row_count=row["row_count"],
        features=list(row["features"]),
        columns=list(row["columns"]),
        timestamp_column=row["timestamp_column"],
        sources=[SourceRead(**s) for s in row["sources"]],
        created_by=row["created_by"],
        created_at=row["created_at"],
    )


def get_training_set(conn: Connection, id_or_digest: str) -> tuple[TrainingSetInfo, Any] | None:
    row = (
        conn.execute(
            select(training_sets)
            .where((training_sets.c.id == id_or_digest) | (training_sets.c.digest == id_or_digest))
            .order_by(training_sets.c.created_at)
        )
        .mappings()
        .first()
    )
    return (_training_set(row), row["definitions"]) if row else None


def list_training_sets(conn: Connection, name: str | None = None) -> list[TrainingSetInfo]:
    query = select(training_sets).order_by(training_sets.c.created_at.desc()).limit(500)
    if name:
        query = query.where(training_sets.c.name == name)
    return [_training_set(r) for r in conn.execute(query).mappings()]


def training_set_urn(name: str, digest: str) -> str:
    return f"meshops:trainingset:{name}:{digest[:16]}"


def newest(values: list[datetime | None]) -> datetime | None:
    present = [v for v in values if v is not None]
    return max(present) if present else None
