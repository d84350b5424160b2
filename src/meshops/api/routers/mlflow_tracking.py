"""The MLflow tracking REST API (`/api/2.0/mlflow/...`, `/ajax-api/2.0/mlflow/...`) and
its artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/...`), over meshops's tracking
service (`meshops.mlflow`). The caller is resolved from the bearer token exactly as for
the native API (`api.deps.get_context`); errors answer in MLflow's shape
(`{"error_code": ..., "message": ...}`) so the MLflow client raises MlflowException with
meshops's message."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson
from fastapi import APIRouter, Request, Response
from starlette.concurrency import run_in_threadpool

from meshops.api.deps import get_context
from meshops.kernel.errors import MeshopsError
from meshops.kernel.home import Context
from meshops.mlflow import artifacts, common, logged_models, tracking

router = APIRouter(tags=["mlflow"])
PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")
ARTIFACT_PREFIXES = ("/api/2.0/mlflow-artifacts", "/ajax-api/2.0/mlflow-artifacts")

Endpoint = Callable[[Request], Awaitable[Response]]
# (method, path) -> endpoint of every MLflow route without path parameters: `MlflowDispatch`
# answers them ahead of the app's routing (see there).
DIRECT: dict[tuple[str, str], Endpoint] = {}


class FastJSONResponse(Response):
    """JSON by orjson: a search page of 1,000 runs is ~800 KB, and the standard library's
    encoder took a tenth of its time. MLflow shapes carry no NaN (`common.json_number`
    spells them as text), so orjson's null for a stray NaN never meets a metric value."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        return orjson.dumps(content)


async def _answer(request: Request, work: Callable[[Context], Any]) -> Response:
    try:
        ctx = await get_context(request)
        result = await run_in_threadpool(work, ctx)
    except (MeshopsError, common.MlflowApiError) as exc:
        return common.error_response(exc)
    if isinstance(result, Response):
        return result
    return FastJSONResponse(result)


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
            if "{" not in path:
                DIRECT[(method, prefix + path)] = call


Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class MlflowDispatch:
    """ASGI middleware answering the MLflow routes without path parameters (nearly every
    call an MLflow client makes) by one dictionary lookup, ahead of FastAPI's routing.

    The app's router matches its routes in turn and the MLflow routes come after every
    area's: finding one cost more than the handler's own database write (B12). The same
    endpoint runs as through the router (`_endpoint`: the token's context, MLflow's error
    shape); an exception it does not answer itself goes to the app's exception handlers,
    as the router's would. Other paths, and the routes with path parameters, go on."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = DIRECT.get((scope["method"], scope["path"])) if scope["type"] == "http" else None
        if endpoint is None:
            await self.app(scope, receive, send)
            return
        request = Request(scope, receive)
        try:
            response = await endpoint(request)
        except Exception as exc:
            handler = _exception_handler(scope, exc)
            if handler is None:
                raise
            answer = handler(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
        await response(scope, receive, send)


def _exception_handler(scope: Scope, exc: Exception) -> Callable[[Request, Exception], Any] | None:
    handlers = scope["app"].exception_handlers
    for kind in type(exc).__mro__:
        if kind in handlers and kind is not Exception:  # Exception: the server's 500
            found: Callable[[Request, Exception], Any] = handlers[kind]
            return found
    return None


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
    return FastJSONResponse({})


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
