"""The transactional outbox: events written in the same transaction as the change.

A consumer (the worker's trigger dispatcher) reads pending events in order and marks
them dispatched; since the event row commits or rolls back with the change, no event is
lost in a crash and none announces a change that did not happen.

Each topic's payload is a pydantic model (`EventPayload`) declared by the area that emits
it, in that area's `events` module; declaring it registers it here under its topic, so a
consumer can check what it expects of an event (pipeline triggers check their `match`
keys) without the kernel importing any area. The stored payload is the model's JSON.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any, ClassVar

from pydantic import BaseModel, ConfigDict
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

_MODELS: dict[str, type[EventPayload]] = {}


class EventPayload(BaseModel):
    """The payload of the events of one `topic`: subclass it, set `topic`, emit instances.
    Fields a producer leaves unset are left out of the stored payload, as before types."""

    model_config = ConfigDict(extra="forbid")
    topic: ClassVar[str]

    @classmethod
    def __pydantic_init_subclass__(cls, **kwargs: Any) -> None:
        super().__pydantic_init_subclass__(**kwargs)
        topic = cls.__dict__.get("topic")
        if topic is None:  # an intermediate base, not a topic's payload
            return
        known = _MODELS.get(topic)
        if known is not None and _name(known) != _name(cls):
            raise TypeError(f"topic {topic!r} already has a payload model: {_name(known)}")
        _MODELS[topic] = cls


def _name(model: type) -> str:
    return f"{model.__module__}.{model.__qualname__}"


def payload_model(topic: str) -> type[EventPayload] | None:
    """The payload model registered for `topic` (by the import of its area's events)."""
    return _MODELS.get(topic)


@dataclass(frozen=True)
class Event:
    id: int
    topic: str
    subject: str
    payload: dict[str, Any]
    actor: str
    created_at: datetime

    def typed(self) -> EventPayload:
        """The payload as its topic's model (LookupError when none is registered)."""
        model = payload_model(self.topic)
        if model is None:
            raise LookupError(f"no payload model is registered for topic {self.topic!r}")
        return model.model_validate(self.payload)


def emit(conn: Connection, subject: str, event: EventPayload, actor: str) -> None:
    """Record `event` about `subject` inside the caller's transaction."""
    conn.execute(
        outbox.insert().values(
            topic=event.topic,
            subject=subject,
            payload=event.model_dump(mode="json", exclude_unset=True),
            actor=actor,
            created_at=utcnow(),
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
