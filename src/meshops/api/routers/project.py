"""Project workflow: webhooks (git and generic, authenticated by signature, not by token),
plan/apply of the server's configured checkout, applied objects, approvals and promotion."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from meshops.api.deps import get_context, get_home
from meshops.kernel.bounds import Limit, Version
from meshops.kernel.errors import InvalidInput
from meshops.kernel.home import Context, Home
from meshops.project.models import AppliedRecord
from meshops.project.service import WEBHOOK_ACTOR, ProjectService

router = APIRouter(tags=["project"])


def service(ctx: Context = Depends(get_context)) -> ProjectService:
    return ProjectService(ctx)


def _dump(value: Any) -> Any:
    if isinstance(value, list):
        return [_dump(v) for v in value]
    return value.model_dump(mode="json") if hasattr(value, "model_dump") else value


# --- webhooks: the signature is the authentication (no bearer token) ---------------------------


@router.post("/v1/hooks/git")
async def git_hook(request: Request, home: Home = Depends(get_home)) -> Any:
    """GitHub push / pull_request deliveries (X-Hub-Signature-256, X-GitHub-Delivery).
    401: bad or missing signature; 409: a delivery id seen before (replay)."""
    body = await request.body()
    svc = ProjectService(home.context(WEBHOOK_ACTOR))
    return _dump(await run_in_threadpool(svc.receive_git, dict(request.headers), body))


@router.post("/v1/hooks/generic/{name}")
async def generic_hook(name: str, request: Request, home: Home = Depends(get_home)) -> Any:
    """Signed deliveries of other systems (X-Meshops-Signature-256 over `timestamp.body`,
    X-Meshops-Timestamp, X-Meshops-Delivery). 401: bad signature or too old; 409: replay."""
    body = await request.body()
    svc = ProjectService(home.context(WEBHOOK_ACTOR))
    return _dump(await run_in_threadpool(svc.receive_generic, name, dict(request.headers), body))


# --- plan / apply of the server's checkout ---------------------------------------------------


def _checkout(svc: ProjectService) -> str:
    checkout = svc.ctx.home.settings.section("webhooks").get("checkout")
    if not checkout:
        raise InvalidInput(
            "this server has no project checkout",
            {"fix": "set [webhooks] checkout, or run `meshops plan` where the repository is"},
        )
    return str(checkout)


@router.post("/v1/project/plan")
def plan(svc: ProjectService = Depends(service)) -> Any:
    return _dump(svc.plan(_checkout(svc)))


@router.post("/v1/project/apply")
def apply(svc: ProjectService = Depends(service)) -> Any:
    return _dump(svc.apply(_checkout(svc)))


# --- applied objects ----------------------------------------------------------------------------


class RecordsIn(BaseModel):
    project: str
    commit: str | None = None
    records: list[AppliedRecord] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    dirty: bool = False


@router.get("/v1/project/applied")
def applied(project: str | None = None, svc: ProjectService = Depends(service)) -> Any:
    return _dump(svc.applied(project))


@router.post("/v1/project/applied")
def record_applied(body: RecordsIn, svc: ProjectService = Depends(service)) -> Any:
    return _dump(
        svc.record_applied(body.project, body.commit, body.records, body.removed, body.dirty)
    )


@router.get("/v1/project/deliveries")
def deliveries(limit: Limit = 100, svc: ProjectService = Depends(service)) -> Any:
    return _dump(svc.deliveries(limit))


# --- approvals and promotion ---------------------------------------------------------------------


class ApprovalIn(BaseModel):
    comment: str = ""


class PromoteIn(BaseModel):
    to: str = "production"
    version: Version | None = None
    reason: str = ""


@router.post("/v1/project/models/{model}/versions/{version}/approvals")
def approve(
    model: str, version: Version, body: ApprovalIn, svc: ProjectService = Depends(service)
) -> Any:
    return _dump(svc.approve(model, version, body.comment))


@router.get("/v1/project/models/{model}/versions/{version}/approvals")
def approvals(model: str, version: Version, svc: ProjectService = Depends(service)) -> Any:
    return _dump(svc.approvals(model, version))


@router.get("/v1/project/models/{model}/gate")
def gate(
    model: str, alias: str, version: Version | None = None, svc: ProjectService = Depends(service)
) -> Any:
    return _dump(svc.gate(model, alias, version))


@router.post("/v1/project/models/{model}/promote")
def promote(model: str, body: PromoteIn, svc: ProjectService = Depends(service)) -> Any:
    return _dump(svc.promote(model, body.to, body.version, body.reason))
