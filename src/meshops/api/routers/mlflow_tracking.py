"""The MLflow tracking REST API (`/api/2.0/mlflow/...`, `/ajax-api/2.0/mlflow/...`) and
its artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/...`), over meshops's tracking
service (`meshops.mlflow`). The caller is resolved from the bearer token exactly as for
the native API (`api.deps.get_context`); errors answer in MLflow's shape
(`{"error_code": ..., "message": ...}`) so the MLflow client raises MlflowException with
meshops's message."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from meshops.api.deps import get_context
from meshops.kernel.errors import MeshopsError
from meshops.kernel.home import Context
from meshops.mlflow import artifacts, common, logged_models, tracking

router = APIRouter(tags=["mlflow"])
PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACT_PREFIXES = ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts")

Endpoint = Callable[[Request], Awaitable[Response]]


async def _answer(request: Request, work: Callable[[Context], Any]) -> Response:
    try:
        ctx = await get_context(request)
        result = await run_in_threadpool(work, ctx)
    except (MeshopsError, common.MlflowApiError) as exc:
        return common.error_response(exc)
    if isinstance(result, Response):
        return result
    return JSONResponse(result)


def _endpoint(handler: tracking.Handler) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            data = await common.body(request)
        except common.MlflowApiError as exc:
            return common.error_response(exc)
        data.update(request.path_params)
        return await _answer(request, lambda ctx: handler(ctx, data))

    endpoint.__name__ = f"mlflow_{handler.__module__.rsplit('.', 1)[-1]}_{handler.__name__}"
    return endpoint


def mount(
    target: APIRouter,
    routes: list[tuple[str, str, tracking.Handler]],
    *,
    method_in_name: bool = False,
) -> None:
    """Each (method, path, handler) under both MLflow prefixes (the `/ajax-api/` twin left
    out of the OpenAPI document)."""
    for method, path, handler in routes:
        call = _endpoint(handler)
        for prefix in PREFIXES:
            ajax = prefix != PREFIXES[0]
            suffix = (f"_{method.lower()}" if method_in_name else "") + ("_ajax" if ajax else "")
            target.add_api_route(
                prefix + path,
                call,
                methods=[method],
                name=f"{call.__name__}{suffix}",
                include_in_schema=not ajax,
            )


mount(
    router,
    [
        *tracking.ROUTES,
        *logged_models.ROUTES,
        ("GET", "/artifacts/list", artifacts.list_run_artifacts),
    ],
)


async def proxy_list(request: Request) -> Response:
    data = dict(request.query_params)
    return await _answer(request, lambda ctx: artifacts.proxy_list(ctx, data))


async def proxy_download(request: Request, artifact_path: str) -> Response:
    def read(ctx: Context) -> Response:
        data = artifacts.proxy_download(ctx, artifact_path)
        name = artifact_path.rsplit("/", 1)[-1].replace('"', "")
        return Response(
            content=data,
            media_type="application/octet-stream",
            headers={"content-disposition": f'attachment; filename="{name}"'},
        )

    return await _answer(request, read)


async def proxy_upload(request: Request, artifact_path: str) -> Response:
    try:
        ctx = await get_context(request)  # before the body is read
        data = await request.body()
        await run_in_threadpool(artifacts.proxy_upload, ctx, artifact_path, data)
    except (MeshopsError, common.MlflowApiError) as exc:
        return common.error_response(exc)
    return JSONResponse({})


for _prefix in ARTIFACT_PREFIXES:
    _shown = _prefix == ARTIFACT_PREFIXES[0]
    _tail = "ajax" if "ajax" in _prefix else "api"
    router.add_api_route(
        f"{_prefix}/artifacts",
        proxy_list,
        methods=["GET"],
        name=f"mlflow_artifacts_list_{_tail}",
        include_in_schema=_shown,
    )
    router.add_api_route(
        f"{_prefix}/artifacts/{{artifact_path:path}}",
        proxy_download,
        methods=["GET"],
        name=f"mlflow_artifacts_download_{_tail}",
        include_in_schema=_shown,
    )
    router.add_api_route(
        f"{_prefix}/artifacts/{{artifact_path:path}}",
        proxy_upload,
        methods=["PUT"],
        name=f"mlflow_artifacts_upload_{_tail}",
        include_in_schema=_shown,
    )
