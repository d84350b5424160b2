"""The project routes that differ from their declaration (the others are derived from
`meshops.project.interface`): webhooks (git and generic, authenticated by signature, not by
token), plan/apply of the server's configured checkout, and the writes of a client's apply."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile

from meshops.api.deps import get_context, get_home
from meshops.kernel.errors import InvalidInput
from meshops.kernel.home import Context, Home
from meshops.kernel.wire import decode_table
from meshops.project.apply import MAX_TABLES, Prepared, Writes
from meshops.project.service import WEBHOOK_ACTOR, ProjectService

router = APIRouter(tags=["project"])
# The writes document of one apply (its tables are file parts, bounded by max_upload_mb).
MAX_WRITES_BYTES = 64 * 1024 * 1024


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


# --- the writes of an apply prepared by a client -----------------------------------------------


@router.post("/v1/project/apply/prepared")
async def apply_prepared(request: Request, svc: ProjectService = Depends(service)) -> Any:
    """Multipart: `writes`, the JSON document of `meshops.project.apply.Writes`, and one
    file part per built table (Arrow IPC stream), named in the document. Written in one
    unit of work: a failing write leaves nothing applied."""
    svc.ctx.authorize("project.apply")  # before reading tables the caller may not write
    async with request.form(
        max_files=MAX_TABLES, max_fields=1, max_part_size=MAX_WRITES_BYTES
    ) as form:
        text = form.get("writes")
        if not isinstance(text, str):
            raise InvalidInput("the writes field is missing", {"field": "writes"})
        try:
            writes = Writes.model_validate_json(text)
        except ValidationError as exc:
            raise InvalidInput(f"writes: {exc.errors()[0]['msg']}", {"field": "writes"}) from exc
        tables: dict[str, dict[str, Any]] = {}
        for product in writes.products:
            tables[product.key] = {}
            for port, part in product.parts.items():
                upload = form.get(part)
                if not isinstance(upload, UploadFile):
                    raise InvalidInput(f"table part {part!r} is missing", {"field": part})
                tables[product.key][port] = decode_table(await upload.read(), part)
    return _dump(await run_in_threadpool(svc.apply_prepared, Prepared(writes, tables)))
