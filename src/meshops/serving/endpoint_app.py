"""The predict data plane over HTTP: one router used inside `meshops server` and by the
standalone app of `meshops serve ENDPOINT --workers N`.

The predict handler is `async` and scores inline on the event loop: a single-record
prediction of a typical model takes well under a millisecond, and hopping to the thread
pool would cost more than it saves (the GIL serialises the model call anyway). Only the
first request of an endpoint, which loads the model, runs in the thread pool. When the
prediction-log buffer is full the handler blocks the loop: that is the backpressure.
"""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from meshops.kernel.auth import Actor
from meshops.kernel.errors import InvalidInput, MeshopsError
from meshops.kernel.home import Context, Home
from meshops.serving import metrics
from meshops.serving.models import records_of
from meshops.serving.runtime import close_runtime, runtime_for

ENDPOINTS_ENV = "MESHOPS_SERVE_ENDPOINTS"
AUTH_ENV = "MESHOPS_SERVE_AUTH"  # "token" (default, like `meshops server`) or "none"
TOKEN_AUTHENTICATOR = "meshops.governance.authn:authenticate_token"
REQUEST_ID_HEADER = "x-request-id"

router = APIRouter(tags=["serving"])


def request_context(request: Request) -> Context:
    """The caller's context, by the same convention as the API (app.state.authenticate)."""
    home: Home = request.app.state.home
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    actor: Actor = request.app.state.authenticate(home, token)
    return home.context(actor)


async def _json_body(request: Request) -> Any:
    raw = await request.body()
    try:
        return json.loads(raw)
    except ValueError as exc:
        raise InvalidInput(
            f"the body is not valid JSON: {exc}",
            {"field": "body", "fix": 'send {"records": [{...}, ...]}'},
        ) from exc


async def predict_response(request: Request, name: str) -> Response:
    body = await _json_body(request)
    ctx = request_context(request)
    runtime = runtime_for(ctx.home)
    if name not in runtime._deployments:
        await run_in_threadpool(runtime.deployment, name)  # loading reads files: off the loop
    result = runtime.predict(ctx, name, records_of(body), request.headers.get(REQUEST_ID_HEADER))
    payload = {
        "request_id": result.request_id,
        "endpoint": result.endpoint,
        "model": result.model,
        "model_version": result.model_version,
        "predictions": result.predictions,
    }
    return Response(
        content=json.dumps(payload, separators=(",", ":")),
        media_type="application/json",
        headers={REQUEST_ID_HEADER: result.request_id},
    )


@router.post("/v1/endpoints/{name}/predict")
async def predict(name: str, request: Request) -> Response:
    """Score records: `{"records": [{col: value, ...}, ...]}` (also the MLflow scoring forms
    `dataframe_split`, `dataframe_records` and `inputs`). `X-Request-ID` sets the id."""
    return await predict_response(request, name)


@router.post("/v1/endpoints/{name}/feedback")
async def feedback(name: str, request: Request) -> dict[str, int]:
    """Ground-truth labels: `{"items": [{"request_id", "label", "record"?}, ...]}` or one
    `{"request_id", "label"}`."""
    from meshops.serving.service import ServingService

    body = await _json_body(request)
    items = body.get("items", [body]) if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise InvalidInput("`items` must be a list", {"field": "items"})
    service = ServingService(request_context(request))
    stored = await run_in_threadpool(service.feedback_bulk, name, items)
    return {"stored": stored}


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics() -> Response:
    data, content_type = metrics.render()
    return Response(content=data, media_type=content_type)


# --- the standalone app ----------------------------------------------------------------------


def local_user(home: Home, token: str | None) -> Actor:
    return Actor(home.settings.user)


def create_endpoint_app(
    home: Home,
    endpoints: list[str],
    authenticate: Callable[[Home, str | None], Actor] = local_user,
) -> FastAPI:
    """An app serving only `endpoints` (plus `/invocations` for the first one, the MLflow
    scoring path, so MLflow clients work unchanged)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = runtime_for(home)
        for name in endpoints:  # warm: the first request should not pay for loading
            await run_in_threadpool(runtime.deployment, name)
        yield
        # Graceful shutdown: uvicorn has drained in-flight requests; write the log.
        await run_in_threadpool(close_runtime, home)

    app = FastAPI(title=f"meshops serve {', '.join(endpoints)}", lifespan=lifespan)
    app.state.home = home
    app.state.authenticate = authenticate
    allowed = set(endpoints)

    @app.middleware("http")
    async def only_served(request: Request, call_next: Any) -> Response:
        path = request.url.path
        if path.startswith("/v1/endpoints/") and path.split("/")[3] not in allowed:
            return JSONResponse(
                status_code=404,
                content={
                    "error": "not_found",
                    "message": f"this process serves {sorted(allowed)} only",
                    "detail": {"field": "endpoint"},
                },
            )
        response: Response = await call_next(request)
        return response

    @app.exception_handler(MeshopsError)
    async def meshops_error(_: Request, exc: MeshopsError) -> JSONResponse:
        return JSONResponse(status_code=exc.http_status, content=exc.to_json())

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.post("/invocations")
    async def invocations(request: Request) -> Response:
        return await predict_response(request, endpoints[0])

    app.include_router(router)
    return app


def app_factory() -> FastAPI:
    """Used by uvicorn workers: each process opens the home and serves the endpoints named
    in MESHOPS_SERVE_ENDPOINTS."""
    from meshops.kernel.config import load_settings

    names = [n for n in os.environ.get(ENDPOINTS_ENV, "").split(",") if n]
    if not names:
        raise MeshopsError(f"{ENDPOINTS_ENV} names no endpoint")
    authenticate = local_user
    if os.environ.get(AUTH_ENV, "token") != "none":
        from meshops.kernel.plugins import load_object

        # Named, not imported: the serving area does not depend on governance's modules.
        authenticate = load_object(TOKEN_AUTHENTICATOR)
    return create_endpoint_app(Home(load_settings(), auto_upgrade=False), names, authenticate)


def serve(
    endpoints: list[str],
    host: str,
    port: int,
    workers: int = 1,
    *,
    auth: bool = True,
    log_level: str = "warning",
) -> None:
    """Run the standalone app with uvicorn (several worker processes share the port)."""
    import shutil
    import tempfile

    import uvicorn

    from meshops.kernel.config import load_settings

    settings = load_settings()
    # Check the endpoints exist (and the schema is current) before starting workers.
    home = Home(settings, auto_upgrade=settings.database_url.startswith("sqlite"))
    try:
        from meshops.serving.service import ServingService

        for name in endpoints:
            ServingService(home.context()).get_endpoint(name)
    finally:
        home.close()
    os.environ[ENDPOINTS_ENV] = ",".join(endpoints)
    os.environ[AUTH_ENV] = "token" if auth else "none"
    os.environ.setdefault("MESHOPS_HOME", str(settings.home))
    created = None
    if workers > 1 and not os.environ.get(metrics.MULTIPROC_ENV):
        # Workers aggregate their metrics through files here (see metrics.py).
        created = tempfile.mkdtemp(prefix="meshops-metrics-")
        os.environ[metrics.MULTIPROC_ENV] = created
    try:
        uvicorn.run(
            "meshops.serving.endpoint_app:app_factory",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            timeout_graceful_shutdown=30,
        )
    finally:
        if created:
            shutil.rmtree(created, ignore_errors=True)
