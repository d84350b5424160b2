"""The transactional outbox: events written in the same transaction as the change.

A consumer (the worker's trigger dispatcher) reads pending events in order and marks
them dispatched; since the event row commits or rolls back with the change, no event is
lost in a crash and none announces a change that did not happen.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, select, update

from meshops.kernel.db import utcnow
from meshops.kernel.tables import outbox

# Topics other areas react to. Areas add theirs here so the list stays discoverable.
DATAPRODUCT_PUBLISHED = "dataproduct.published"
MODEL_VERSION_REGISTERED = "model.version_registered"
MODEL_ALIAS_MOVED = "model.alias_moved"
ENDPOINT_CHANGED = "serving.endpoint_changed"  # traffic changed or endpoint deleted
RUN_FINISHED = "run.finished"
PIPELINE_RUN_FINISHED = "pipeline.run_finished"
MONITOR_ALERT = "monitor.alert"
WEBHOOK_RECEIVED = "webhook.received"


@dataclass(frozen=True)
class Event:
    id: int
    topic: str
    subject: str
    payload: dict[str, Any]
    actor: str
    created_at: datetime


def emit(conn: Connection, topic: str, subject: str, payload: dict[str, Any], actor: str) -> None:
    """Record an event inside the caller's transaction."""
    conn.execute(
        outbox.insert().values(
            topic=topic, subject=subject, payload=payload, actor=actor, created_at=utcnow()
        )
    )


def pending(conn: Connection, limit: int = 100, after_id: int = 0) -> list[Event]:
    rows = conn.execute(
        select(outbox)
        .where(outbox.c.dispatched_at.is_(None), outbox.c.id > after_id)
        .order_by(outbox.c.id)
        .limit(limit)
    ).mappings()
    return [_event(r) for r in rows]


def recent(conn: Connection, topic: str | None = None, limit: int = 100) -> list[Event]:
    query = select(outbox).order_by(outbox.c.id.desc()).limit(limit)
    if topic:
        query = query.where(outbox.c.topic == topic)
    return [_event(r) for r in conn.execute(query).mappings()]


def mark_dispatched(conn: Connection, event_ids: list[int]) -> None:
    if event_ids:
        conn.execute(
            update(outbox).where(outbox.c.id.in_(event_ids)).values(dispatched_at=utcnow())
        )


def _event(row: Any) -> Event:
    return Event(
        id=row["id"],
        topic=row["topic"],
        subject=row["subject"],
        payload=dict(row["payload"]),
        actor=row["actor"],
        created_at=row["created_at"],
    )
