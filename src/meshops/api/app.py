"""Assembly of the HTTP app: error mapping, health checks, and the area routers."""

from __future__ import annotations

import logging
from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy import text

import meshops
from meshops import assembly
from meshops.api.routers import features as features_router
from meshops.api.routers import governance as governance_router
from meshops.api.routers import lineage as lineage_router
from meshops.api.routers import mesh as mesh_router
from meshops.api.routers import mlflow_registry as mlflow_registry_router
from meshops.api.routers import mlflow_tracking as mlflow_tracking_router
from meshops.api.routers import pipelines as pipelines_router
from meshops.api.routers import project as project_router
from meshops.api.routers import registry as registry_router
from meshops.api.routers import serving as serving_router
from meshops.api.routers import tracking as tracking_router
from meshops.api.rpc import router_for
from meshops.kernel import schema
from meshops.kernel.auth import Actor
from meshops.kernel.codetrust import mark_api_server
from meshops.kernel.edge import ASGIApp, Edge, Message, Receive, Scope, Send
from meshops.kernel.errors import MeshopsError, outage_error
from meshops.kernel.home import Home
from meshops.kernel.lineage import Lineage, LineageService
from meshops.kernel.responses import SafeJSONResponse, install_error_shape
from meshops.mesh.interface import MeshDocuments
from meshops.mesh.service import MeshService

Authenticate = Callable[[Home, str | None], Actor]
log = logging.getLogger("meshops.api")


def local_user(home: Home, token: str | None) -> Actor:
    """Until governance is configured, the server acts as the home's configured user."""
    return Actor(home.settings.user)


def create_app(home: Home, authenticate: Authenticate = local_user) -> FastAPI:
    app = FastAPI(
        title="meshops",
        version=meshops.__version__,
        description="Data mesh and MLOps platform API",
        default_response_class=SafeJSONResponse,  # never a bare NaN (kernel.responses)
        # The explorer is served from installed files (below), not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    app.state.home = home
    app.state.authenticate = authenticate
    # Remote callers: their Python runs here only where an admin named it (kernel.codetrust).
    mark_api_server(home)
    _install_error_handlers(app)
    _install_health(app)
    app.include_router(router_for(Lineage, LineageService, tags=["lineage"]))
    app.include_router(lineage_router.router)  # OpenLineage events in (raw JSON bodies)
    for area in assembly.AREAS:  # routes derived from each area's declarations
        app.include_router(router_for(area.protocol, area.service, tags=[area.name]))
    app.include_router(features_router.router)
    app.add_middleware(features_router.OnlineLookups)  # the online lookup's hot path
    app.add_middleware(mlflow_tracking_router.MlflowDispatch)  # MLflow calls, unrouted
    app.include_router(governance_router.router)
    app.include_router(mesh_router.router)
    app.include_router(router_for(MeshDocuments, MeshService, tags=["mesh"]))
    app.include_router(pipelines_router.router)
    app.include_router(pipelines_router.worker_router)
    app.include_router(project_router.router)
    app.include_router(registry_router.router)
    app.include_router(serving_router.router)
    app.include_router(tracking_router.router)
    app.include_router(mlflow_tracking_router.router)  # the MLflow client's tracking API
    app.include_router(mlflow_registry_router.router)  # ... and its model registry API
    from meshops.ui import mount as mount_ui  # the web pages at /ui (and / redirects there)

    mount_ui(app)
    _install_docs(app)
    app.add_middleware(Outages)  # outside the fast paths, so their faults are mapped too
    # Last added, so outermost: headers, body limits and /metrics' token apply to every
    # path, the fast paths that answer before FastAPI's routing included.
    app.add_middleware(Edge, settings=home.settings)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    # meshops errors, validation, Starlette's errors, recursion, overflow, the unexpected:
    # one error shape for all (kernel.responses, shared with `meshops serve`).
    install_error_shape(app)


class Outages:
    """A fault of the machine or of a dependency answers in the API's error shape instead
    of a 500 (`kernel.errors.outage_error`): 503 with `Retry-After` while the metadata
    database or Redis does not answer, 507 when the disk is full. Pure ASGI around every
    route and fast path; a response already started cannot change and is left as it is."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def watched_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, watched_send)
        except Exception as exc:
            error = outage_error(exc)
            if error is None or started:
                raise
            log.warning("%s %s: %s (%s)", scope["method"], scope["path"], error.message, exc)
            await _send_error(send, error)


async def _send_error(send: Send, error: MeshopsError) -> None:
    body = SafeJSONResponse(error.to_json()).body
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    retry_after = error.detail.get("retry_after")
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": error.http_status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _install_health(app: FastAPI) -> None:
    @app.get("/healthz", tags=["health"])
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"])
    def readyz(request: Request) -> JSONResponse:
        home: Home = request.app.state.home
        try:
            with home.db.read() as conn:
                conn.execute(text("SELECT 1"))
            current = schema.is_current(home.db)
        except Exception as exc:
            return JSONResponse(status_code=503, content={"status": "down", "reason": str(exc)})
        if not current:
            return JSONResponse(
                status_code=503,
                content={"status": "down", "reason": "schema outdated: run meshops db upgrade"},
            )
        return JSONResponse(content={"status": "ready", "database": home.db.dialect})


DOCS_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>meshops API</title>
<link rel="icon" href="/ui/static/favicon.svg" type="image/svg+xml">
{head}</head>
<body>
<p>The OpenAPI description of this server: <a href="/openapi.json">/openapi.json</a>
(every route but <code>/healthz</code>, <code>/readyz</code>, <code>/docs</code> and
<code>/openapi.json</code> needs <code>Authorization: Bearer &lt;token&gt;</code>).</p>
<div id="swagger-ui" data-openapi="/openapi.json"></div>
{body}</body></html>
"""
SWAGGER_HEAD = '<link rel="stylesheet" href="/docs/assets/swagger-ui.css">\n'
SWAGGER_BODY = (
    '<script src="/docs/assets/swagger-ui-bundle.js"></script>\n'
    '<script src="/ui/static/docs.js"></script>\n'
)


def _install_docs(app: FastAPI) -> None:
    """`/docs`: Swagger UI from the installed `swagger_ui_bundle` package (works offline,
    no inline script); without that package, a page that links the OpenAPI document."""
    try:
        from swagger_ui_bundle import swagger_ui_path  # type: ignore[import-untyped]
    except ImportError:
        page = DOCS_PAGE.format(head="", body="")
    else:
        app.mount("/docs/assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
        page = DOCS_PAGE.format(head=SWAGGER_HEAD, body=SWAGGER_BODY)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(page)
