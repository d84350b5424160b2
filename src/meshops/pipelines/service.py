"""Pipelines use cases over a home: runs, the queue, schedules, triggers, artifacts."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, text

from meshops.kernel import lineage, openlineage, outbox
from meshops.kernel.db import utcnow
from meshops.kernel.errors import Conflict, Forbidden, InvalidInput, NotFound
from meshops.kernel.home import Context
from meshops.kernel.urn import Urn
from meshops.pipelines import store, triggers
from meshops.pipelines.artifacts import StoreSpec
from meshops.pipelines.engine import new_id
from meshops.pipelines.events import PipelineRunFinished
from meshops.pipelines.executors import EXECUTORS
from meshops.pipelines.interface import PipelineWorker
from meshops.pipelines.models import (
    DEFAULT_MAX_PENDING,
    FINAL_RUN_STATUSES,
    CodeVersion,
    DispatchReport,
    OutputRef,
    PipelineRun,
    ReproduceReport,
    RunDetail,
    RunStatus,
    Schedule,
    StepRun,
    StepStatus,
    Trigger,
    TriggerEvent,
    TriggerEventStatus,
    TriggerState,
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
    """`remote`: the caller is over HTTP (the API server's routes), outside the trust
    boundary of the home: what it records is checked (see `record_step_runs`)."""

    def __init__(self, ctx: Context, *, remote: bool = False) -> None:
        self.ctx = ctx
        self.remote = remote

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
        on_behalf_of: str | None = None,
    ) -> PipelineRun:
        """Queue a run. It acts (see worker.run_identity) as whoever queued it: the caller,
        or for a schedule's or trigger's run (`on_behalf_of`) the principal who created that
        schedule or trigger, never the worker that fires it."""
        run = PipelineRun(
            id=new_id(),
            pipeline=_check_ref(ref).rpartition(":")[2],
            ref=ref,
            params=params,
            status=RunStatus.QUEUED,
            executor=_check_executor(executor),
            created_by=on_behalf_of or self.ctx.actor.name,
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

    def reproduce(
        self, run_id: str, executor: str = "inline", *, use_current_code: bool = False
    ) -> ReproduceReport:
        from meshops.pipelines import reproduction

        self.ctx.authorize("pipelines.run")
        connection = reproduction.home_connection(self.ctx.home.settings, self.ctx.actor)
        return reproduction.reproduce(
            self, connection, run_id, _check_executor(executor), use_current_code
        )

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
    def resolve_run_id(self, id_or_prefix: str) -> str:
        """The whole id of a pipeline run from its id or a unique prefix of it (tables print
        ids short); an ambiguous prefix is an error listing the candidates."""
        from meshops.tracking.service import resolve_id_prefix

        self.ctx.authorize("pipelines.read")
        with self.ctx.db.read() as conn:
            return resolve_id_prefix(
                conn,
                store.pipeline_runs.c.id,
                id_or_prefix,
                "pipeline run",
                "meshops pipelines list",
            )

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
        *,
        replace: bool = False,
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
            if not replace:
                store.ensure_absent(conn, store.pipeline_schedules, name, "schedule")
            store.upsert_schedule(conn, schedule)
            self.ctx.audit(
                conn,
                "pipelines.replace_schedule" if replace else "pipelines.create_schedule",
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
        max_pending: int = DEFAULT_MAX_PENDING,
        coalesce_pending: bool = False,
        replace: bool = False,
    ) -> Trigger:
        self.ctx.authorize("pipelines.write")
        if max_concurrent < 1:
            raise InvalidInput(
                "max_concurrent must be at least 1", {"field": "max_concurrent", "fix": "e.g. 1"}
            )
        if max_pending < 0:
            raise InvalidInput(
                "max_pending must be at least 0", {"field": "max_pending", "fix": "e.g. 100"}
            )
        if expression:
            triggers.compile_expression(expression)
        triggers.check_match(triggers.check_topic(topic), match or {})
        trigger = Trigger(
            name=name,
            topic=topic,
            ref=_check_ref(ref),
            params=params or {},
            executor=_check_executor(executor),
            match=match or {},
            expression=expression or None,
            max_concurrent=max_concurrent,
            max_pending=max_pending,
            coalesce_pending=coalesce_pending,
            created_by=self.ctx.actor.name,
            created_at=utcnow(),
        )
        with self.ctx.db.begin() as conn:
            if not replace:
                store.ensure_absent(conn, store.pipeline_triggers, name, "trigger")
            store.upsert_trigger(conn, trigger)
            self.ctx.audit(
                conn,
                "pipelines.replace_trigger" if replace else "pipelines.create_trigger",
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
            dropped = store.drop_pending(conn, name, "the trigger was deleted")
            self.ctx.audit(
                conn,
                "pipelines.delete_trigger",
                pipeline_urn(name),
                detail={"dropped_pending_events": dropped},
            )

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
        code: CodeVersion | None = None,
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
            code=code,
        )
        with self.ctx.db.begin() as conn:
            store.insert_run(conn, run)
            lineage.add_edge(conn, pipeline_urn(pipeline), run.urn, "ran")
            self.ctx.audit(conn, "pipelines.start_run", run.urn, after={"ref": ref})
        _ol_run(self.ctx, "START", run)
        return run

    def lookup_cache(self, keys: list[str]) -> dict[str, StepRun]:
        """Cache hits for `keys`. A `remote` caller (over HTTP) is offered only executions
        recorded in-process or by itself: anyone with pipelines.run can record a step under
        any key, pointing at an artifact of its choosing."""
        self.ctx.authorize("pipelines.read")
        recorders = {self.ctx.actor.name} if self.remote else None
        with self.ctx.db.read() as conn:
            return store.cache_lookup(conn, keys, recorders)

    def record_step_runs(self, run_id: str, steps: list[StepRun], owner: str | None = None) -> None:
        """Record step runs. Their outputs become fetchable by digest for whoever may read
        pipelines, so a `remote` caller (over HTTP) may only name outputs it uploaded, that
        other step runs produced, or inline ones whose bytes match their digest. In-process
        callers write the home's blob store directly and are inside the trust boundary."""
        self.ctx.authorize("pipelines.run")
        if not steps:
            return
        outputs = {o.digest for step_run in steps for o in step_run.outputs}
        if self.remote:
            self._check_outputs(steps, outputs)
        edges: list[tuple[str, str, str]] = []
        run_urn = pipeline_run_urn(run_id)
        for step_run in steps:
            urn = step_run_urn(step_run.id)
            edges.append((run_urn, urn, "contains"))
            edges.extend((artifact_urn(d), urn, "input_to") for d in step_run.inputs.values())
            edges.extend((urn, artifact_urn(o.digest), "produced") for o in step_run.outputs)
        with self.ctx.db.begin() as conn:
            run = store.get_run(conn, run_id)
            if self.remote:
                self._check_holder(conn, run)
            if run.status != RunStatus.RUNNING or (owner is not None and run.lease_owner != owner):
                raise Conflict(
                    f"run {run_id} is not running under {owner or 'this caller'} any more",
                    {"status": run.status.value, "lease_owner": run.lease_owner},
                )
            store.replace_step_runs(conn, steps, self.ctx.actor.name if self.remote else None)
            store.add_artifact_refs(conn, outputs, store.OUTPUT, "")
            lineage.add_edges(conn, edges)
            self.ctx.audit(conn, "pipelines.record_steps", run_urn, detail={"steps": len(steps)})
        _ol_steps(self.ctx, run, steps)

    def _check_holder(self, conn: Any, run: PipelineRun) -> None:
        """Only who started the run, or whose worker claimed it last, records into it: the
        lease owner's name is the client's choice, the actor is the server's fact."""
        actor = self.ctx.actor
        if actor.kind == "system" or actor.name == run.created_by:
            return
        if store.last_claimer(conn, run.urn) == actor.name:
            return
        raise Forbidden(
            f"run {run.id} was started by {run.created_by} and is not claimed by {actor.name}",
            {"run": run.id, "fix": "record steps and results only for runs you started or claimed"},
        )

    def _check_outputs(self, steps: list[StepRun], outputs: set[str]) -> None:
        verified = {o.digest for step_run in steps for o in step_run.outputs if _inline_ok(o)}
        with self.ctx.db.read() as conn:
            known = store.readable_artifacts(conn, outputs - verified, self.ctx.actor.name)
        unknown = sorted(outputs - verified - known)
        if unknown:
            raise InvalidInput(
                f"step outputs name artifacts this caller did not upload: {unknown[:5]}",
                {
                    "field": "steps.outputs",
                    "digests": unknown[:20],
                    "fix": "PUT the bytes to /v1/pipelines/artifacts/<digest> first",
                },
            )

    def set_code_version(self, run_id: str, code: CodeVersion) -> None:
        self.ctx.authorize("pipelines.run")
        with self.ctx.db.begin() as conn:
            store.get_run(conn, run_id)
            store.set_run(conn, run_id, code=code.model_dump())

    def set_tracking_run(self, run_id: str, tracking_run_id: str) -> None:
        self.ctx.authorize("pipelines.run")
        with self.ctx.db.begin() as conn:
            store.get_run(conn, run_id)
            store.set_run(conn, run_id, tracking_run_id=tracking_run_id)

    def finish_run(
        self, run_id: str, status: RunStatus, error: str | None = None, owner: str | None = None
    ) -> PipelineRun:
        """Mark a run finished; a `remote` caller must have started or claimed it."""
        self.ctx.authorize("pipelines.run")
        if status not in FINAL_RUN_STATUSES:
            raise InvalidInput(f"{status} is not a final status", {"field": "status"})
        with self.ctx.db.begin() as conn:
            if self.remote:
                self._check_holder(conn, store.get_run(conn, run_id))
            if not store.finish_run(conn, run_id, status, error, owner):
                run = store.get_run(conn, run_id)
                raise Conflict(
                    f"run {run_id} cannot finish: it is {run.status.value}"
                    + (f" and leased by {run.lease_owner}" if run.lease_owner else ""),
                    {"lease_owner": run.lease_owner},
                )
            run = store.get_run(conn, run_id)
            event = PipelineRunFinished(
                run_id=run_id, pipeline=run.pipeline, status=run.status.value, origin=run.origin
            )
            outbox.emit(conn, run.urn, event, self.ctx.actor.name)
            self.ctx.audit(
                conn,
                "pipelines.finish_run",
                run.urn,
                after={"status": status.value, "error": error},
            )
        _ol_run(self.ctx, _OL_END[run.status], run, error=error)
        return run

    # --- worker --------------------------------------------------------------------------
    def claim_run(self, owner: str, lease_seconds: float = 30.0) -> PipelineRun | None:
        self.ctx.authorize("pipelines.run")
        with self.ctx.db.begin() as conn:
            run = store.claim_next(conn, owner, timedelta(seconds=lease_seconds))
            if run is not None:
                self.ctx.audit(
                    conn, "pipelines.claim", run.urn, detail={"owner": owner, "claims": run.claims}
                )
        if run is not None and run.claims == 1:  # a queued run starts (not a lease takeover)
            _ol_run(self.ctx, "START", run)
        return run

    def renew_lease(self, run_id: str, owner: str, lease_seconds: float = 30.0) -> bool:
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
                run = self._enqueue(
                    conn,
                    schedule.ref,
                    schedule.params,
                    schedule.executor,
                    origin,
                    on_behalf_of=schedule.created_by,
                )
                queued.append(run.id)
        return queued

    def dispatch_events(self, limit: int = 100) -> DispatchReport:
        """Match pending outbox events against triggers, keep each match in the trigger's
        backlog, and queue runs for as many as each trigger's concurrency limit allows, in one
        transaction that also marks the events dispatched. Matches over the limit wait in the
        backlog (in the metadata DB) and start in a later call, once a run of that trigger
        finished; so each event is consumed exactly once and none is lost. Dispatchers are
        serialised: SQLite's write lock, a transaction-scoped advisory lock on PostgreSQL."""
        self.ctx.authorize("pipelines.run")
        report = DispatchReport()
        with self.ctx.db.begin() as conn:
            _serialise_dispatchers(conn)
            events = _claim_pending_events(conn, limit)
            if events:
                by_topic: dict[str, list[Trigger]] = {}
                for trigger in store.list_triggers(conn):
                    by_topic.setdefault(trigger.topic, []).append(trigger)
                for event in events:
                    for trigger in by_topic.get(event.topic, []):
                        if triggers.matches(trigger, event):
                            self._admit(conn, trigger, event, report)
                            self._start_waiting(conn, trigger, report)
                outbox.mark_dispatched(conn, [e.id for e in events])
                report.events = len(events)
            # Slots freed by runs that finished since the last call.
            waiting = set(store.triggers_with_pending(conn))
            if waiting:
                for trigger in store.list_triggers(conn):
                    if trigger.name in waiting:
                        self._start_waiting(conn, trigger, report)
                report.pending = sum(store.count_pending(conn, name) for name in waiting)
        return report

    def _admit(
        self, conn: Any, trigger: Trigger, event: outbox.Event, report: DispatchReport
    ) -> None:
        """Put a matched event in the trigger's backlog (coalescing or dropping, visibly)."""
        now = utcnow()
        if trigger.coalesce_pending:
            report.coalesced += store.supersede_pending(
                conn, trigger.name, event.subject, event.id, now
            )
        # Waiting after this one: the backlog plus it, less the slots free right now (the
        # oldest waiting events take those first).
        free = trigger.max_concurrent - store.active_runs_of_trigger(conn, trigger.name)
        waiting = store.count_pending(conn, trigger.name) + 1 - max(free, 0)
        full = waiting > trigger.max_pending
        store.insert_trigger_event(
            conn,
            TriggerEvent(
                id=new_id(),
                trigger_name=trigger.name,
                event_id=event.id,
                topic=event.topic,
                subject=event.subject,
                status=TriggerEventStatus.DROPPED if full else TriggerEventStatus.PENDING,
                received_at=now,
                decided_at=now if full else None,
                reason=f"backlog full ({trigger.max_pending} waiting)" if full else None,
            ),
        )
        if full:
            report.dropped += 1

    def _start_waiting(self, conn: Any, trigger: Trigger, report: DispatchReport) -> None:
        """Queue runs for the oldest waiting events, up to the trigger's free slots."""
        if not trigger.enabled:
            return
        free = trigger.max_concurrent - store.active_runs_of_trigger(conn, trigger.name)
        if free <= 0:
            return
        for waiting in store.oldest_pending(conn, trigger.name, free):
            origin = {
                "kind": "trigger",
                "trigger": trigger.name,
                "event_id": waiting.event_id,
                "topic": waiting.topic,
                "subject": waiting.subject,
            }
            run = self._enqueue(
                conn,
                trigger.ref,
                {**trigger.params},
                trigger.executor,
                origin,
                on_behalf_of=trigger.created_by,
            )
            store.decide_trigger_event(conn, waiting.id, TriggerEventStatus.STARTED, run_id=run.id)
            if _is_urn(waiting.subject):  # e.g. alert -triggered-> retraining run
                lineage.add_edge(conn, waiting.subject, run.urn, "triggered")
            report.runs.append(run.id)

    def list_trigger_events(
        self, trigger: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[TriggerEvent]:
        """The events triggers matched, newest first: waiting, started, coalesced, dropped."""
        self.ctx.authorize("pipelines.read")
        if status is not None and status not in set(TriggerEventStatus):
            raise InvalidInput(
                f"unknown trigger event status {status!r}",
                {"field": "status", "fix": f"use one of {', '.join(TriggerEventStatus)}"},
            )
        with self.ctx.db.read() as conn:
            return store.list_trigger_events(conn, trigger, status, limit)

    def trigger_states(self) -> list[TriggerState]:
        """Each trigger with its active runs and the counts of its events by status."""
        self.ctx.authorize("pipelines.read")
        with self.ctx.db.read() as conn:
            active = store.active_runs_by_trigger(conn)
            counts = store.trigger_event_counts(conn)
            return [
                TriggerState(
                    trigger=t, active_runs=active.get(t.name, 0), events=counts.get(t.name, {})
                )
                for t in store.list_triggers(conn)
            ]

    # --- artifacts -----------------------------------------------------------------------
    def put_artifact(self, data: bytes) -> str:
        """Store an artifact's bytes; its uploader may fetch it back (before any step run
        that produced it is recorded) and name it as a step output."""
        self.ctx.authorize("pipelines.run")
        digest = self.ctx.blobs.put_bytes(data)
        with self.ctx.db.begin() as conn:
            store.add_artifact_refs(conn, {digest}, store.UPLOAD, self.ctx.actor.name)
        return digest

    def get_artifact(self, digest: str) -> bytes:
        """An artifact by digest, if the caller uploaded it or a recorded step run produced
        it. Any other blob (a data product snapshot, a model file) is a 404 here: those are
        read through their own governed routes."""
        self.ctx.authorize("pipelines.read")
        with self.ctx.db.read() as conn:
            own = store.uploaded_by(conn, digest, self.ctx.actor.name)
            readable = own or bool(store.readable_artifacts(conn, {digest}, self.ctx.actor.name))
        if not readable:
            raise NotFound(
                f"no pipeline artifact {digest}",
                {
                    "field": "digest",
                    "fix": "fetch artifacts of pipeline runs you may read; data products "
                    "are read with `meshops product read` (GET /v1/mesh/products/...)",
                },
            )
        if not own:  # someone else's output: the read is recorded (a run's own reads are not)
            with self.ctx.db.begin() as conn:
                self.ctx.audit(conn, "pipelines.read_artifact", artifact_urn(digest))
        try:
            return self.ctx.blobs.get_bytes(digest)
        except NotFound:
            with self.ctx.db.read() as conn:  # a small output kept in its step-run record
                data = store.inline_output(conn, digest)
            if data is None:
                raise
            return data


def _inline_ok(output: OutputRef) -> bool:
    """An inline output whose bytes hash to its digest (then it reveals nothing new)."""
    try:
        data = output.inline_bytes()
    except ValueError:  # not base64
        return False
    return data is not None and hashlib.sha256(data).hexdigest() == output.digest


def _is_urn(text: str) -> bool:
    try:
        Urn.parse(text)
    except Exception:
        return False
    return True


# Any constant both dispatchers agree on: the key of PostgreSQL's advisory lock.
_DISPATCH_LOCK_KEY = 0x6D6573686F707301


def _serialise_dispatchers(conn: Any) -> None:
    """One dispatcher at a time, so two cannot both see a free slot of one trigger (SQLite's
    `BEGIN IMMEDIATE` already serialises writers)."""
    if conn.dialect.name == "postgresql":
        conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _DISPATCH_LOCK_KEY})


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


