"""`meshops server`'s logs: one access line per request, and the formats of every line.

`AccessLog` is the outermost ASGI middleware of the served app (`api.server.app_factory`):
it times each HTTP request and, once the response is sent, logs one record on the
`meshops.access` logger with the client, method, path, status, duration in milliseconds
and the principal's name.

What it never logs: the query string (a caller may put a secret in it) and anything of the
`Authorization` header or cookies. The principal: the auth layer keeps nothing on the
request (`kernel.edge.context_for` hands the context to the route), so the served app's
authenticator is wrapped in `NamingAuthenticator`, which notes the name of each actor it
returns in a slot the middleware opened for the request (a context variable: the route's
dependencies and the thread pool they call run in copies of the request's context, which
share the slot). API calls with a bearer token, the UI's sign-in and online lookups are
named; UI pages (a session cookie, resolved by `ui.web` without the authenticator) and
refused or anonymous requests log "-".

`logging_config` is the `logging.config.dictConfig` of the server (and of each uvicorn
worker process): "text" lines for a terminal, or "json", one object a line with the same
fields, for a log collector.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Awaitable, Callable, MutableMapping
from contextvars import ContextVar
from datetime import UTC, datetime
from typing import Any, TextIO

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

ACCESS_LOGGER = "meshops.access"
NO_PRINCIPAL = "-"
# The attributes every LogRecord has: what is left on a record are the fields a call gave
# in `extra=` (they become keys of the JSON line).
_RECORD_ATTRIBUTES = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "color_message",  # uvicorn's own copy of its message with terminal colours
    "taskName",
}

log = logging.getLogger(ACCESS_LOGGER)
# The names of the actors authenticated while serving the current request.
_principals: ContextVar[list[str] | None] = ContextVar("meshops_access_principals", default=None)


class NamingAuthenticator:
    """An `api.app.create_app` authenticator that notes whom `inner` authenticated for the
    request's access line; it answers exactly as `inner` does."""

    def __init__(self, inner: Callable[[Any, str | None], Any]) -> None:
        self.inner = inner

    def __call__(self, home: Any, token: str | None) -> Any:
        return _noted(self.inner(home, token))

    def cached(self, home: Any, token: str | None) -> Any:
        """`inner.cached` when it has one; None (read the database) otherwise."""
        cached = getattr(self.inner, "cached", None)
        return _noted(cached(home, token)) if cached is not None else None


def _noted(actor: Any) -> Any:
    slot = _principals.get()
    if slot is not None and actor is not None:
        slot.append(str(actor.name))
    return actor


class AccessLog:
    """Logs one line per HTTP request of `app` (whose authenticator should be a
    `NamingAuthenticator` for lines to name the principal)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status: list[int] = []
        principals: list[str] = []
        opened = _principals.set(principals)

        async def recording_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                status.append(int(message["status"]))
            await send(message)

        try:
            await self.app(scope, receive, recording_send)
        except BaseException:
            status.append(500)  # what uvicorn answers for an app that raised
            raise
        finally:
            _principals.reset(opened)
            principal = principals[-1] if principals else NO_PRINCIPAL
            _log(scope, status[0] if status else None, time.perf_counter() - start, principal)


def _log(scope: Scope, status: int | None, seconds: float, principal: str) -> None:
    if not log.isEnabledFor(logging.INFO):
        return
    client = scope.get("client")
    fields = {
        "client": client[0] if client else "-",
        "method": scope["method"],
        "path": scope["path"],  # never the query string
        "status": status,
        "duration_ms": round(seconds * 1000, 1),
        "principal": principal,
    }
    log.info(
        "%s %s %s %s %.1fms %s",
        fields["client"],
        fields["method"],
        fields["path"],
        status if status is not None else "-",
        fields["duration_ms"],
        fields["principal"],
        extra=fields,
    )


class StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever `sys.stderr` is when a record is emitted (like logging's last
    resort handler), so a test that captures stderr and then restores it never leaves the
    server's loggers writing to a closed stream."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


class TextFormatter(logging.Formatter):
    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(name)s: %(message)s")


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, and the
    record's own fields (for access lines: client, method, path, status, duration_ms,
    principal)."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRIBUTES:
                entry[key] = value
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def logging_config(log_format: str) -> dict[str, Any]:
    """The server's logging set-up: meshops's loggers and uvicorn's (its start, stop and
    error lines; its own access log is replaced by `AccessLog`) on stderr, in `log_format`."""
    formatter = JsonFormatter if log_format == "json" else TextFormatter
    handler = {"()": f"{__name__}.StderrHandler", "formatter": "server"}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"server": {"()": f"{__name__}.{formatter.__name__}"}},
        "handlers": {"server": handler},
        "loggers": {
            # Propagating too: a process that also logs elsewhere (tests) still sees them.
            "meshops": {"handlers": ["server"], "level": "INFO", "propagate": True},
            "uvicorn": {"handlers": ["server"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": [], "propagate": False},
        },
    }
