"""The MLflow model registry REST API (`/api/2.0/mlflow/registered-models/...`,
`/api/2.0/mlflow/model-versions/...`, and their `/ajax-api/` twins) over meshops's registry
service (`meshops.mlflow.registry`). The caller comes from the bearer token exactly as for
the native API; errors answer in MLflow's shape so the client raises MlflowException with
meshops's message."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from starlette.concurrency import run_in_threadpool

from meshops.api.deps import get_context
from meshops.kernel.errors import MeshopsError
from meshops.mlflow import common, registry

router = APIRouter(tags=["mlflow"])
PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")

Endpoint = Callable[[Request], Awaitable[Response]]


def _endpoint(handler: registry.Handler) -> Endpoint:
    async def endpoint(request: Request) -> Response:
        try:
            data = await common.body(request)
            ctx = await get_context(request)
            result = await run_in_threadpool(handler, ctx, data)
        except (MeshopsError, common.MlflowApiError) as exc:
            return common.error_response(exc)
        return JSONResponse(result)

    endpoint.__name__ = f"mlflow_registry_{handler.__name__}"
    return endpoint


for _method, _path, _handler in registry.ROUTES:
    _call = _endpoint(_handler)
    for _prefix in PREFIXES:
        ajax = "ajax" in _prefix
        router.add_api_route(
            _prefix + _path,
            _call,
            methods=[_method],
            name=f"{_call.__name__}_{_method.lower()}{'_ajax' if ajax else ''}",
            include_in_schema=not ajax,
        )
