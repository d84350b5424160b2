"""Assembly of the HTTP app: error mapping, health checks, and the area routers."""

from __future__ import annotations

from collections.abc import Callable

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from sqlalchemy import text

import meshops
from meshops.api.routers import features as features_router
from meshops.api.routers import governance as governance_router
from meshops.api.routers import lineage
from meshops.api.routers import mesh as mesh_router
from meshops.api.routers import monitoring as monitoring_router
from meshops.api.routers import pipelines as pipelines_router
from meshops.api.routers import project as project_router
from meshops.api.routers import registry as registry_router
from meshops.api.routers import serving as serving_router
from meshops.api.routers import tracking as tracking_router
from meshops.kernel import schema
from meshops.kernel.auth import Actor
from meshops.kernel.errors import MeshopsError
from meshops.kernel.home import Home

Authenticate = Callable[[Home, str | None], Actor]


def local_user(home: Home, token: str | None) -> Actor:
    """Until governance is configured, the server acts as the home's configured user."""
    return Actor(home.settings.user)


def create_app(home: Home, authenticate: Authenticate = local_user) -> FastAPI:
    app = FastAPI(
        title="meshops",
        version=meshops.__version__,
        description="Data mesh and MLOps platform API",
    )
    app.state.home = home
    app.state.authenticate = authenticate
    _install_error_handlers(app)
    _install_health(app)
    app.include_router(lineage.router)
    app.include_router(features_router.router)
    app.add_middleware(features_router.OnlineLookups)  # the online lookup's hot path
    app.include_router(governance_router.router)
    app.include_router(mesh_router.router)
    app.include_router(mesh_router.catalog_router)
    app.include_router(monitoring_router.router)
    app.include_router(pipelines_router.router)
    app.include_router(project_router.router)
    app.include_router(registry_router.router)
    app.include_router(serving_router.router)
    app.include_router(tracking_router.router)
    from meshops.ui import mount as mount_ui  # the web pages at /ui (and / redirects there)

    mount_ui(app)
    return app


def _install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(MeshopsError)
    async def meshops_error(_: Request, exc: MeshopsError) -> JSONResponse:
        return JSONResponse(status_code=exc.http_status, content=exc.to_json())

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "?", "problem": "invalid"}
        return JSONResponse(
            status_code=422,
            content={
                "error": "invalid_input",
                "message": f"{first['field']}: {first['problem']}",
                "detail": {"errors": errors},
            },
        )


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
