"""Append-only audit log, chained by a keyed hash so that tampering is detectable.

Each event's hash is HMAC-SHA256 over the previous event's hash and its content, keyed with
`kernel.secrets.derived_key(settings, "audit")`, a key kept outside the metadata database:
whoever can write the database cannot recompute the chain after an edit. The head table
holds two rows: the chain's tip (id 1, the last event's hash) and its seal (id 2, an HMAC
of the tip), so that the tip cannot be rolled back to an older event's hash, nor to the
genesis value after the log was emptied (the genesis is never sealed: the head is written
with the first event). An empty log with no head is a home that never audited anything
(`GovernanceService.verify_audit` also checks that the home's state agrees).

Homes that audited before the chain was keyed: their events carry the unkeyed SHA-256
chain. The first keyed event continues it from its tip (its HMAC covers that tip, so the
legacy events can no longer change unseen); `verify` accepts an unkeyed prefix before the
first keyed event and reports it as `legacy`. Until that first keyed event the chain is
unsealed and `verify` says so (not intact): an unsealed chain cannot be told apart from
one whose seal was removed.

Writers serialise on the chain head (one row, locked FOR UPDATE on PostgreSQL; SQLite's
write lock already serialises writers), so the chain stays linear under concurrency.
"""

from __future__ import annotations

import hashlib
import hmac
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


TIP_ROW, SEAL_ROW = 1, 2


def _event_hash(key: bytes, prev: str, fields: dict[str, Any]) -> str:
    return hmac.new(key, (prev + _canonical(fields)).encode(), hashlib.sha256).hexdigest()


def _legacy_hash(prev: str, fields: dict[str, Any]) -> str:
    """The unkeyed chain of events written before the chain was keyed."""
    return hashlib.sha256((prev + _canonical(fields)).encode()).hexdigest()


def _seal(key: bytes, tip: str) -> str:
    return hmac.new(key, f"meshops-audit-head:{tip}".encode(), hashlib.sha256).hexdigest()


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
    key: bytes,
    before: Any = None,
    after: Any = None,
    detail: dict[str, Any] | None = None,
) -> None:
    """Append one event inside the caller's transaction; `key` is the home's audit key."""
    query = select(audit_head.c.hash).where(audit_head.c.id == TIP_ROW)
    if conn.dialect.name == "postgresql":
        query = query.with_for_update()
    prev = conn.execute(query).scalar()
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
    new_hash = _event_hash(key, prev or GENESIS, fields)
    conn.execute(
        audit_events.insert().values(
            actor=actor,
            action=action,
            object=obj,
            at=at,
            before_digest=fields["before_digest"],
            after_digest=fields["after_digest"],
            detail=fields["detail"],
            prev_hash=prev or GENESIS,
            hash=new_hash,
        )
    )
    _set_head(conn, TIP_ROW, new_hash, exists=prev is not None)
    sealed = conn.execute(select(audit_head.c.id).where(audit_head.c.id == SEAL_ROW)).scalar()
    _set_head(conn, SEAL_ROW, _seal(key, new_hash), exists=sealed is not None)


def _set_head(conn: Connection, row: int, value: str, *, exists: bool) -> None:
    if exists:
        conn.execute(update(audit_head).where(audit_head.c.id == row).values(hash=value))
    else:
        conn.execute(audit_head.insert().values(id=row, hash=value))


@dataclass(frozen=True)
class Verification:
    intact: bool
    checked: int  # events whose hash verified
    first_bad_id: int | None = None
    legacy: int = 0  # of them, events of the unkeyed chain (written before it was keyed)
    legacy_upto: int | None = None  # id of the last legacy event
    reason: str = ""


def verify(conn: Connection, key: bytes) -> Verification:
    """Walk the chain and check its sealed head, even when the log is empty."""
    prev, count, legacy, legacy_upto = GENESIS, 0, 0, None
    keyed_seen = False
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
        ok = row["prev_hash"] == prev
        if ok and hmac.compare_digest(_event_hash(key, prev, fields), row["hash"]):
            keyed_seen = True
        elif ok and not keyed_seen and _legacy_hash(prev, fields) == row["hash"]:
            legacy, legacy_upto = legacy + 1, int(row["id"])
        else:
            return Verification(
                False, count, int(row["id"]), legacy, legacy_upto, "event hash or link broken"
            )
        prev = row["hash"]
        count += 1
    head = {int(i): str(h) for i, h in conn.execute(select(audit_head.c.id, audit_head.c.hash))}
    reason = _head_problem(key, head, prev, count, keyed_seen)
    return Verification(not reason, count, None, legacy, legacy_upto, reason)


def _head_problem(key: bytes, head: dict[int, str], tip: str, count: int, keyed: bool) -> str:
    """Why the head does not match the walked chain ('' when it does)."""
    if not head:
        return "" if count == 0 else "the chain head is missing"
    if head.get(TIP_ROW) != tip:
        if count == 0:
            return "the log is empty but its head says events were written"
        return "the chain head is not the last event (events were removed)"
    seal = head.get(SEAL_ROW)
    if seal is None:
        if keyed:
            return "the chain head's seal is missing"
        return (
            "the chain is not sealed yet (written before it was keyed); "
            "the next audited action seals it"
        )
    if not hmac.compare_digest(seal, _seal(key, tip)):
        return "the chain head's seal does not match (the chain was recomputed or rolled back)"
    return ""


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
