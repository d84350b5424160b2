"""The pipelines API over HTTP. `run` still executes in this process (steps are local
code); it records through the server, and artifacts go through the server's blob endpoints."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from meshops.kernel.http import HttpTransport
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


class RemotePipelines:
    def __init__(self, http: HttpTransport, token: str | None = None) -> None:
        self.http = http
        self.token = token

    def _tracking(self) -> Any:
        try:
            from meshops.tracking.remote import RemoteTracking
        except ImportError:
            return None
        return RemoteTracking(self.http)

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

        options = {"ray_address": ray_address, "max_workers": max_workers}
        tracking = self._tracking() if track else None
        return run_here(
            self, pipeline, params, executor, tracking=tracking, executor_options=options
        )

    def submit(
        self,
        ref: str,
        params: dict[str, Any] | None = None,
        executor: str = "process",
        origin: dict[str, Any] | None = None,
    ) -> PipelineRun:
        body = {"ref": ref, "params": params or {}, "executor": executor, "origin": origin}
        return PipelineRun.model_validate(self.http.post(f"{BASE}/runs", body))

    def resume(
        self, run_id: str, *, local: bool = False, executor: str | None = None
    ) -> PipelineRun:
        if local:
            from meshops.pipelines.runner import run_here

            old = self.get_run(run_id).run
            return run_here(
                self,
                old.ref,
                old.params,
                executor or old.executor,
                tracking=self._tracking(),
                resumed_from=run_id,
            ).run
        body = {"executor": executor}
        return PipelineRun.model_validate(self.http.post(f"{BASE}/runs/{run_id}/resume", body))

    def reproduce(
        self, run_id: str, executor: str = "inline", *, use_current_code: bool = False
    ) -> ReproduceReport:
        from meshops.pipelines import reproduction

        connection = reproduction.http_connection(self.http.base_url, self.token)
        return reproduction.reproduce(self, connection, run_id, executor, use_current_code)

    def cancel(self, run_id: str) -> PipelineRun:
        return PipelineRun.model_validate(self.http.post(f"{BASE}/runs/{run_id}/cancel"))

    # --- reading -----------------------------------------------------------------------
    def get_run(self, run_id: str) -> RunDetail:
        return RunDetail.model_validate(self.http.get(f"{BASE}/runs/{run_id}"))

    def list_runs(
        self, pipeline: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[PipelineRun]:
        body = self.http.get(f"{BASE}/runs", pipeline=pipeline, status=status, limit=limit)
        return [PipelineRun.model_validate(r) for r in body]

    def logs(self, run_id: str, node: str | None = None) -> dict[str, str]:
        body: dict[str, str] = self.http.get(f"{BASE}/runs/{run_id}/logs", node=node)
        return body

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
        body = {
            "name": name,
            "cron": cron,
            "ref": ref,
            "params": params or {},
            "executor": executor,
            "replace": replace,
        }
        return Schedule.model_validate(self.http.post(f"{BASE}/schedules", body))

    def list_schedules(self) -> list[Schedule]:
        return [Schedule.model_validate(s) for s in self.http.get(f"{BASE}/schedules")]

    def delete_schedule(self, name: str) -> None:
        self.http.delete(f"{BASE}/schedules/{name}")

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
        body = {
            "name": name,
            "topic": topic,
            "ref": ref,
            "params": params or {},
            "match": match or {},
            "expression": expression,
            "max_concurrent": max_concurrent,
            "executor": executor,
            "max_pending": max_pending,
            "coalesce_pending": coalesce_pending,
            "replace": replace,
        }
        return Trigger.model_validate(self.http.post(f"{BASE}/triggers", body))

    def list_triggers(self) -> list[Trigger]:
        return [Trigger.model_validate(t) for t in self.http.get(f"{BASE}/triggers")]

    def trigger_states(self) -> list[TriggerState]:
        return [TriggerState.model_validate(t) for t in self.http.get(f"{BASE}/trigger-states")]

    def list_trigger_events(
        self, trigger: str | None = None, status: str | None = None, limit: int = 50
    ) -> list[TriggerEvent]:
        body = self.http.get(f"{BASE}/trigger-events", trigger=trigger, status=status, limit=limit)
        return [TriggerEvent.model_validate(e) for e in body]

    def delete_trigger(self, name: str) -> None:
        self.http.delete(f"{BASE}/triggers/{name}")

    # --- engine and worker ---------------------------------------------------------------
    def store_spec(self) -> StoreSpec:
        return StoreSpec("http", self.http.base_url, token=self.token)

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
        body = {
            "pipeline": pipeline,
            "ref": ref,
            "params": params,
            "executor": executor,
            "resumed_from": resumed_from,
            "reproduces": reproduces,
            "code": code.model_dump() if code else None,
        }
        return PipelineRun.model_validate(self.http.post(f"{BASE}/engine/start", body))

    def set_code_version(self, run_id: str, code: CodeVersion) -> None:
        self.http.post(f"{BASE}/runs/{run_id}/code", code.model_dump())

    def lookup_cache(self, keys: list[str]) -> dict[str, StepRun]:
        body = self.http.post(f"{BASE}/engine/cache", {"keys": keys})
        return {k: StepRun.model_validate(v) for k, v in body.items()}

    def record_step_runs(self, run_id: str, steps: list[StepRun], owner: str | None) -> None:
        body = {"owner": owner, "steps": [s.model_dump(mode="json") for s in steps]}
        self.http.post(f"{BASE}/runs/{run_id}/steps", body)

    def set_tracking_run(self, run_id: str, tracking_run_id: str) -> None:
        self.http.post(f"{BASE}/runs/{run_id}/tracking", {"tracking_run_id": tracking_run_id})

    def finish_run(
        self, run_id: str, status: RunStatus, error: str | None, owner: str | None
    ) -> PipelineRun:
        body = {"status": status.value, "error": error, "owner": owner}
        return PipelineRun.model_validate(self.http.post(f"{BASE}/runs/{run_id}/finish", body))

    def claim_run(self, owner: str, lease_seconds: float) -> PipelineRun | None:
        body = self.http.post(
            f"{BASE}/queue/claim", {"owner": owner, "lease_seconds": lease_seconds}
        )
        return None if body is None else PipelineRun.model_validate(body)

    def renew_lease(self, run_id: str, owner: str, lease_seconds: float) -> bool:
        body = self.http.post(
            f"{BASE}/runs/{run_id}/lease", {"owner": owner, "lease_seconds": lease_seconds}
        )
        return bool(body["renewed"])

    def fire_schedules(self, now: datetime | None = None) -> list[str]:
        body = self.http.post(
            f"{BASE}/queue/fire-schedules", {"now": now.isoformat() if now else None}
        )
        return list(body)

    def dispatch_events(self, limit: int = 100) -> DispatchReport:
        return DispatchReport.model_validate(
            self.http.post(f"{BASE}/queue/dispatch", {"limit": limit})
        )

    def put_artifact(self, data: bytes) -> str:
        from meshops.pipelines.artifacts import HttpArtifactStore

        return HttpArtifactStore(self.http.base_url, self.token).put_bytes(data)

    def get_artifact(self, digest: str) -> bytes:
        return bytes(self.http.request("GET", f"{BASE}/artifacts/{digest}"))
