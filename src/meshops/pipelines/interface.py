"""The pipelines API, declared once for both transports (`meshops.kernel.rpc`):
`PipelinesService` implements it in-process, the HTTP client and the routes are derived
from the declarations.

`Pipelines` is what users call (`platform.pipelines`): `run` executes in the caller's
process and records to the platform, `submit` enqueues a pipeline by reference for
`meshops worker`. `run`, `resume` and `reproduce` may execute steps in the caller's
process, so their HTTP client is written by hand (`pipelines.remote`).

`PipelineWorker` is what a process executing a run records through (the engine and
`meshops worker`): starting and finishing runs, leases, the step cache, step runs and
artifacts. It is not part of the SDK; `pipelines.remote.run_host` gives a worker both
Protocols on the platform's transport.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from meshops.kernel import rpc
from meshops.kernel.bounds import Concurrency, JsonObject, LeaseSeconds, Limit, Pending
from meshops.pipelines.artifacts import StoreSpec
from meshops.pipelines.models import (
    DEFAULT_MAX_PENDING,
    CodeVersion,
    DispatchReport,
    PipelineRun,
    ReproduceReport,
    RunDetail,
    RunStatus,
    Schedule,
    StepRun,
    Trigger,
    TriggerEvent,
    TriggerState,
)

BASE = "/v1/pipelines"


class Pipelines(Protocol):
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
        """Run a `@pipeline` (object or `module:function` / `file.py:function` reference)
        here and now, recording it on the platform."""
        ...

    @rpc.post(f"{BASE}/runs", status=201)
    def submit(
        self,
        ref: str,
        params: JsonObject | None = None,
        executor: str = "process",
        origin: JsonObject | None = None,
    ) -> PipelineRun:
        """Queue a pipeline run for a worker."""
        ...

    def resume(
        self, run_id: str, *, local: bool = False, executor: str | None = None
    ) -> PipelineRun:
        """Rerun what failed in `run_id` and what depends on it (a new run reusing the
        rest); queued for a worker, or executed here with `local=True`."""
        ...

    def reproduce(
        self, run_id: str, executor: str = "inline", *, use_current_code: bool = False
    ) -> ReproduceReport:
        """Rerun `run_id` without the cache, with its parameters and its recorded code
        version (a checkout of its git commit, imported in a fresh process), and compare the
        output digests step by step. A run recorded from a dirty tree, or whose commit is
        not available here, is refused unless `use_current_code`."""
        ...

    @rpc.post(f"{BASE}/runs/{{run_id}}/cancel")
    def cancel(self, run_id: str) -> PipelineRun: ...

    # --- reading -----------------------------------------------------------------------
    @rpc.get(f"{BASE}/runs/-/resolve")
    def resolve_run_id(self, id_or_prefix: str) -> str:
        """The whole id of a pipeline run from its id or a unique prefix of it (tables print
        ids short); an ambiguous prefix is an error listing the candidates."""
        ...

    @rpc.get(f"{BASE}/runs/{{run_id}}")
    def get_run(self, run_id: str) -> RunDetail: ...

    @rpc.get(f"{BASE}/runs")
    def list_runs(
        self, pipeline: str | None = None, status: str | None = None, limit: Limit = 50
    ) -> list[PipelineRun]: ...

    @rpc.get(f"{BASE}/runs/{{run_id}}/logs")
    def logs(self, run_id: str, node: str | None = None) -> dict[str, str]: ...

    # --- schedules and triggers ----------------------------------------------------------
    @rpc.post(f"{BASE}/schedules", status=201)
    def create_schedule(
        self,
        name: str,
        cron: str,
        ref: str,
        params: JsonObject | None = None,
        executor: str = "process",
        *,
        replace: bool = False,
    ) -> Schedule:
        """Fire `ref` on `cron`. With `replace`, an existing schedule of that name takes the
        new definition (otherwise it is a conflict)."""
        ...

    @rpc.get(f"{BASE}/schedules")
    def list_schedules(self) -> list[Schedule]: ...

    @rpc.delete(f"{BASE}/schedules/{{name}}", status=204)
    def delete_schedule(self, name: str) -> None: ...

    @rpc.post(f"{BASE}/triggers", status=201)
    def create_trigger(
        self,
        name: str,
        topic: str,
        ref: str,
        params: JsonObject | None = None,
        *,
        match: JsonObject | None = None,
        expression: str | None = None,
        max_concurrent: Concurrency = 1,
        executor: str = "process",
        max_pending: Pending = DEFAULT_MAX_PENDING,
        coalesce_pending: bool = False,
        replace: bool = False,
    ) -> Trigger:
        """Run `ref` when an event of `topic` matches: `match` names fields of the topic's
        payload (dotted keys reach into nested ones), `expression` is CEL over `event`. At
        most `max_concurrent` of its runs are queued or running; further matches wait (up
        to `max_pending`, then they are dropped) and start as runs finish. With
        `coalesce_pending`, a newer event for the same subject supersedes the waiting ones.
        Every outcome is recorded (see `list_trigger_events`). With `replace`, an existing
        trigger of that name takes the new definition and keeps its waiting events
        (otherwise it is a conflict)."""
        ...

    @rpc.get(f"{BASE}/triggers")
    def list_triggers(self) -> list[Trigger]: ...

    @rpc.get(f"{BASE}/trigger-states")
    def trigger_states(self) -> list[TriggerState]: ...

    @rpc.get(f"{BASE}/trigger-events")
    def list_trigger_events(
        self, trigger: str | None = None, status: str | None = None, limit: Limit = 50
    ) -> list[TriggerEvent]: ...

    @rpc.delete(f"{BASE}/triggers/{{name}}", status=204)
    def delete_trigger(self, name: str) -> None: ...


class PipelineWorker(Protocol):
    """What executing a run records through (the engine, `meshops worker`)."""

    def store_spec(self) -> StoreSpec:
        """Where the steps of a run read and write artifacts (picklable, for executors)."""
        ...

    @rpc.post(f"{BASE}/engine/start", status=201)
    def start_run(
        self,
        pipeline: str,
        ref: str,
        params: JsonObject,
        executor: str,
        *,
        resumed_from: str | None = None,
        reproduces: str | None = None,
        code: CodeVersion | None = None,
    ) -> PipelineRun: ...

    @rpc.post(f"{BASE}/runs/{{run_id}}/code", status=204)
    def set_code_version(self, run_id: str, code: CodeVersion) -> None:
        """Record the code version a worker loaded for a queued run."""
        ...

    @rpc.post(f"{BASE}/engine/cache")
    def lookup_cache(self, keys: list[str]) -> dict[str, StepRun]: ...

    @rpc.post(f"{BASE}/runs/{{run_id}}/steps", status=204)
    def record_step_runs(
        self, run_id: str, steps: list[StepRun], owner: str | None = None
    ) -> None: ...

    @rpc.post(f"{BASE}/runs/{{run_id}}/tracking", status=204)
    def set_tracking_run(self, run_id: str, tracking_run_id: str) -> None: ...

    @rpc.post(f"{BASE}/runs/{{run_id}}/finish")
    def finish_run(
        self, run_id: str, status: RunStatus, error: str | None = None, owner: str | None = None
    ) -> PipelineRun: ...

    @rpc.post(f"{BASE}/queue/claim")
    def claim_run(self, owner: str, lease_seconds: LeaseSeconds = 30.0) -> PipelineRun | None: ...

    @rpc.post(f"{BASE}/runs/{{run_id}}/lease")
    def renew_lease(self, run_id: str, owner: str, lease_seconds: LeaseSeconds = 30.0) -> bool: ...

    @rpc.post(f"{BASE}/queue/fire-schedules")
    def fire_schedules(self, now: datetime | None = None) -> list[str]: ...

    @rpc.post(f"{BASE}/queue/dispatch")
    def dispatch_events(self, limit: Limit = 100) -> DispatchReport: ...

    def put_artifact(self, data: bytes) -> str:
        """Store bytes under their sha256 (over HTTP: a raw PUT, not JSON)."""
        ...

    def get_artifact(self, digest: str) -> bytes:
        """An artifact's bytes (over HTTP: a raw GET)."""
        ...


class RunHost(Pipelines, PipelineWorker, Protocol):
    """Both: what a process that executes runs holds (a run reads its earlier runs too)."""
