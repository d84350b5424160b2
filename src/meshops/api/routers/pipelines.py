"""Pipelines routes beyond the public ones that `meshops.assembly` derives: the worker's
(derived from `PipelineWorker`, served to a caller outside the home's trust boundary) and
the hand-written ones: artifacts travel as raw bytes, and a resume over HTTP is always
queued (the server never executes a run, so the SDK's `local` is not on the wire)."""

from __future__ import annotations

import hashlib

from fastapi import APIRouter, Depends, Request, Response
from pydantic import BaseModel

from meshops.api.deps import get_context
from meshops.api.rpc import router_for
from meshops.kernel.errors import InvalidInput
from meshops.kernel.home import Context
from meshops.pipelines.interface import PipelineWorker
from meshops.pipelines.models import PipelineRun
from meshops.pipelines.service import PipelinesService, served_over_http

router = APIRouter(prefix="/v1/pipelines", tags=["pipelines"])
worker_router = router_for(PipelineWorker, served_over_http, tags=["pipelines"])


def service(ctx: Context = Depends(get_context)) -> PipelinesService:
    return PipelinesService(ctx, remote=True)


class ResumeIn(BaseModel):
    executor: str | None = None


@router.post("/runs/{run_id}/resume", status_code=201)
def resume(run_id: str, body: ResumeIn, svc: PipelinesService = Depends(service)) -> PipelineRun:
    return svc.resume(run_id, executor=body.executor)


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
