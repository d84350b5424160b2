"""Pipelines use cases over a home: runs, the queue, schedules, triggers, artifacts."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select

from meshops.kernel import lineage, outbox
from meshops.kernel.db import utcnow
from meshops.kernel.errors import Conflict, InvalidInput, NotFound
from meshops.kernel.home import Context
from meshops.kernel.urn import Urn
from meshops.pipelines import store, triggers
from meshops.pipelines.artifacts import StoreSpec
from meshops.pipelines.engine import new_id
from meshops.pipelines.executors import EXECUTORS
from meshops.pipelines.models import (
    FINAL_RUN_STATUSES,
    DispatchReport,
    PipelineRun,
    ReproduceReport,
    RunDetail,
    RunStatus,
    Schedule,
    StepRun,
    Trigger,
    artifact_urn,
    pipeline_run_urn,
    pipeline_urn,
    step_run_urn,
)


def _check_executor(executor: str) -> str:
    if executor not in EXECUTORS:
        raise InvalidInput(
            f"unknown executor {executor!r}",
            {"field": "executor", "fix": f"use one of {', '.join(EXECUTORS)}"},
        )
    return executor


def _check_ref(ref: str) -> str:
    module, sep, name = ref.rpartition(":")
    if not sep or not module or not name or ref.startswith("local:"):
        raise InvalidInput(
            f"a worker cannot load pipeline {ref!r}",
            {"field": "ref", "fix": "use package.module:function or path/to/file.py:function"},
        )
    return ref


class PipelinesService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _tracking(self) -> Any:
        try:
            from meshops.tracking.service import TrackingService
        except ImportError:  # tracking not installed in this build
            return None
        return TrackingService(self.ctx)

    # --- running -----------------------------------------------------------------------
    def run(
        self,
        pipeline: Any,
        params: dict[str, Any] | None = None,
        executor: str = "inline",
        *,
        ray_address: str | None = None,
        max_workers: int | None = None,
        track: bool = True,
    ) -> RunDetail:
        from meshops.pipelines.runner import run_here

        self.ctx.authorize("pipelines.run")
        options = {"ray_address": ray_address, "max_workers": max_workers}
        tracking = self._tracking() if track else None
        return run_here(
            self,
            pipeline,
            params,
            _check_executor(executor),
            tracking=tracking,
            executor_options=options,
        )

    def submit(
        self,
        ref: str,
        params: dict[str, Any] | None = None,
        executor: str = "process",
        origin: dict[str, Any] | None = None,
    ) -> PipelineRun:
        self.ctx.authorize("pipelines.run")
        with self.ctx.db.begin() as conn:
            return self._enqueue(conn, ref, params or {}, executor, origin or {"kind": "manual"})

    def _enqueue(
        self,
        conn: Any,
        ref: str,
        params: dict[str, Any],
        executor: str,
        origin: dict[str, Any],
        *,
        resumed_from: str | None = None,
    ) -> PipelineRun:
        run = PipelineRun(
            id=new_id(),
            pipeline=_check_ref(ref).rpartition(":")[2],
            ref=ref,
            params=params,
            status=RunStatus.QUEUED,
            executor=_check_executor(executor),
            created_by=self.ctx.actor.name,
            created_at=utcnow(),
            origin=origin,
            resumed_from=resumed_from,
        )
        store.insert_run(conn, run)
        self.ctx.audit(conn, "pipelines.submit", run.urn, after={"ref": ref, "params": params})
        return run

    def resume(
        self, run_id: str, *, local: bool = False, executor: str | None = None
    ) -> PipelineRun:
        self.ctx.authorize("pipelines.run")
        with self.ctx.db.read() as conn:
            old = store.get_run(conn, run_id)
        if old.status != RunStatus.FAILED:
            raise Conflict(
                f"run {run_id} is {old.status.value}; only failed runs can be resumed",
                {"fix": "start a new run with `meshops pipelines run`"},
            )
        if local:
            from meshops.pipelines.runner import run_here

            ref = old.ref
            detail = run_here(
                self,
                ref,
                old.params,
                _check_executor(executor or old.executor),
                tracking=self._tracking(),
                resumed_from=run_id,
            )
            return detail.run
        with self.ctx.db.begin() as conn:
            origin = {"kind": "resume", "run": run_id}
            return self._enqueue(
                conn, old.ref, old.params, executor or old.executor, origin, resumed_from=run_id
            )

    def reproduce(self, run_id: str, executor: str = "inline") -> ReproduceReport:
        from meshops.pipelines.runner import run_here

        self.ctx.authorize("pipelines.run")
        original = self.get_run(run_id)
        rerun = run_here(
            self,
            original.run.ref,
            original.run.params,
            _check_executor(executor),
            reproduces=run_id,
            use_cache=False,
        )
        return compare_runs(original, rerun)

    def cancel(self, run_id: str) -> PipelineRun:
        self.ctx.authorize("pipelines.run")
        with self.ctx.db.begin() as conn:
            run = store.get_run(conn, run_id)
            if run.status != RunStatus.QUEUED:
                raise Conflict(
                    f"run {run_id} is {run.status.value}; only queued runs can be cancelled",
                    {"fix": "stop the worker running it, or wait for it to finish"},
                )
            store.set_run(conn, run_id, status=RunStatus.CANCELLED, finished_at=utcnow())
            self.ctx.audit(conn, "pipelines.cancel", run.urn)
            return store.get_run(conn, run_id)

    # --- reading -----------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunDetail:
        self.ctx.authorize("pipelines.read")
        with self.ctx.db.read() as conn:
            run = store.get_run(conn, run_id)
            return RunDetail(run=run, steps=store.step_runs_of(conn, run_id, with_logs=False))

    def list_runs(
        self, pipeline: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[PipelineRun]:
        self.ctx.authorize("pipelines.read")
        with self.ctx.db.read() as conn:
            return store.list_runs(conn, pipeline, status, limit)

    def logs(self, run_id: str, node: str | None = None) -> dict[str, str]:
        self.ctx.authorize("pipelines.read")
        with self.ctx.db.read() as conn:
            store.get_run(conn, run_id)
            steps = store.step_runs_of(conn, run_id)
        return {s.node: s.logs for s in steps if node is None or s.node == node}

    # --- schedules and triggers ----------------------------------------------------------
    def create_schedule(
        self,
        name: str,
        cron: str,
        ref: str,
        params: dict[str, Any] | None = None,
        executor: str = "process",
    ) -> Schedule:
        self.ctx.authorize("pipelines.write")
        now = utcnow()
        schedule = Schedule(
            name=name,
            cron=cron,
            ref=_check_ref(ref),
            params=params or {},
            executor=_check_executor(executor),
            next_fire_at=triggers.next_fire(cron, now),
            created_by=self.ctx.actor.name,
            created_at=now,
        )
        with self.ctx.db.begin() as conn:
            store.ensure_absent(conn, store.pipeline_schedules, name, "schedule")
            store.upsert_schedule(conn, schedule)
            self.ctx.audit(
                conn,
                "pipelines.create_schedule",
                pipeline_urn(schedule.ref.rpartition(":")[2]),
                after=schedule.model_dump(mode="json"),
            )
        return schedule

    def list_schedules(self) -> list[Schedule]:
        self.ctx.authorize("pipelines.read")
        with self.ctx.db.read() as conn:
            return store.list_schedules(conn)

    def delete_schedule(self, name: str) -> None:
        self.ctx.authorize("pipelines.write")
        with self.ctx.db.begin() as conn:
            store.delete_schedule(conn, name)
            self.ctx.audit(conn, "pipelines.delete_schedule", pipeline_urn(name))

    def create_trigger(
        self,
        name: str,
        topic: str,
        ref: str,
        params: dict[str, Any] | None = None,
        *,
        match: dict[str, Any] | None = None,
        expression: str | None = None,
        max_concurrent: int = 1,
        executor: str = "process",
    ) -> Trigger:
        self.ctx.authorize("pipelines.write")
        if max_concurrent < 1:
            raise InvalidInput(
                "max_concurrent must be at least 1", {"field": "max_concurrent", "fix": "e.g. 1"}
            )
        if expression:
            triggers.compile_expression(expression)
        trigger = Trigger(
            name=name,
            topic=triggers.check_topic(topic),
            ref=_check_ref(ref),
            params=params or {},
            executor=_check_executor(executor),
            match=match or {},
            expression=expression or None,
            max_concurrent=max_concurrent,
            created_by=self.ctx.actor.name,
            created_at=utcnow(),
        )
        with self.ctx.db.begin() as conn:
            store.ensure_absent(conn, store.pipeline_triggers, name, "trigger")
            store.upsert_trigger(conn, trigger)
            self.ctx.audit(
                conn,
                "pipelines.create_trigger",
                pipeline_urn(trigger.ref.rpartition(":")[2]),
                after=trigger.model_dump(mode="json"),
            )
        return trigger

    def list_triggers(self) -> list[Trigger]:
        self.ctx.authorize("pipelines.read")
        with self.ctx.db.read() as conn:
            return store.list_triggers(conn)

    def delete_trigger(self, name: str) -> None:
        self.ctx.authorize("pipelines.write")
        with self.ctx.db.begin() as conn:
            store.delete_trigger(conn, name)
            self.ctx.audit(conn, "pipelines.delete_trigger", pipeline_urn(name))

    # --- engine --------------------------------------------------------------------------
    def store_spec(self) -> StoreSpec:
        settings = self.ctx.home.settings
        return StoreSpec("blobs", settings.blob_url, dict(settings.blob_options))

    def start_run(
        self,
        pipeline: str,
        ref: str,
        params: dict[str, Any],
        executor: str,
        *,
        resumed_from: str | None = None,
        reproduces: str | None = None,
    ) -> PipelineRun:
        self.ctx.authorize("pipelines.run")
        now = utcnow()
        kind = "resume" if resumed_from else "reproduce" if reproduces else "local"
        run = PipelineRun(
            id=new_id(),
            pipeline=pipeline,
            ref=ref,
            params=params,
            status=RunStatus.RUNNING,
            executor=_check_executor(executor),
            created_by=self.ctx.actor.name,
            created_at=now,
            started_at=now,
            resumed_from=resumed_from,
            reproduces=reproduces,
            origin={"kind": kind},
            claims=1,
        )
        with self.ctx.db.begin() as conn:
            store.insert_run(conn, run)
            lineage.add_edge(conn, pipeline_urn(pipeline), run.urn, "ran")
            self.ctx.audit(conn, "pipelines.start_run", run.urn, after={"ref": ref})
        return run

    def lookup_cache(self, keys: list[str]) -> dict[str, StepRun]:
        self.ctx.authorize("pipelines.read")
        with self.ctx.db.read() as conn:
            return store.cache_lookup(conn, keys)

    def record_step_runs(self, run_id: str, steps: list[StepRun], owner: str | None) -> None:
        self.ctx.authorize("pipelines.run")
        if not steps:
            return
        edges: list[tuple[str, str, str]] = []
        run_urn = pipeline_run_urn(run_id)
        for step_run in steps:
            urn = step_run_urn(step_run.id)
            edges.append((run_urn, urn, "contains"))
            edges.extend((artifact_urn(d), urn, "input_to") for d in step_run.inputs.values())
            edges.extend((urn, artifact_urn(o.digest), "produced") for o in step_run.outputs)
        with self.ctx.db.begin() as conn:
            run = store.get_run(conn, run_id)
            if run.status != RunStatus.RUNNING or (owner is not None and run.lease_owner != owner):
                raise Conflict(
                    f"run {run_id} is not running under {owner or 'this caller'} any more",
                    {"status": run.status.value, "lease_owner": run.lease_owner},
                )
            store.replace_step_runs(conn, steps)
            lineage.add_edges(conn, edges)
            self.ctx.audit(conn, "pipelines.record_steps", run_urn, detail={"steps": len(steps)})

    def set_tracking_run(self, run_id: str, tracking_run_id: str) -> None:
        self.ctx.authorize("pipelines.run")
        with self.ctx.db.begin() as conn:
            store.get_run(conn, run_id)
            store.set_run(conn, run_id, tracking_run_id=tracking_run_id)

    def finish_run(
        self, run_id: str, status: RunStatus, error: str | None, owner: str | None
    ) -> PipelineRun:
        self.ctx.authorize("pipelines.run")
        if status not in FINAL_RUN_STATUSES:
            raise InvalidInput(f"{status} is not a final status", {"field": "status"})
        with self.ctx.db.begin() as conn:
            if not store.finish_run(conn, run_id, status, error, owner):
                run = store.get_run(conn, run_id)
                raise Conflict(
                    f"run {run_id} cannot finish: it is {run.status.value}"
                    + (f" and leased by {run.lease_owner}" if run.lease_owner else ""),
                    {"lease_owner": run.lease_owner},
                )
            run = store.get_run(conn, run_id)
            payload = {
                "run_id": run_id,
                "pipeline": run.pipeline,
                "status": run.status.value,
                "origin": run.origin,
            }
            outbox.emit(conn, outbox.PIPELINE_RUN_FINISHED, run.urn, payload, self.ctx.actor.name)
            self.ctx.audit(
                conn,
                "pipelines.finish_run",
                run.urn,
                after={"status": status.value, "error": error},
            )
            return run

    # --- worker --------------------------------------------------------------------------
    def claim_run(self, owner: str, lease_seconds: float) -> PipelineRun | None:
        self.ctx.authorize("pipelines.run")
        with self.ctx.db.begin() as conn:
            run = store.claim_next(conn, owner, timedelta(seconds=lease_seconds))
            if run is not None:
                self.ctx.audit(
                    conn, "pipelines.claim", run.urn, detail={"owner": owner, "claims": run.claims}
                )
            return run

    def renew_lease(self, run_id: str, owner: str, lease_seconds: float) -> bool:
        self.ctx.authorize("pipelines.run")
        with self.ctx.db.begin() as conn:
            return store.renew_lease(conn, run_id, owner, timedelta(seconds=lease_seconds))

    def fire_schedules(self, now: datetime | None = None) -> list[str]:
        """Queue a run for each due schedule (once, however many workers ask)."""
        self.ctx.authorize("pipelines.run")
        now = now or utcnow()
        queued = []
        with self.ctx.db.begin() as conn:
            for schedule in store.due_schedules(conn, now):
                following = triggers.next_fire(schedule.cron, now)
                if not store.advance_schedule(
                    conn, schedule.name, schedule.next_fire_at, now, following
                ):
                    continue
                origin = {
                    "kind": "schedule",
                    "schedule": schedule.name,
                    "scheduled_for": schedule.next_fire_at.isoformat(),
                }
                run = self._enqueue(conn, schedule.ref, schedule.params, schedule.executor, origin)
                queued.append(run.id)
        return queued

    def dispatch_events(self, limit: int = 100) -> DispatchReport:
        """Match pending outbox events against triggers and queue runs, in one transaction
        that also marks the events dispatched (on PostgreSQL, concurrent dispatchers skip
        rows another holds; on SQLite the write lock serialises them)."""
        self.ctx.authorize("pipelines.run")
        report = DispatchReport()
        with self.ctx.db.begin() as conn:
            events = _claim_pending_events(conn, limit)
            if not events:
                return report
            by_topic: dict[str, list[Trigger]] = {}
            for trigger in store.list_triggers(conn):
                by_topic.setdefault(trigger.topic, []).append(trigger)
            for event in events:
                for trigger in by_topic.get(event.topic, []):
                    if not triggers.matches(trigger, event):
                        continue
                    if store.active_runs_of_trigger(conn, trigger.name) >= trigger.max_concurrent:
                        report.skipped += 1  # coalesced: a run for this trigger is pending
                        continue
                    origin = {
                        "kind": "trigger",
                        "trigger": trigger.name,
                        "event_id": event.id,
                        "topic": event.topic,
                        "subject": event.subject,
                    }
                    params = {**trigger.params}
                    run = self._enqueue(conn, trigger.ref, params, trigger.executor, origin)
                    if _is_urn(event.subject):  # e.g. alert -triggered-> retraining run
                        lineage.add_edge(conn, event.subject, run.urn, "triggered")
                    report.runs.append(run.id)
            outbox.mark_dispatched(conn, [e.id for e in events])
            report.events = len(events)
        return report

    # --- artifacts -----------------------------------------------------------------------
    def put_artifact(self, data: bytes) -> str:
        self.ctx.authorize("pipelines.run")
        return self.ctx.blobs.put_bytes(data)

    def get_artifact(self, digest: str) -> bytes:
        self.ctx.authorize("pipelines.read")
        try:
            return self.ctx.blobs.get_bytes(digest)
        except NotFound:
            with self.ctx.db.read() as conn:  # a small output kept in its step-run record
                data = store.inline_output(conn, digest)
            if data is None:
                raise
            return data


def _is_urn(text: str) -> bool:
    try:
        Urn.parse(text)
    except Exception:
        return False
    return True


def _claim_pending_events(conn: Any, limit: int) -> list[outbox.Event]:
    from meshops.kernel.tables import outbox as outbox_table

    query = (
        select(outbox_table)
        .where(outbox_table.c.dispatched_at.is_(None))
        .order_by(outbox_table.c.id)
        .limit(limit)
    )
    if conn.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True)
    return [outbox._event(r) for r in conn.execute(query).mappings()]


def compare_runs(original: RunDetail, rerun: RunDetail) -> ReproduceReport:
    """Per step: did the rerun produce the same output digests from the same code?"""
    before = {s.node: s for s in original.steps}
    rows = []
    for step_run in rerun.steps:
        old = before.get(step_run.node)
        old_digests = [o.digest for o in old.outputs] if old else []
        new_digests = [o.digest for o in step_run.outputs]
        rows.append(
            {
                "node": step_run.node,
                "same_code": old is not None and old.code_digest == step_run.code_digest,
                "same_inputs": old is not None and old.inputs == step_run.inputs,
                "same_outputs": old_digests == new_digests,
                "original_outputs": old_digests,
                "rerun_outputs": new_digests,
            }
        )
    matches = (
        rerun.run.status == RunStatus.SUCCEEDED
        and len(rows) == len(before)
        and all(r["same_outputs"] for r in rows)
    )
    return ReproduceReport(
        original=original.run.id, rerun=rerun.run.id, matches=matches, steps=rows
    )
