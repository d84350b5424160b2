"""Serving tables: endpoints, the prediction-log chunk index, and feedback labels.

Prediction rows themselves live in Parquet chunks in the blob store (written in batches by
`predlog.PredictionLogWriter`); `serving_log_chunks` indexes them by endpoint and time so a
window is read without scanning every chunk.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    String,
    Table,
    Text,
    and_,
    false,
    func,
    select,
    update,
)

from meshops.kernel.db import BigId, JsonColumn, UtcDateTime, metadata
from meshops.kernel.tables import outbox
from meshops.serving.models import Endpoint, FeatureEnrichment

serving_endpoints = Table(
    "serving_endpoints",
    metadata,
    Column("name", String(63), primary_key=True),
    Column("domain", String(200), nullable=False),
    Column("model", String(300), nullable=False),
    Column("canary", String(300), nullable=True),
    Column("canary_percent", Float, nullable=False),
    Column("shadows", JsonColumn, nullable=False),
    Column("enrichment", JsonColumn, nullable=True),
    Column("description", Text, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("generation", Integer, nullable=False),
    Column("trust_model_code", Boolean, nullable=False, server_default=false()),
)

serving_log_chunks = Table(
    "serving_log_chunks",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("endpoint", String(63), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("rows", Integer, nullable=False),
    Column("min_time", UtcDateTime, nullable=False),
    Column("max_time", UtcDateTime, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("rolled_into", String(100), nullable=True),
    Index("ix_serving_log_chunks_window", "endpoint", "max_time"),
)

serving_feedback = Table(
    "serving_feedback",
    metadata,
    Column("endpoint", String(63), primary_key=True),
    Column("request_id", String(128), primary_key=True),
    Column("record", Integer, primary_key=True),
    Column("label", JsonColumn, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", UtcDateTime, nullable=False),
)


def endpoint_from_row(row: Any) -> Endpoint:
    enrichment = row["enrichment"]
    return Endpoint(
        name=row["name"],
        domain=row["domain"],
        model=row["model"],
        canary=row["canary"],
        canary_percent=row["canary_percent"],
        shadows=list(row["shadows"]),
        enrichment=FeatureEnrichment.model_validate(enrichment) if enrichment else None,
        description=row["description"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        generation=row["generation"],
        trust_model_code=bool(row["trust_model_code"]),
    )


def get_endpoint(conn: Connection, name: str) -> Endpoint | None:
    row = (
        conn.execute(select(serving_endpoints).where(serving_endpoints.c.name == name))
        .mappings()
        .first()
    )
    return endpoint_from_row(row) if row else None


def list_endpoints(conn: Connection, domain: str | None) -> list[Endpoint]:
    query = select(serving_endpoints).order_by(serving_endpoints.c.name)
    if domain:
        query = query.where(serving_endpoints.c.domain == domain)
    return [endpoint_from_row(r) for r in conn.execute(query).mappings()]


def insert_endpoint(conn: Connection, endpoint: Endpoint) -> None:
    conn.execute(serving_endpoints.insert().values(**_values(endpoint)))


def update_endpoint(conn: Connection, endpoint: Endpoint) -> None:
    conn.execute(
        update(serving_endpoints)
        .where(serving_endpoints.c.name == endpoint.name)
        .values(**_values(endpoint))
    )


def delete_endpoint(conn: Connection, name: str) -> None:
    conn.execute(serving_endpoints.delete().where(serving_endpoints.c.name == name))


def _values(e: Endpoint) -> dict[str, Any]:
    return {
        "name": e.name,
        "domain": e.domain,
        "model": e.model,
        "canary": e.canary,
        "canary_percent": e.canary_percent,
        "shadows": list(e.shadows),
        "enrichment": e.enrichment.model_dump() if e.enrichment else None,
        "description": e.description,
        "created_by": e.created_by,
        "created_at": e.created_at,
        "updated_at": e.updated_at,
        "generation": e.generation,
        "trust_model_code": e.trust_model_code,
    }


def generations(conn: Connection, names: list[str]) -> dict[str, int]:
    """The cheap poll a running endpoint makes to notice a config change."""
    rows = conn.execute(
        select(serving_endpoints.c.name, serving_endpoints.c.generation).where(
            serving_endpoints.c.name.in_(names)
        )
    )
    return {r.name: int(r.generation) for r in rows}


def change_counter(conn: Connection) -> int:
    """The highest outbox event id: it moves whenever something that can change what an
    endpoint serves commits (alias moves, new versions, traffic changes all emit an event).
    One read of the primary key's end, so a running endpoint can poll it often."""
    return int(conn.execute(select(func.max(outbox.c.id))).scalar() or 0)


# --- prediction log chunks -------------------------------------------------------------------


def insert_chunk(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(serving_log_chunks.insert().values(**values))


def chunks_in_window(
    conn: Connection, endpoint: str, start: datetime | None, end: datetime | None
) -> list[Any]:
    c = serving_log_chunks.c
    cond = [c.endpoint == endpoint]
    if start is not None:
        cond.append(c.max_time >= start)
    if end is not None:
        cond.append(c.min_time < end)
    return list(conn.execute(select(serving_log_chunks).where(and_(*cond)).order_by(c.id)))


def unrolled_chunks(conn: Connection, endpoint: str) -> list[Any]:
    c = serving_log_chunks.c
    query = (
        select(serving_log_chunks)
        .where(c.endpoint == endpoint, c.rolled_into.is_(None))
        .order_by(c.id)
    )
    return list(conn.execute(query))


def mark_rolled(conn: Connection, chunk_ids: list[int], version: str) -> None:
    if chunk_ids:
        conn.execute(
            update(serving_log_chunks)
            .where(serving_log_chunks.c.id.in_(chunk_ids))
            .values(rolled_into=version)
        )


def rolled_versions(conn: Connection, endpoint: str) -> int:
    c = serving_log_chunks.c
    query = select(c.rolled_into).where(c.endpoint == endpoint, c.rolled_into.is_not(None))
    return len({r[0] for r in conn.execute(query.distinct())})


# --- feedback ------------------------------------------------------------------------------


def upsert_feedback(conn: Connection, rows: list[dict[str, Any]]) -> None:
    """A corrected label replaces the earlier one (last write wins)."""
    t = serving_feedback.c
    for row in rows:
        conn.execute(
            serving_feedback.delete().where(
                t.endpoint == row["endpoint"],
                t.request_id == row["request_id"],
                t.record == row["record"],
            )
        )
    if rows:
        conn.execute(serving_feedback.insert(), rows)


def feedback_for(conn: Connection, endpoint: str, request_ids: list[str]) -> list[Any]:
    t = serving_feedback.c
    found: list[Any] = []
    # Bounded IN lists keep the statement under SQLite's variable limit.
    for i in range(0, len(request_ids), 500):
        part = request_ids[i : i + 500]
        query = select(t.request_id, t.record, t.label).where(
            t.endpoint == endpoint, t.request_id.in_(part)
        )
        found.extend(conn.execute(query))
    return found
