"""Pipelines: runs, the queue the workers claim from, schedules, triggers, artifacts."""

from __future__ import annotations

import hashlib
from datetime import datetime
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field

from meshops.api.deps import get_context
from meshops.kernel.bounds import MAX_PENDING, Concurrency, JsonObject, LeaseSeconds, Limit
from meshops.kernel.errors import InvalidInput
from meshops.kernel.home import Context
from meshops.pipelines.models import (
    DEFAULT_MAX_PENDING,
    CodeVersion,
    DispatchReport,
    PipelineRun,
    RunDetail,
    RunStatus,
    Schedule,
    StepRun,
    Trigger,
    TriggerEvent,
    TriggerState,
)
from meshops.pipelines.service import PipelinesService

router = APIRouter(prefix="/v1/pipelines", tags=["pipelines"])


def service(ctx: Context = Depends(get_context)) -> PipelinesService:
    return PipelinesService(ctx)


class SubmitIn(BaseModel):
    ref: str
    params: JsonObject = Field(default_factory=dict)
    executor: str = "process"
    origin: JsonObject | None = None


class ResumeIn(BaseModel):
    executor: str | None = None


class StartIn(BaseModel):
    pipeline: str
    ref: str
    params: JsonObject = Field(default_factory=dict)
    executor: str
    resumed_from: str | None = None
    reproduces: str | None = None
    code: CodeVersion | None = None


class KeysIn(BaseModel):
    keys: list[str]


class StepsIn(BaseModel):
    owner: str | None = None
    steps: list[StepRun]


class TrackingIn(BaseModel):
    tracking_run_id: str


class FinishIn(BaseModel):
    status: RunStatus
    error: str | None = None
    owner: str | None = None


class ClaimIn(BaseModel):
    owner: str
    lease_seconds: LeaseSeconds = 30.0


class FireIn(BaseModel):
    now: datetime | None = None


class DispatchIn(BaseModel):
    limit: Limit = 100


class ScheduleIn(BaseModel):
    name: str
    cron: str
    ref: str
    params: JsonObject = Field(default_factory=dict)
    executor: str = "process"
    replace: bool = False


class TriggerIn(BaseModel):
    name: str
    topic: str
    ref: str
    params: JsonObject = Field(default_factory=dict)
    match: JsonObject = Field(default_factory=dict)
    expression: str | None = None
    max_concurrent: Concurrency = 1
    executor: str = "process"
    max_pending: Annotated[int, Field(ge=0, le=MAX_PENDING)] = DEFAULT_MAX_PENDING
    coalesce_pending: bool = False
    replace: bool = False


@router.post("/runs", status_code=201)
def submit(body: SubmitIn, svc: PipelinesService = Depends(service)) -> PipelineRun:
    return svc.submit(body.ref, body.params, body.executor, body.origin)


@router.get("/runs")
def list_runs(
    pipeline: str | None = None,
    status: str | None = None,
    limit: Limit = 50,
    svc: PipelinesService = Depends(service),
) -> list[PipelineRun]:
    return svc.list_runs(pipeline, status, limit)


@router.get("/runs/{run_id}")
def get_run(run_id: str, svc: PipelinesService = Depends(service)) -> RunDetail:
    return svc.get_run(run_id)


@router.get("/runs/{run_id}/logs")
def logs(
    run_id: str, node: str | None = None, svc: PipelinesService = Depends(service)
) -> dict[str, str]:
    return svc.logs(run_id, node)


@router.post("/runs/{run_id}/resume", status_code=201)
def resume(run_id: str, body: ResumeIn, svc: PipelinesService = Depends(service)) -> PipelineRun:
    return svc.resume(run_id, executor=body.executor)


@router.post("/runs/{run_id}/cancel")
def cancel(run_id: str, svc: PipelinesService = Depends(service)) -> PipelineRun:
    return svc.cancel(run_id)


@router.post("/engine/start", status_code=201)
def start_run(body: StartIn, svc: PipelinesService = Depends(service)) -> PipelineRun:
    return svc.start_run(
        body.pipeline,
        body.ref,
        body.params,
        body.executor,
        resumed_from=body.resumed_from,
        reproduces=body.reproduces,
        code=body.code,
    )


@router.post("/engine/cache")
def lookup_cache(body: KeysIn, svc: PipelinesService = Depends(service)) -> dict[str, StepRun]:
    return svc.lookup_cache(body.keys, remote=True)


