"""The pipelines API, identical over both transports (`PipelinesService` in-process and
`RemotePipelines` over HTTP both satisfy this Protocol; mypy checks it in `client.py`).

`run` executes in the caller's process and records to the platform; `submit` enqueues a
pipeline by reference for `meshops worker`. The engine and worker methods (`start_run`,
`lookup_cache`, `record_step_runs`, `finish_run`, `claim_run` ...) are public so a local
run or a worker can record through either transport.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

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

    def submit(
        self,
        ref: str,
        params: dict[str, Any] | None = None,
        executor: str = "process",
        origin: dict[str, Any] | None = None,
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

    def cancel(self, run_id: str) -> PipelineRun: ...

    # --- reading -----------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunDetail: ...

    def list_runs(
        self, pipeline: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[PipelineRun]: ...

    def logs(self, run_id: str, node: str | None = None) -> dict[str, str]: ...

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
        """Fire `ref` on `cron`. With `replace`, an existing schedule of that name takes the
        new definition (otherwise it is a conflict)."""
        ...

    def list_schedules(self) -> list[Schedule]: ...

    def delete_schedule(self, name: str) -> None: ...

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
        """Run `ref` when an event of `topic` matches. At most `max_concurrent` of its runs
        are queued or running; further matches wait (up to `max_pending`, then they are
        dropped) and start as runs finish. With `coalesce_pending`, a newer event for the
        same subject supersedes the waiting ones. Every outcome is recorded (see
        `list_trigger_events`). With `replace`, an existing trigger of that name takes the
        new definition and keeps its waiting events (otherwise it is a conflict)."""
        ...

    def list_triggers(self) -> list[Trigger]: ...

    def trigger_states(self) -> list[TriggerState]: ...

    def list_trigger_events(
        self, trigger: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[TriggerEvent]: ...

    def delete_trigger(self, name: str) -> None: ...

    # --- engine and worker ---------------------------------------------------------------
    def store_spec(self) -> StoreSpec: ...

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
    ) -> PipelineRun: ...

    def set_code_version(self, run_id: str, code: CodeVersion) -> None:
        """Record the code version a worker loaded for a queued run."""
        ...

    def lookup_cache(self, keys: list[str]) -> dict[str, StepRun]: ...

    def record_step_runs(self, run_id: str, steps: list[StepRun], owner: str | None) -> None: ...

    def set_tracking_run(self, run_id: str, tracking_run_id: str) -> None: ...

    def finish_run(
        self, run_id: str, status: RunStatus, error: str | None, owner: str | None
    ) -> PipelineRun: ...

    def claim_run(self, owner: str, lease_seconds: float) -> PipelineRun | None: ...

    def renew_lease(self, run_id: str, owner: str, lease_seconds: float) -> bool: ...

    def fire_schedules(self, now: datetime | None = None) -> list[str]: ...

    def dispatch_events(self, limit: int = 100) -> DispatchReport: ...

    def put_artifact(self, data: bytes) -> str: ...

    def get_artifact(self, digest: str) -> bytes: ...
