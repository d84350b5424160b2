"""Tables of the pipelines area and their queries.

`pipeline_runs` is also the durable queue: a queued row is work; a worker claims it by a
conditional UPDATE (status queued, or running with an expired lease) whose row count says
whether it won, so no two workers hold one run; the lease is renewed while it runs.
"""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    and_,
    delete,
    func,
    or_,
    select,
    update,
)

from meshops.kernel.db import (
    JsonColumn,
    UtcDateTime,
    insert_ignoring_conflicts,
    metadata,
    utcnow,
)
from meshops.kernel.errors import Conflict, NotFound
from meshops.pipelines.models import (
    OutputRef,
    PipelineRun,
    RunStatus,
    Schedule,
    StepRun,
    StepStatus,
    Trigger,
    TriggerEvent,
    TriggerEventStatus,
)

pipeline_runs = Table(
    "pipeline_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("pipeline", String(200), nullable=False),
    Column("ref", Text, nullable=False),
    Column("params", JsonColumn, nullable=False),
    Column("status", String(20), nullable=False),
    Column("executor", String(50), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("error", Text, nullable=True),
    Column("resumed_from", String(32), nullable=True),
    Column("reproduces", String(32), nullable=True),
    Column("origin", JsonColumn, nullable=False),
    Column("tracking_run_id", String(64), nullable=True),
    Column("claims", Integer, nullable=False),
    Column("lease_owner", String(200), nullable=True),
    Column("lease_expires_at", UtcDateTime, nullable=True),
    Column("trigger_name", String(200), nullable=True),
    Column("code", JsonColumn, nullable=True),
    Index("ix_pipeline_runs_status", "status", "created_at"),
    Index("ix_pipeline_runs_pipeline", "pipeline", "created_at"),
    Index("ix_pipeline_runs_trigger_name", "trigger_name", "status"),
)

step_runs = Table(
    "step_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("run_id", String(32), nullable=False),
    Column("node", String(200), nullable=False),
    Column("step", String(200), nullable=False),
    Column("status", String(20), nullable=False),
    Column("code_digest", String(64), nullable=False),
    Column("cache_key", String(64), nullable=False),
    Column("params", JsonColumn, nullable=False),
    Column("inputs", JsonColumn, nullable=False),
    Column("outputs", JsonColumn, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("started_at", UtcDateTime, nullable=True),
    Column("finished_at", UtcDateTime, nullable=True),
    Column("error", Text, nullable=True),
    Column("cache_hit_of", String(32), nullable=True),
    Column("logs", Text, nullable=False),
    Column("tracking_run_id", String(64), nullable=True),
    # The principal that recorded the step over HTTP; NULL when recorded in-process (an
    # embedded run or a worker on the home itself). Remote cache lookups trust only their own.
    Column("recorded_by", String(200), nullable=True),
    UniqueConstraint("run_id", "node", name="uq_step_runs_run_node"),
    Index("ix_step_runs_cache_key", "cache_key", "status"),
)

pipeline_schedules = Table(
    "pipeline_schedules",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("cron", String(200), nullable=False),
    Column("ref", Text, nullable=False),
    Column("params", JsonColumn, nullable=False),
    Column("executor", String(50), nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("next_fire_at", UtcDateTime, nullable=False),
    Column("last_fire_at", UtcDateTime, nullable=True),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_pipeline_schedules_next", "enabled", "next_fire_at"),
)

pipeline_triggers = Table(
    "pipeline_triggers",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("topic", String(200), nullable=False),
    Column("ref", Text, nullable=False),
    Column("params", JsonColumn, nullable=False),
    Column("executor", String(50), nullable=False),
    Column("match", JsonColumn, nullable=False),
    Column("expression", Text, nullable=True),
    Column("max_concurrent", Integer, nullable=False),
    Column("max_pending", Integer, nullable=False),
    Column("coalesce_pending", Boolean, nullable=False),
    Column("enabled", Boolean, nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_pipeline_triggers_topic", "topic"),
)

# Every event a trigger matched, kept until it starts a run (or is coalesced or dropped):
# the backlog of a trigger at its concurrency limit, and the record of what was skipped.
pipeline_trigger_events = Table(
    "pipeline_trigger_events",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("trigger_name", String(200), nullable=False),
    Column("event_id", BigInteger, nullable=False),
    Column("topic", String(200), nullable=False),
    Column("subject", Text, nullable=False),
    Column("status", String(20), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("decided_at", UtcDateTime, nullable=True),
    Column("run_id", String(32), nullable=True),
    Column("superseded_by", BigInteger, nullable=True),
    Column("reason", Text, nullable=True),
    UniqueConstraint("trigger_name", "event_id", name="uq_pipeline_trigger_events_event"),
    Index("ix_pipeline_trigger_events_status", "status", "trigger_name", "event_id"),
)

ACTIVE = (RunStatus.QUEUED.value, RunStatus.RUNNING.value)


# --- runs ---------------------------------------------------------------------------------


def insert_run(conn: Connection, run: PipelineRun) -> None:
    row = run.model_dump()
    row["status"] = run.status.value
    row["trigger_name"] = run.origin.get("trigger")
    conn.execute(pipeline_runs.insert().values(**row))


def _run(row: Any) -> PipelineRun:
    data = dict(row)
    data.pop("trigger_name", None)
    return PipelineRun.model_validate(data)


def get_run(conn: Connection, run_id: str) -> PipelineRun:
    row = conn.execute(select(pipeline_runs).where(pipeline_runs.c.id == run_id)).mappings().first()
    if row is None:
        raise NotFound(
            f"pipeline run {run_id} does not exist",
            {"fix": "list runs with `meshops pipelines list`"},
        )
    return _run(row)


def list_runs(
    conn: Connection, pipeline: str | None = None, status: str | None = None, limit: int = 50
) -> list[PipelineRun]:
    query = select(pipeline_runs).order_by(pipeline_runs.c.created_at.desc()).limit(limit)
    if pipeline:
        query = query.where(pipeline_runs.c.pipeline == pipeline)
    if status:
        query = query.where(pipeline_runs.c.status == status)
    return [_run(r) for r in conn.execute(query).mappings()]


def set_run(conn: Connection, run_id: str, **values: Any) -> None:
    if isinstance(values.get("status"), RunStatus):
        values["status"] = values["status"].value
    conn.execute(update(pipeline_runs).where(pipeline_runs.c.id == run_id).values(**values))


def finish_run(
    conn: Connection, run_id: str, status: RunStatus, error: str | None, owner: str | None
) -> bool:
    """Finish a running run; with `owner`, only while that worker still holds the lease
    (a worker that lost its lease must not finish a run another worker now holds)."""
    query = update(pipeline_runs).where(
        pipeline_runs.c.id == run_id, pipeline_runs.c.status == RunStatus.RUNNING.value
    )
    if owner is not None:
        query = query.where(pipeline_runs.c.lease_owner == owner)
    result = conn.execute(
        query.values(
            status=status.value,
            error=error,
            finished_at=utcnow(),
            lease_owner=None,
            lease_expires_at=None,
        )
    )
    return result.rowcount == 1


def claim_next(conn: Connection, owner: str, lease: timedelta) -> PipelineRun | None:
    """Claim the oldest queued run, or a running one whose lease expired."""
    now = utcnow()
    claimable = or_(
        pipeline_runs.c.status == RunStatus.QUEUED.value,
        and_(
            pipeline_runs.c.status == RunStatus.RUNNING.value,
            pipeline_runs.c.lease_expires_at < now,
        ),
    )
    candidates = select(pipeline_runs.c.id).where(claimable).order_by(pipeline_runs.c.created_at)
    if conn.dialect.name == "postgresql":
        candidates = candidates.with_for_update(skip_locked=True)
    for run_id in conn.execute(candidates.limit(5)).scalars():
        result = conn.execute(
            update(pipeline_runs)
            .where(pipeline_runs.c.id == run_id, claimable)
            .values(
                status=RunStatus.RUNNING.value,
                lease_owner=owner,
                lease_expires_at=now + lease,
                started_at=func.coalesce(pipeline_runs.c.started_at, now),
                claims=pipeline_runs.c.claims + 1,
            )
        )
        if result.rowcount == 1:
            return get_run(conn, run_id)
    return None


def renew_lease(conn: Connection, run_id: str, owner: str, lease: timedelta) -> bool:
    result = conn.execute(
        update(pipeline_runs)
        .where(
            pipeline_runs.c.id == run_id,
            pipeline_runs.c.lease_owner == owner,
            pipeline_runs.c.status == RunStatus.RUNNING.value,
        )
        .values(lease_expires_at=utcnow() + lease)
    )
    return result.rowcount == 1


def active_runs_of_trigger(conn: Connection, trigger: str) -> int:
    query = select(func.count()).where(
        pipeline_runs.c.trigger_name == trigger, pipeline_runs.c.status.in_(ACTIVE)
    )
    return int(conn.execute(query).scalar_one())


def active_runs_by_trigger(conn: Connection) -> dict[str, int]:
    query = (
        select(pipeline_runs.c.trigger_name, func.count())
        .where(pipeline_runs.c.trigger_name.is_not(None), pipeline_runs.c.status.in_(ACTIVE))
        .group_by(pipeline_runs.c.trigger_name)
    )
    return {name: int(count) for name, count in conn.execute(query).all()}


# --- step runs ----------------------------------------------------------------------------


# Which artifacts a caller may fetch by digest: those it uploaded (kind "upload", holder =
# actor) and outputs of recorded step runs (kind "output"), which anyone who may read
# pipelines sees. A digest alone (a data product's snapshot, a model file) opens nothing.
artifact_refs = Table(
    "pipeline_artifact_refs",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("kind", String(10), primary_key=True),
    Column("holder", String(200), primary_key=True),
    Column("at", UtcDateTime, nullable=False),
)
UPLOAD = "upload"
OUTPUT = "output"


def add_artifact_refs(conn: Connection, digests: set[str], kind: str, holder: str) -> None:
    now = utcnow()
    rows = [{"digest": d, "kind": kind, "holder": holder, "at": now} for d in sorted(digests)]
    insert_ignoring_conflicts(conn, artifact_refs, rows, ["digest", "kind", "holder"])


def readable_artifacts(conn: Connection, digests: set[str], actor: str) -> set[str]:
    """The digests among `digests` that `actor` uploaded or a step run produced."""
    if not digests:
        return set()
    query = select(artifact_refs.c.digest).where(
        artifact_refs.c.digest.in_(sorted(digests)),
        ((artifact_refs.c.kind == UPLOAD) & (artifact_refs.c.holder == actor))
        | (artifact_refs.c.kind == OUTPUT),
    )
    return set(conn.execute(query).scalars())


def last_claimer(conn: Connection, run_urn: str) -> str | None:
    """The principal whose worker claimed the run last (from the audit log: the claim is
    audited in its transaction, and a worker's self-chosen name proves nothing)."""
    from meshops.kernel.audit import audit_events as events

    query = (
        select(events.c.actor)
        .where(events.c.object == run_urn, events.c.action == "pipelines.claim")
        .order_by(events.c.id.desc())
        .limit(1)
    )
    found = conn.execute(query).scalar()
    return None if found is None else str(found)


def uploaded_by(conn: Connection, digest: str, actor: str) -> bool:
    query = select(artifact_refs.c.digest).where(
        artifact_refs.c.digest == digest,
        artifact_refs.c.kind == UPLOAD,
        artifact_refs.c.holder == actor,
    )
    return conn.execute(query).first() is not None


def _step_row(step: StepRun) -> dict[str, Any]:
    row = step.model_dump()
    row["status"] = step.status.value
    row["outputs"] = [o.model_dump() for o in step.outputs]
    return row


def replace_step_runs(
    conn: Connection, steps: list[StepRun], recorded_by: str | None = None
) -> None:
    """Write step runs in bulk; a node recorded again in the same run (a retry of the run
    after a lost lease) replaces its earlier record."""
    if not steps:
        return
    by_run: dict[str, list[str]] = {}
    for s in steps:
        by_run.setdefault(s.run_id, []).append(s.node)
    for run_id, nodes in by_run.items():
        conn.execute(
            delete(step_runs).where(step_runs.c.run_id == run_id, step_runs.c.node.in_(nodes))
        )
    conn.execute(step_runs.insert(), [{**_step_row(s), "recorded_by": recorded_by} for s in steps])


def _step(row: Any) -> StepRun:
    data = dict(row)
    data["outputs"] = [OutputRef.model_validate(o) for o in data["outputs"]]
    return StepRun.model_validate(data)


def step_runs_of(conn: Connection, run_id: str, with_logs: bool = True) -> list[StepRun]:
    columns = [c for c in step_runs.c if with_logs or c.name != "logs"]
    query = select(*columns).where(step_runs.c.run_id == run_id).order_by(step_runs.c.started_at)
    rows = conn.execute(query).mappings()
    return [_step({"logs": "", **dict(r)}) for r in rows]


def inline_output(conn: Connection, digest: str) -> bytes | None:
    """The bytes of a small output kept inline in a step-run record (see `OutputRef.inline`).

    A rare path (fetching such an artifact by digest alone); it scans the step-run outputs
    for the digest's text, then checks the match exactly."""
    outputs_text = step_runs.c.outputs.cast(Text)
    rows = conn.execute(
        select(step_runs.c.outputs).where(outputs_text.contains(digest)).limit(50)
    ).scalars()
    for stored in rows:
        outputs = json.loads(stored) if isinstance(stored, str) else stored
        for output in outputs or []:
            if output.get("digest") == digest and output.get("inline") is not None:
                return OutputRef.model_validate(output).inline_bytes()
    return None


def cache_lookup(
    conn: Connection, keys: list[str], recorders: set[str] | None = None
) -> dict[str, StepRun]:
    """The earliest successful execution per cache key, in one query; with `recorders`, only
    executions recorded in-process or by one of them (a cache hit's outputs are loaded by
    the caller's materializers, so a stranger's record must not be one)."""
    if not keys:
        return {}
    columns = [c for c in step_runs.c if c.name not in ("logs", "recorded_by")]
    query = (
        select(*columns)
        .where(step_runs.c.cache_key.in_(keys), step_runs.c.status == StepStatus.SUCCEEDED.value)
        .order_by(step_runs.c.finished_at)
    )
    if recorders is not None:
        query = query.where(
            or_(step_runs.c.recorded_by.is_(None), step_runs.c.recorded_by.in_(recorders))
        )
    found: dict[str, StepRun] = {}
    for row in conn.execute(query).mappings():
        found.setdefault(row["cache_key"], _step({"logs": "", **dict(row)}))
    return found


# --- schedules and triggers -----------------------------------------------------------------


def upsert_schedule(conn: Connection, schedule: Schedule) -> None:
    conn.execute(delete(pipeline_schedules).where(pipeline_schedules.c.name == schedule.name))
    conn.execute(pipeline_schedules.insert().values(**schedule.model_dump()))


def list_schedules(conn: Connection) -> list[Schedule]:
    rows = conn.execute(select(pipeline_schedules).order_by(pipeline_schedules.c.name))
    return [Schedule.model_validate(dict(r)) for r in rows.mappings()]


def delete_schedule(conn: Connection, name: str) -> None:
    result = conn.execute(delete(pipeline_schedules).where(pipeline_schedules.c.name == name))
    if result.rowcount == 0:
        raise NotFound(f"schedule {name} does not exist", {"fix": "meshops schedules list"})


def due_schedules(conn: Connection, now: datetime) -> list[Schedule]:
    query = select(pipeline_schedules).where(
        pipeline_schedules.c.enabled.is_(True), pipeline_schedules.c.next_fire_at <= now
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [Schedule.model_validate(dict(r)) for r in conn.execute(query).mappings()]


def advance_schedule(
    conn: Connection, name: str, expected_next: datetime, fired_at: datetime, next_at: datetime
) -> bool:
    """Move a schedule to its next fire time, only if no other worker already did."""
    result = conn.execute(
        update(pipeline_schedules)
        .where(
            pipeline_schedules.c.name == name,
            pipeline_schedules.c.next_fire_at == expected_next,
        )
        .values(last_fire_at=fired_at, next_fire_at=next_at)
    )
    return result.rowcount == 1


def upsert_trigger(conn: Connection, trigger: Trigger) -> None:
    conn.execute(delete(pipeline_triggers).where(pipeline_triggers.c.name == trigger.name))
    conn.execute(pipeline_triggers.insert().values(**trigger.model_dump()))


def list_triggers(conn: Connection, topic: str | None = None) -> list[Trigger]:
    query = select(pipeline_triggers).order_by(pipeline_triggers.c.name)
    if topic:
        query = query.where(pipeline_triggers.c.topic == topic)
    return [Trigger.model_validate(dict(r)) for r in conn.execute(query).mappings()]


def delete_trigger(conn: Connection, name: str) -> None:
    result = conn.execute(delete(pipeline_triggers).where(pipeline_triggers.c.name == name))
    if result.rowcount == 0:
        raise NotFound(f"trigger {name} does not exist", {"fix": "meshops triggers list"})


def ensure_absent(conn: Connection, table: Table, name: str, what: str) -> None:
    if conn.execute(select(table.c.name).where(table.c.name == name)).first() is not None:
        raise Conflict(f"{what} {name} already exists", {"fix": "pick another name"})


# --- trigger events (the backlog behind a trigger's concurrency limit) -----------------------

PENDING = TriggerEventStatus.PENDING.value


def insert_trigger_event(conn: Connection, event: TriggerEvent) -> None:
    row = event.model_dump()
    row["status"] = event.status.value
    conn.execute(pipeline_trigger_events.insert().values(**row))


def supersede_pending(
    conn: Connection, trigger: str, subject: str, newer_event_id: int, now: datetime
) -> int:
    """Mark the events of `trigger` still waiting for `subject` as superseded."""
    result = conn.execute(
        update(pipeline_trigger_events)
        .where(
            pipeline_trigger_events.c.trigger_name == trigger,
            pipeline_trigger_events.c.status == PENDING,
            pipeline_trigger_events.c.subject == subject,
            pipeline_trigger_events.c.event_id < newer_event_id,
        )
        .values(
            status=TriggerEventStatus.COALESCED.value,
            decided_at=now,
            superseded_by=newer_event_id,
            reason=f"superseded by event {newer_event_id} for the same subject",
        )
    )
    return int(result.rowcount)


def count_pending(conn: Connection, trigger: str) -> int:
    query = select(func.count()).where(
        pipeline_trigger_events.c.trigger_name == trigger,
        pipeline_trigger_events.c.status == PENDING,
    )
    return int(conn.execute(query).scalar_one())


def oldest_pending(conn: Connection, trigger: str, limit: int) -> list[TriggerEvent]:
    query = (
        select(pipeline_trigger_events)
        .where(
            pipeline_trigger_events.c.trigger_name == trigger,
            pipeline_trigger_events.c.status == PENDING,
        )
        .order_by(pipeline_trigger_events.c.event_id)
        .limit(limit)
    )
    return [TriggerEvent.model_validate(dict(r)) for r in conn.execute(query).mappings()]


def triggers_with_pending(conn: Connection) -> list[str]:
    query = (
        select(pipeline_trigger_events.c.trigger_name)
        .where(pipeline_trigger_events.c.status == PENDING)
        .distinct()
        .order_by(pipeline_trigger_events.c.trigger_name)
    )
    return list(conn.execute(query).scalars())


def decide_trigger_event(
    conn: Connection, event_row_id: str, status: TriggerEventStatus, **values: Any
) -> None:
    conn.execute(
        update(pipeline_trigger_events)
        .where(pipeline_trigger_events.c.id == event_row_id)
        .values(status=status.value, decided_at=utcnow(), **values)
    )


def drop_pending(conn: Connection, trigger: str, reason: str) -> int:
    result = conn.execute(
        update(pipeline_trigger_events)
        .where(
            pipeline_trigger_events.c.trigger_name == trigger,
            pipeline_trigger_events.c.status == PENDING,
        )
        .values(status=TriggerEventStatus.DROPPED.value, decided_at=utcnow(), reason=reason)
    )
    return int(result.rowcount)


def trigger_event_counts(conn: Connection) -> dict[str, dict[str, int]]:
    query = select(
        pipeline_trigger_events.c.trigger_name, pipeline_trigger_events.c.status, func.count()
    ).group_by(pipeline_trigger_events.c.trigger_name, pipeline_trigger_events.c.status)
    counts: dict[str, dict[str, int]] = {}
    for name, status, count in conn.execute(query).all():
        counts.setdefault(name, {})[status] = int(count)
    return counts


def list_trigger_events(
    conn: Connection, trigger: str | None, status: str | None, limit: int
) -> list[TriggerEvent]:
    query = (
        select(pipeline_trigger_events)
        .order_by(pipeline_trigger_events.c.event_id.desc(), pipeline_trigger_events.c.trigger_name)
        .limit(limit)
    )
    if trigger:
        query = query.where(pipeline_trigger_events.c.trigger_name == trigger)
    if status:
        query = query.where(pipeline_trigger_events.c.status == status)
    return [TriggerEvent.model_validate(dict(r)) for r in conn.execute(query).mappings()]
