"""Running the API with uvicorn (one or several worker processes)."""

from __future__ import annotations

import os
import tempfile
from typing import Any

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
    if settings.metrics_address:
        serve_metrics_apart(settings.metrics_address, workers)
    uvicorn.run(
        "meshops.api.server:app_factory",
        factory=True,
        host=host or settings.server_host,
        port=port or settings.server_port,
        workers=workers,
        log_level="warning",
    )


def serve_metrics_apart(address: str, workers: int) -> Any:
    """`[server] metrics_address`: Prometheus metrics without a token on a listener of their
    own (bind it to an internal interface); the API port keeps asking for a token. Several
    workers share their samples through prometheus_client's multiprocess directory, set
    here before they start. Returns the listener (a WSGI server in a daemon thread)."""
    from prometheus_client import REGISTRY, CollectorRegistry, start_http_server

    from meshops.serving.metrics import MULTIPROC_ENV

    registry: CollectorRegistry = REGISTRY
    if workers > 1:
        from prometheus_client import multiprocess

        os.environ.setdefault(MULTIPROC_ENV, tempfile.mkdtemp(prefix="meshops-metrics-"))
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
    host, _, port = address.rpartition(":")
    server, _thread = start_http_server(int(port), addr=host, registry=registry)
    return server
