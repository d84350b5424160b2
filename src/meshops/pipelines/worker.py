"""`meshops worker`: fires due schedules, dispatches outbox events to triggers, and claims
queued runs from the metadata database, one at a time, holding a renewed lease.

Several workers can share a database: claims are conditional updates (see `store.py`), a
run whose worker died is claimed again once its lease expires, and the new holder resumes
it, reusing the step runs the dead worker already recorded. A worker that loses its lease
stops recording, so a run is never finished twice.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

from meshops.kernel.auth import SYSTEM_ACTOR_NAME
from meshops.kernel.db import utcnow
from meshops.kernel.errors import Conflict
from meshops.pipelines.codeversion import code_version_of
from meshops.pipelines.dsl import Graph, PipelineDefinition, load_pipeline
from meshops.pipelines.engine import LeaseLost, new_id
from meshops.pipelines.interface import Pipelines, PipelineWorker, RunHost
from meshops.pipelines.models import (
    DONE_STEP_STATUSES,
    PipelineRun,
    RunDetail,
    RunStatus,
    StepRun,
    StepStatus,
)
from meshops.pipelines.remote import run_host
from meshops.pipelines.runner import execute

log = logging.getLogger("meshops.worker")


@dataclass
class WorkerOptions:
    lease_seconds: float = 30.0
    poll_seconds: float = 1.0
    schedules: bool = True
    triggers: bool = True
    executor_options: dict[str, Any] = field(default_factory=dict)


class Heartbeat:
    """Renews a run's lease in the background; `alive()` turns False once it is lost."""

    def __init__(self, pipelines: PipelineWorker, run_id: str, owner: str, lease: float) -> None:
        self.pipelines, self.run_id, self.owner, self.lease = pipelines, run_id, owner, lease
        self.lost = threading.Event()
        self.stopped = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True, name="lease-heartbeat")

    def __enter__(self) -> Heartbeat:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stopped.set()
        self.thread.join(timeout=5)

    def alive(self) -> bool:
        return not self.lost.is_set()

    def _loop(self) -> None:
        while not self.stopped.wait(self.lease / 3):
            try:
                if not self.pipelines.renew_lease(self.run_id, self.owner, self.lease):
                    self.lost.set()
                    return
            except Exception:  # a transient database error: try again next beat
                log.exception("lease renewal of run %s failed", self.run_id)


