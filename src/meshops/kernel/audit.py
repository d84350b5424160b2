"""Append-only audit log, chained by hash so that tampering is detectable.

Each event's hash covers its content and the previous event's hash. Writers serialise on
the chain head (one row, locked FOR UPDATE on PostgreSQL; SQLite's write lock already
serialises writers), so the chain stays linear under concurrency.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Index,
    Integer,
    String,
    Table,
    Text,
    select,
    update,
)

from meshops.kernel.db import BigId, JsonColumn, UtcDateTime, metadata, utcnow

GENESIS = "0" * 64

audit_events = Table(
    "audit_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("actor", String(200), nullable=False),
    Column("action", String(200), nullable=False),
    Column("object", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("before_digest", String(64), nullable=True),
    Column("after_digest", String(64), nullable=True),
    Column("detail", JsonColumn, nullable=False),
    Column("prev_hash", String(64), nullable=False),
    Column("hash", String(64), nullable=False),
    Index("ix_audit_object", "object"),
)

audit_head = Table(
    "audit_head",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("hash", String(64), nullable=False),
)


def digest_of(value: Any) -> str | None:
    if value is None:
        return None
    return hashlib.sha256(_canonical(value).encode()).hexdigest()


def _canonical(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def _event_hash(prev: str, fields: dict[str, Any]) -> str:
    return hashlib.sha256((prev + _canonical(fields)).encode()).hexdigest()


@dataclass(frozen=True)
class AuditEvent:
    id: int
    actor: str
    action: str
    object: str
    at: datetime
    before_digest: str | None
    after_digest: str | None
    detail: dict[str, Any]
    hash: str


def record(
    conn: Connection,
    actor: str,
    action: str,
    obj: str,
    *,
    before: Any = None,
    after: Any = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one event inside the caller's transaction."""
    query = select(audit_head.c.hash).where(audit_head.c.id == 1)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    prev = conn.execute(query).scalar()
    if prev is None:
        prev = GENESIS
        conn.execute(audit_head.insert().values(id=1, hash=GENESIS))
    at = utcnow()
    fields = {
        "actor": actor,
        "action": action,
        "object": obj,
        "at": at.isoformat(),
        "before_digest": digest_of(before),
        "after_digest": digest_of(after),
        "detail": detail or {},
    }
    new_hash = _event_hash(prev, fields)
    conn.execute(
        audit_events.insert().values(
            actor=actor,
            action=action,
            object=obj,
            at=at,
            before_digest=fields["before_digest"],
            after_digest=fields["after_digest"],
            detail=fields["detail"],
            prev_hash=prev,
            hash=new_hash,
        )
    )
    conn.execute(update(audit_head).where(audit_head.c.id == 1).values(hash=new_hash))


def verify(conn: Connection) -> tuple[bool, int, int | None]:
    """Walk the chain; returns (intact, events checked, id of the first bad event)."""
    prev = GENESIS
    count = 0
    for row in conn.execute(select(audit_events).order_by(audit_events.c.id)).mappings():
        fields = {
            "actor": row["actor"],
            "action": row["action"],
            "object": row["object"],
            "at": row["at"].isoformat(),
            "before_digest": row["before_digest"],
            "after_digest": row["after_digest"],
            "detail": row["detail"],
        }
        if row["prev_hash"] != prev or _event_hash(prev, fields) != row["hash"]:
            return False, count, int(row["id"])
        prev = row["hash"]
        count += 1
    head = conn.execute(select(audit_head.c.hash).where(audit_head.c.id == 1)).scalar()
    if count and head != prev:
        return False, count, None
    return True, count, None


def events(
    conn: Connection, obj: str | None = None, actor: str | None = None, limit: int = 100
) -> list[AuditEvent]:
    query = select(audit_events).order_by(audit_events.c.id.desc()).limit(limit)
    if obj:
        query = query.where(audit_events.c.object == obj)
    if actor:
        query = query.where(audit_events.c.actor == actor)
    return [
        AuditEvent(
            id=r["id"],
            actor=r["actor"],
            action=r["action"],
            object=r["object"],
            at=r["at"],
            before_digest=r["before_digest"],
            after_digest=r["after_digest"],
            detail=dict(r["detail"]),
            hash=r["hash"],
        )
        for r in conn.execute(query).mappings()
    ]
