"""The tracking routes that differ from their declaration (the others are derived from
`meshops.tracking.interface`): run creation, the metric batch, artifact bytes."""

from __future__ import annotations

import json

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from meshops.api.deps import get_context
from meshops.kernel.errors import InvalidInput
from meshops.kernel.home import Context
from meshops.tracking.models import DEFAULT_EXPERIMENT, Artifact, Run
from meshops.tracking.service import TrackingService

router = APIRouter(tags=["tracking"])


class RunIn(BaseModel):
    experiment: str = DEFAULT_EXPERIMENT
    name: str | None = None
    parent_run_id: str | None = None
    tags: dict[str, str] = Field(default_factory=dict)


@router.post("/v1/runs", status_code=201)
def create_run(body: RunIn, ctx: Context = Depends(get_context)) -> Run:
    # The client captured its own environment into the tags; the server's is irrelevant
    # (and not the caller's to read).
    return TrackingService(ctx).create_run(
        body.experiment, body.name, body.parent_run_id, body.tags, capture_environment=False
    )


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


@router.put("/v1/runs/{run_id}/artifacts", status_code=201)
async def put_artifact(
    run_id: str, path: str, request: Request, ctx: Context = Depends(get_context)
) -> Artifact:
    data = await request.body()
    return await run_in_threadpool(TrackingService(ctx).log_artifact_bytes, run_id, path, data)


@router.get("/v1/runs/{run_id}/artifacts/content")
def read_artifact(run_id: str, path: str, ctx: Context = Depends(get_context)) -> Response:
    data = TrackingService(ctx).read_artifact(run_id, path)
    return Response(content=data, media_type="application/octet-stream")
