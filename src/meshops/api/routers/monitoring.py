"""Monitoring: monitors, runs (tables uploaded as Parquet), results, reports and alerts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse
from pydantic import BaseModel, ValidationError

from meshops.api.deps import get_context
from meshops.kernel.bounds import Limit, RowId
from meshops.kernel.errors import InvalidInput
from meshops.kernel.home import Context
from meshops.monitoring import arrowio
from meshops.monitoring.models import AlertRuleSpec, MonitorSpec
from meshops.monitoring.service import MonitoringService

router = APIRouter(tags=["monitoring"])


class EnabledIn(BaseModel):
    enabled: bool


class NoteIn(BaseModel):
    note: str = ""


class NowIn(BaseModel):
    now: datetime | None = None


def _dump(value: BaseModel) -> Any:
    return value.model_dump(mode="json")


async def _table(upload: UploadFile | None, what: str) -> Any:
    if upload is None:
        return None
    return arrowio.from_parquet(await upload.read(), what)


@router.post("/v1/monitors", status_code=201)
async def create_monitor(
    spec: str = Form(...),
    reference: UploadFile | None = File(None),
    ctx: Context = Depends(get_context),
) -> Any:
    try:
        parsed = MonitorSpec.model_validate_json(spec)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(p) for p in first["loc"])
        raise InvalidInput(f"spec.{field}: {first['msg']}", {"field": field}) from exc
    table = await _table(reference, "reference")
    return _dump(MonitoringService(ctx).create_monitor(parsed, table))


@router.get("/v1/monitors")
def list_monitors(endpoint: str | None = None, ctx: Context = Depends(get_context)) -> Any:
    return [_dump(m) for m in MonitoringService(ctx).list_monitors(endpoint)]


@router.get("/v1/monitors/{monitor}")
def get_monitor(monitor: str, ctx: Context = Depends(get_context)) -> Any:
    return _dump(MonitoringService(ctx).get_monitor(monitor))


@router.put("/v1/monitors/{monitor}/reference")
async def set_reference(monitor: str, request: Request, ctx: Context = Depends(get_context)) -> Any:
    table = arrowio.from_parquet(await request.body(), "reference")
    return _dump(MonitoringService(ctx).set_reference(monitor, table))


@router.post("/v1/monitors/{monitor}/enabled")
def set_enabled(monitor: str, body: EnabledIn, ctx: Context = Depends(get_context)) -> Any:
    return _dump(MonitoringService(ctx).set_enabled(monitor, body.enabled))


@router.post("/v1/monitors/{monitor}/rules", status_code=201)
def add_rule(monitor: str, rule: AlertRuleSpec, ctx: Context = Depends(get_context)) -> Any:
    return _dump(MonitoringService(ctx).add_rule(monitor, rule))


@router.get("/v1/monitors/{monitor}/rules")
def list_rules(monitor: str, ctx: Context = Depends(get_context)) -> Any:
    return [_dump(r) for r in MonitoringService(ctx).list_rules(monitor)]


@router.post("/v1/monitors/{monitor}/runs", status_code=201)
async def run_monitor(
    monitor: str,
    *,
    current: UploadFile | None = File(None),
    reference: UploadFile | None = File(None),
    labels: UploadFile | None = File(None),
    now: datetime | None = Form(None),
    ctx: Context = Depends(get_context),
) -> Any:
    result = MonitoringService(ctx).run_monitor(
        monitor,
        current=await _table(current, "current"),
        reference=await _table(reference, "reference"),
        labels=await _table(labels, "labels"),
        now=now,
    )
    return _dump(result)


@router.get("/v1/monitors/{monitor}/results")
def list_results(monitor: str, limit: Limit = 50, ctx: Context = Depends(get_context)) -> Any:
    return [_dump(r) for r in MonitoringService(ctx).list_results(monitor, limit)]


@router.get("/v1/monitors/{monitor}/history")
def feature_history(
    monitor: str,
    feature: str | None = None,
    limit: Limit = 100,
    ctx: Context = Depends(get_context),
) -> Any:
    return [_dump(f) for f in MonitoringService(ctx).feature_history(monitor, feature, limit)]


@router.get("/v1/monitoring/due")
def due_monitors(now: datetime | None = None, ctx: Context = Depends(get_context)) -> Any:
    return [_dump(m) for m in MonitoringService(ctx).due_monitors(now)]


@router.post("/v1/monitoring/run-due")
def run_due(body: NowIn, ctx: Context = Depends(get_context)) -> Any:
    return [_dump(r) for r in MonitoringService(ctx).run_due(body.now)]


@router.get("/v1/monitor-results/{result_id}")
def get_result(result_id: RowId, ctx: Context = Depends(get_context)) -> Any:
    return _dump(MonitoringService(ctx).get_result(result_id))


@router.get("/v1/monitor-results/{result_id}/report", response_class=HTMLResponse)
def report(result_id: RowId, ctx: Context = Depends(get_context)) -> HTMLResponse:
    return HTMLResponse(MonitoringService(ctx).report(result_id))


@router.get("/v1/alerts")
def list_alerts(
    state: str | None = None,
    monitor: str | None = None,
    limit: Limit = 100,
    ctx: Context = Depends(get_context),
) -> Any:
    return [_dump(a) for a in MonitoringService(ctx).list_alerts(state, monitor, limit)]


@router.get("/v1/alerts/{alert_id}")
def get_alert(alert_id: RowId, ctx: Context = Depends(get_context)) -> Any:
    return _dump(MonitoringService(ctx).get_alert(alert_id))


@router.post("/v1/alerts/{alert_id}/acknowledge")
def acknowledge_alert(alert_id: RowId, body: NoteIn, ctx: Context = Depends(get_context)) -> Any:
    return _dump(MonitoringService(ctx).acknowledge_alert(alert_id, body.note))


@router.post("/v1/alerts/{alert_id}/resolve")
def resolve_alert(alert_id: RowId, body: NoteIn, ctx: Context = Depends(get_context)) -> Any:
    return _dump(MonitoringService(ctx).resolve_alert(alert_id, body.note))
