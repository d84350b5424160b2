"""Running the API with uvicorn (one or several worker processes), logging like a server:
a start line (URLs, home, database kind, workers), uvicorn's own lines (listening, worker
processes, shutdown), one access line per request (`api.access_log`), in text or JSON."""

from __future__ import annotations

import logging
import logging.config
import os
import tempfile
from typing import Any

import uvicorn

from meshops.api.access_log import AccessLog, NamingAuthenticator, logging_config
from meshops.api.app import create_app
from meshops.kernel.config import Settings, checked_log_format, load_settings
from meshops.kernel.home import Home

log = logging.getLogger("meshops.server")


def app_factory() -> object:
    """Used by uvicorn workers: each process opens the home from the environment."""
    from meshops.governance.authn import authenticate_token

    # A served home needs an API token on every call but the health checks and docs.
    home = Home(load_settings(), auto_upgrade=False)
    return AccessLog(create_app(home, authenticate=NamingAuthenticator(authenticate_token)))


def serve(
    host: str | None = None,
    port: int | None = None,
    workers: int = 1,
    log_format: str | None = None,
) -> None:
    """`meshops server`: `log_format` ("text" or "json") overrides `[server] log_format`."""
    settings = load_settings()
    log_format = checked_log_format(log_format or settings.log_format)
    log_config = logging_config(log_format)
    logging.config.dictConfig(log_config)  # uvicorn applies it again, in each worker too
    # Upgrading once here (not in each worker) keeps migrations single-writer.
    home = Home(settings, auto_upgrade=settings.database_url.startswith("sqlite"))
    try:
        _ = home.blobs  # opening the store removes temp files a killed publish left behind
    finally:
        home.close()
    os.environ.setdefault("MESHOPS_HOME", str(settings.home))
    if settings.metrics_address:
        serve_metrics_apart(settings.metrics_address, workers)
    host, port = host or settings.server_host, port or settings.server_port
    _log_start(settings, host, port, workers)
    uvicorn.run(
        "meshops.api.server:app_factory",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_config=log_config,
        access_log=False,  # AccessLog writes one line per request instead
    )


def _log_start(settings: Settings, host: str, port: int, workers: int) -> None:
    """The start line: where to go, on which home and database. The database is named by
    its kind only (its URL may carry a password)."""
    url = base_url(host, port)
    database = settings.database_url.split(":", 1)[0].split("+", 1)[0]
    metrics = f", metrics without a token at http://{settings.metrics_address}/metrics"
    log.info(
        "meshops server starting on %s (UI %s/ui, API docs %s/docs), home %s, "
        "database %s, %d worker%s%s",
        url,
        url,
        url,
        settings.home.resolve(),
        database,
        workers,
        "" if workers == 1 else "s",
        metrics if settings.metrics_address else "",
        extra={
            "url": url,
            "home": str(settings.home.resolve()),
            "database": database,
            "workers": workers,
            "metrics_address": settings.metrics_address or None,
        },
    )


def base_url(host: str, port: int) -> str:
    """The URL a person on this machine opens: an any-interface bind is reached on the
    loopback address (and from elsewhere on the machine's own names)."""
    shown = "127.0.0.1" if host in ("0.0.0.0", "") else "[::1]" if host == "::" else host
    if ":" in shown and not shown.startswith("["):
        shown = f"[{shown}]"  # an IPv6 address in a URL
    return f"http://{shown}:{port}"


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
