"""Experiments, runs, params, metrics, artifacts and run search (the tracking area)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from meshops.api.deps import get_context
from meshops.kernel.bounds import JsonObject
from meshops.kernel.errors import InvalidInput
from meshops.kernel.home import Context
from meshops.tracking.models import Artifact, DatasetInput, Experiment, Run, RunPage
from meshops.tracking.service import DEFAULT_EXPERIMENT, MAX_RESULTS_LIMIT, TrackingService

# Metric values may be NaN or infinite: the app's SafeJSONResponse writes them as
# "NaN"/"Infinity"/"-Infinity" strings (api.responses), which the SDK reads back.
router = APIRouter(tags=["tracking"])


class ExperimentIn(BaseModel):
    name: str
    description: str = ""
    tags: dict[str, str] = Field(default_factory=dict)


class RunIn(BaseModel):
    experiment: str = DEFAULT_EXPERIMENT
    name: str | None = None
    parent_run_id: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


class EndIn(BaseModel):
    status: str = "FINISHED"
    error: str | None = None


class SearchIn(BaseModel):
    experiments: list[str] | None = None
    filter: str = ""
    order_by: list[str] = Field(default_factory=list)
    max_results: Annotated[int, Field(ge=1, le=MAX_RESULTS_LIMIT)] = 100
    page_token: str | None = None


@router.post("/v1/experiments", status_code=201)
def create_experiment(body: ExperimentIn, ctx: Context = Depends(get_context)) -> Experiment:
    return TrackingService(ctx).create_experiment(body.name, body.description, body.tags)


@router.get("/v1/experiments")
def list_experiments(ctx: Context = Depends(get_context)) -> list[Experiment]:
    return TrackingService(ctx).list_experiments()


@router.get("/v1/experiments/{name_or_id}")
def get_experiment(name_or_id: str, ctx: Context = Depends(get_context)) -> Experiment:
    return TrackingService(ctx).get_experiment(name_or_id)


@router.post("/v1/runs", status_code=201)
def create_run(body: RunIn, ctx: Context = Depends(get_context)) -> Run:
    # The client captured its own environment into the tags; the server's is irrelevant.
    return TrackingService(ctx).create_run(
        body.experiment, body.name, body.parent_run_id, body.tags, capture_environment=False
    )


@router.post("/v1/runs/search")
def search_runs(body: SearchIn, ctx: Context = Depends(get_context)) -> RunPage:
    return TrackingService(ctx).search_runs(
        body.experiments, body.filter, body.order_by, body.max_results, body.page_token
    )


@router.get("/v1/runs/{run_id}")
def get_run(run_id: str, ctx: Context = Depends(get_context)) -> Run:
    return TrackingService(ctx).get_run(run_id)


@router.post("/v1/runs/{run_id}/end")
def end_run(run_id: str, body: EndIn, ctx: Context = Depends(get_context)) -> Run:
    return TrackingService(ctx).end_run(run_id, body.status, body.error)


@router.post("/v1/runs/{run_id}/params", status_code=204)
def log_params(run_id: str, body: JsonObject, ctx: Context = Depends(get_context)) -> None:
    TrackingService(ctx).log_params(run_id, body)


@router.post("/v1/runs/{run_id}/tags", status_code=204)
def set_tags(run_id: str, body: JsonObject, ctx: Context = Depends(get_context)) -> None:
    TrackingService(ctx).set_tags(run_id, body)


@router.post("/v1/metrics/batch", status_code=204)
async def log_metric_rows(request: Request, ctx: Context = Depends(get_context)) -> Response:
    """Body `{"rows": [[run_id, key, value, step, timestamp], ...]}`; parsed without a
    per-row model because this is the hot path (the service checks every row)."""
    try:
        rows = json.loads(await request.body())["rows"]
        if not isinstance(rows, list):
            raise TypeError("rows is not a list")
    except (ValueError, KeyError, TypeError) as exc:
        raise InvalidInput(
            f"metric batch body is not {{'rows': [[run_id, key, value, step, ts], ...]}}: {exc}",
            {"field": "rows"},
        ) from exc
    await run_in_threadpool(TrackingService(ctx).log_metric_rows, rows)
    return Response(status_code=204)


class History(BaseModel):
    # Typed floats: pydantic's JSON mode would turn a NaN inside `Any` into null; a float
    # field keeps it for the app's response class to write as "NaN".
    key: str
    values: list[tuple[float, int, float]]  # value, step, timestamp


@router.get("/v1/runs/{run_id}/metrics/history")
def metric_history(run_id: str, key: str, ctx: Context = Depends(get_context)) -> History:
    history = TrackingService(ctx).metric_history(run_id, key)
    values = [(m.value, m.step, m.timestamp) for m in history]
    return History.model_construct(key=key, values=values)  # built from typed Metrics


@router.put("/v1/runs/{run_id}/artifacts", status_code=201)
async def put_artifact(
    run_id: str, path: str, request: Request, ctx: Context = Depends(get_context)
) -> Artifact:
    data = await request.body()
    return await run_in_threadpool(TrackingService(ctx).log_artifact_bytes, run_id, path, data)


@router.get("/v1/runs/{run_id}/artifacts")
def list_artifacts(
    run_id: str, prefix: str = "", ctx: Context = Depends(get_context)
) -> list[Artifact]:
    return TrackingService(ctx).list_artifacts(run_id, prefix)


@router.get("/v1/runs/{run_id}/artifacts/content")
def read_artifact(run_id: str, path: str, ctx: Context = Depends(get_context)) -> Response:
    data = TrackingService(ctx).read_artifact(run_id, path)
    return Response(content=data, media_type="application/octet-stream")


@router.post("/v1/runs/{run_id}/inputs", status_code=204)
def log_input(run_id: str, body: DatasetInput, ctx: Context = Depends(get_context)) -> None:
    TrackingService(ctx).log_input(run_id, body)
