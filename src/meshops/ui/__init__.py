"""The web UI: server-rendered pages under `/ui`, mounted by `api.app.create_app`.

Pages call the area services with the signed-in user's context (never a store); charts and
graphs are inline SVG drawn on the server (`ui.charts`, and monitoring's report plots), so
everything works offline from the installed package.
"""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse
from fastapi.staticfiles import StaticFiles

from meshops.ui.web import HERE


def mount(app: FastAPI) -> None:
    """Add the UI routes, `/ui/static` and the `/` redirect to an app."""
    from meshops.ui import pages_login, pages_mesh, pages_ml, pages_ops

    app.include_router(pages_login.router)
    app.include_router(pages_mesh.router)
    app.include_router(pages_ml.router)
    app.include_router(pages_ops.router)
    app.mount("/ui/static", StaticFiles(directory=str(HERE / "static")), name="ui-static")

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui", status_code=307)
