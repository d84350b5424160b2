"""Running the API with uvicorn (one or several worker processes)."""

from __future__ import annotations

import os

import uvicorn

from meshops.api.app import create_app
from meshops.kernel.config import load_settings
from meshops.kernel.home import Home


def app_factory() -> object:
    """Used by uvicorn workers: each process opens the home from the environment."""
    from meshops.governance.authn import authenticate_token

    # A served home needs an API token on every call but the health checks and docs.
    return create_app(Home(load_settings(), auto_upgrade=False), authenticate=authenticate_token)


def serve(host: str | None = None, port: int | None = None, workers: int = 1) -> None:
    settings = load_settings()
    # Upgrading once here (not in each worker) keeps migrations single-writer.
    home = Home(settings, auto_upgrade=settings.database_url.startswith("sqlite"))
    try:
        _ = home.blobs  # opening the store removes temp files a killed publish left behind
    finally:
        home.close()
    os.environ.setdefault("MESHOPS_HOME", str(settings.home))
    uvicorn.run(
        "meshops.api.server:app_factory",
        factory=True,
        host=host or settings.server_host,
        port=port or settings.server_port,
        workers=workers,
        log_level="warning",
    )