@router.post("/runs/{run_id}/steps", status_code=204)
def record_steps(run_id: str, body: StepsIn, svc: PipelinesService = Depends(service)) -> None:
    svc.record_step_runs(run_id, body.steps, body.owner, remote=True)


@router.post("/runs/{run_id}/tracking", status_code=204)
def set_tracking(run_id: str, body: TrackingIn, svc: PipelinesService = Depends(service)) -> None:
    svc.set_tracking_run(run_id, body.tracking_run_id)


@router.post("/runs/{run_id}/code", status_code=204)
def set_code(run_id: str, body: CodeVersion, svc: PipelinesService = Depends(service)) -> None:
    svc.set_code_version(run_id, body)


@router.post("/runs/{run_id}/finish")
def finish(run_id: str, body: FinishIn, svc: PipelinesService = Depends(service)) -> PipelineRun:
    return svc.finish_run(run_id, body.status, body.error, body.owner, remote=True)


@router.post("/runs/{run_id}/lease")
def renew(run_id: str, body: ClaimIn, svc: PipelinesService = Depends(service)) -> dict[str, bool]:
    return {"renewed": svc.renew_lease(run_id, body.owner, body.lease_seconds)}


@router.post("/queue/claim")
def claim(body: ClaimIn, svc: PipelinesService = Depends(service)) -> PipelineRun | None:
    return svc.claim_run(body.owner, body.lease_seconds)


@router.post("/queue/fire-schedules")
def fire_schedules(body: FireIn, svc: PipelinesService = Depends(service)) -> list[str]:
    return svc.fire_schedules(body.now)


@router.post("/queue/dispatch")
def dispatch(body: DispatchIn, svc: PipelinesService = Depends(service)) -> DispatchReport:
    return svc.dispatch_events(body.limit)


@router.post("/schedules", status_code=201)
def create_schedule(body: ScheduleIn, svc: PipelinesService = Depends(service)) -> Schedule:
    return svc.create_schedule(
        body.name, body.cron, body.ref, body.params, body.executor, replace=body.replace
    )


@router.get("/schedules")
def list_schedules(svc: PipelinesService = Depends(service)) -> list[Schedule]:
    return svc.list_schedules()


@router.delete("/schedules/{name}", status_code=204)
def delete_schedule(name: str, svc: PipelinesService = Depends(service)) -> None:
    svc.delete_schedule(name)


@router.post("/triggers", status_code=201)
def create_trigger(body: TriggerIn, svc: PipelinesService = Depends(service)) -> Trigger:
    return svc.create_trigger(
        body.name,
        body.topic,
        body.ref,
        body.params,
        match=body.match,
        expression=body.expression,
        max_concurrent=body.max_concurrent,
        executor=body.executor,
        max_pending=body.max_pending,
        coalesce_pending=body.coalesce_pending,
        replace=body.replace,
    )


@router.get("/triggers")
def list_triggers(svc: PipelinesService = Depends(service)) -> list[Trigger]:
    return svc.list_triggers()


@router.get("/trigger-states")
def trigger_states(svc: PipelinesService = Depends(service)) -> list[TriggerState]:
    return svc.trigger_states()


@router.get("/trigger-events")
def trigger_events(
    trigger: str | None = None,
    status: str | None = None,
    limit: Limit = 50,
    svc: PipelinesService = Depends(service),
) -> list[TriggerEvent]:
    return svc.list_trigger_events(trigger, status, limit)


@router.delete("/triggers/{name}", status_code=204)
def delete_trigger(name: str, svc: PipelinesService = Depends(service)) -> None:
    svc.delete_trigger(name)


@router.put("/artifacts/{digest}", status_code=201)
async def put_artifact(
    digest: str, request: Request, svc: PipelinesService = Depends(service)
) -> dict[str, str]:
    data = await request.body()
    if hashlib.sha256(data).hexdigest() != digest:
        raise InvalidInput(
            "the uploaded bytes do not match the digest in the path",
            {"field": "digest", "fix": "PUT the bytes under their sha256"},
        )
    return {"digest": svc.put_artifact(data)}


@router.get("/artifacts/{digest}")
def get_artifact(digest: str, svc: PipelinesService = Depends(service)) -> Response:
    return Response(svc.get_artifact(digest), media_type="application/octet-stream")