class Worker:
    """Works for the platform of `pipelines` (`platform.pipelines`, or the service): its
    worker operations are obtained on the same transport (`remote.run_host`)."""

    def __init__(
        self,
        pipelines: Pipelines,
        tracking: Any = None,
        options: WorkerOptions | None = None,
        name: str | None = None,
    ) -> None:
        self.pipelines = run_host(pipelines)
        self.tracking = tracking
        self.options = options or WorkerOptions()
        self.name = name or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:6]}"
        self.stopping = threading.Event()

    def install_signal_handlers(self) -> None:
        """SIGTERM/SIGINT: finish the current run, then exit."""

        def stop(_signum: int, _frame: Any) -> None:
            self.stopping.set()

        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    def serve(self, max_runs: int | None = None, idle_exit: bool = False) -> int:
        """Work until stopped (or `max_runs` runs, or the queue is empty with `idle_exit`)."""
        done = 0
        while not self.stopping.is_set():
            self.housekeeping()
            detail = self.work_one()
            if detail is not None:
                done += 1
                if max_runs is not None and done >= max_runs:
                    break
                continue
            if idle_exit:
                break
            self.stopping.wait(self.options.poll_seconds)
        return done

    def housekeeping(self) -> None:
        try:
            if self.options.schedules:
                for run_id in self.pipelines.fire_schedules():
                    log.info("schedule queued run %s", run_id)
            if self.options.triggers:
                report = self.pipelines.dispatch_events()
                for run_id in report.runs:
                    log.info("trigger queued run %s", run_id)
        except Exception:
            log.exception("scheduling/dispatch failed; retrying next poll")

    def work_one(self) -> RunDetail | None:
        run = self.pipelines.claim_run(self.name, self.options.lease_seconds)
        if run is None:
            return None
        log.info("claimed run %s (%s), claim %d", run.id, run.ref, run.claims)
        return self.execute_claimed(run)

    def execute_claimed(self, run: PipelineRun) -> RunDetail | None:
        with Heartbeat(self.pipelines, run.id, self.name, self.options.lease_seconds) as beat:
            if run.created_by == SYSTEM_ACTOR_NAME:
                self._finish(run, RunStatus.FAILED, _NO_SUBMITTER)
                return self.pipelines.get_run(run.id)
            try:
                definition = load_pipeline(run.ref)
                graph = definition.build(run.params)
            except Exception as exc:
                self._finish(run, RunStatus.FAILED, f"cannot load {run.ref}: {exc}")
                return self.pipelines.get_run(run.id)
            self._record_code_version(run, definition)
            prior = self._prior(run)
            try:
                if run.claims > 1:
                    self._mark_interrupted(run, graph, prior)
                return execute(
                    self.pipelines,
                    run,
                    graph,
                    tracking=self.tracking,
                    executor_options=self.options.executor_options,
                    prior=prior,
                    owner=self.name,
                    still_owner=beat.alive,
                    step_env=run_identity(self.pipelines, run),
                )
            except (LeaseLost, Conflict) as exc:
                log.warning("run %s: lease lost, leaving it to its new holder (%s)", run.id, exc)
                return None

    def _record_code_version(self, run: PipelineRun, definition: PipelineDefinition) -> None:
        code = code_version_of(definition)
        if code is None:
            return
        try:
            self.pipelines.set_code_version(run.id, code)
        except Exception:  # the run itself can go on; only `reproduce` needs this record
            log.exception("run %s: recording its code version failed", run.id)

    def _prior(self, run: PipelineRun) -> dict[str, StepRun]:
        prior: dict[str, StepRun] = {}
        if run.resumed_from:
            prior.update({s.node: s for s in self.pipelines.get_run(run.resumed_from).steps})
        if run.claims > 1:  # an earlier holder died: keep what it finished
            prior.update({s.node: s for s in self.pipelines.get_run(run.id).steps})
        return prior

    def _mark_interrupted(self, run: PipelineRun, graph: Graph, prior: dict[str, StepRun]) -> None:
        """A run taken over from a worker that stopped renewing its lease: the steps that
        were due when it stopped (not recorded, their inputs recorded) are marked failed
        with the reason, until they run again here and their new record replaces this one.
        Their outputs were never recorded, so nothing they half-wrote is visible."""
        done = {node for node, s in prior.items() if s.status in DONE_STEP_STATUSES}
        reason = (
            f"interrupted: the worker holding run {run.id} stopped renewing its lease "
            f"(killed or cut off) before this step finished; run again by worker "
            f"{self.name} (claim {run.claims})"
        )
        now = utcnow()
        interrupted = [
            StepRun(
                id=new_id(),
                run_id=run.id,
                node=node.id,
                step=node.step.name,
                status=StepStatus.FAILED,
                code_digest=node.step.code_digest,
                cache_key="",
                params=node.params,
                started_at=now,
                finished_at=now,
                error=reason,
            )
            for node in graph.nodes.values()
            if node.id not in done and all(dep in done for dep in node.deps)
        ]
        log.warning("run %s: %d step(s) %s", run.id, len(interrupted), reason)
        if interrupted:
            self.pipelines.record_step_runs(run.id, interrupted, self.name)

    def _finish(self, run: PipelineRun, status: RunStatus, error: str) -> None:
        try:
            self.pipelines.finish_run(run.id, status, error, self.name)
        except Conflict:
            log.warning("run %s was taken over before it could be marked %s", run.id, status)


_NO_SUBMITTER = (
    "the run was queued by the system, not by a principal: a run acts with its submitter's "
    "authority, and the system's is not lent to pipeline steps"
)


def run_identity(pipelines: RunHost, run: PipelineRun) -> dict[str, str | None]:
    """What the steps of `run` see in their environment, so that their `meshops.connect()`
    acts as the run's submitter (`run.created_by`, which the server took from the caller
    that queued it, or from the creator of the schedule or trigger that did) rather than as
    the worker: a worker on the home's own database (the in-process service) opens the
    steps' platform as that principal (`MESHOPS_RUN_AS`, with its own bindings and grants,
    never the home user's implicit admin role) and does not lend them its token.

    A worker over HTTP still hands its steps its own environment (its token): see
    docs/security.md, "Known gaps"."""
    if getattr(pipelines, "ctx", None) is None:  # over HTTP
        return {}
    return {"MESHOPS_RUN_AS": run.created_by, "MESHOPS_TOKEN": None}


def wait_for(pipelines: Pipelines, run_id: str, timeout: float = 60.0) -> RunDetail:
    """Poll until a run reaches a final status (for scripts and tests)."""
    deadline = time.monotonic() + timeout
    while True:
        detail = pipelines.get_run(run_id)
        if detail.run.status in (RunStatus.SUCCEEDED, RunStatus.FAILED, RunStatus.CANCELLED):
            return detail
        if time.monotonic() > deadline:
            raise TimeoutError(f"run {run_id} is still {detail.run.status} after {timeout}s")
        time.sleep(0.1)