def served_over_http(ctx: Context) -> PipelineWorker:
    """The worker operations as the API server serves them: to a caller outside the home's
    trust boundary, whose step runs, outputs and cache hits are checked."""
    return PipelinesService(ctx, remote=True)


# --- OpenLineage (kernel.openlineage): the run is the job `<pipeline>`, each step the job
# `<pipeline>.<node>` whose parent is the run. Steps are reported when the engine records
# them (START at the step's start time, then its end), on the server for every executor.
_OL_END: dict[RunStatus, openlineage.State] = {
    RunStatus.SUCCEEDED: "COMPLETE",
    RunStatus.FAILED: "FAIL",
    RunStatus.CANCELLED: "ABORT",
}
_OL_STEP_END: dict[StepStatus, openlineage.State] = {
    StepStatus.SUCCEEDED: "COMPLETE",
    StepStatus.CACHED: "COMPLETE",
    StepStatus.REUSED: "COMPLETE",
    StepStatus.FAILED: "FAIL",
    StepStatus.SKIPPED: "ABORT",
}


def _ol_run(
    ctx: Context, state: openlineage.State, run: PipelineRun, error: str | None = None
) -> None:
    reporter = openlineage.Reporter(ctx)
    if not reporter.enabled:
        return
    reporter.emit(
        state,
        run.pipeline,
        openlineage.run_id_of(run.id),
        job_type="PIPELINE",
        parent=reporter.parent(),
        error=error,
        event_time=run.started_at if state == "START" else run.finished_at,
        after_commit=True,
    )


def _ol_steps(ctx: Context, run: PipelineRun, steps: list[StepRun]) -> None:
    reporter = openlineage.Reporter(ctx)
    if not reporter.enabled:
        return
    parent = openlineage.RunRef(reporter.namespace, run.pipeline, openlineage.run_id_of(run.id))
    for step_run in steps:
        if step_run.status not in _OL_STEP_END:
            continue
        job = openlineage.step_job_name(run.pipeline, step_run.node)
        run_id = openlineage.run_id_of(step_run.id)
        states: list[tuple[openlineage.State, datetime | None]] = [
            ("START", step_run.started_at),
            (_OL_STEP_END[step_run.status], step_run.finished_at),
        ]
        for state, when in states:
            reporter.emit(
                state,
                job,
                run_id,
                job_type="STEP",
                parent=parent,
                error=step_run.error if state == "FAIL" else None,
                event_time=when,
                after_commit=True,
            )
