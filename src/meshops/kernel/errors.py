"""One error hierarchy, mapped once to HTTP status codes and CLI exit codes."""

from __future__ import annotations

import errno
from collections.abc import Iterator
from typing import Any, ClassVar


class MeshopsError(Exception):
    """Base of every error meshops raises on purpose.

    `error` is a stable machine-readable name; `message` is for people and should say what
    to do; `detail` carries structured context (field, file, line, offending token ...).
    """

    error: ClassVar[str] = "internal"
    http_status: ClassVar[int] = 500
    exit_code: ClassVar[int] = 1

    def __init__(self, message: str, detail: dict[str, Any] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.detail: dict[str, Any] = detail or {}

    def to_json(self) -> dict[str, Any]:
        return {"error": self.error, "message": self.message, "detail": self.detail}


class InvalidInput(MeshopsError):
    error = "invalid_input"
    http_status = 422
    exit_code = 2


class BadRequest(InvalidInput):
    """Input refused as it stands, before anything runs (a SQL construct the sandbox does not
    allow, SQL that does not parse): HTTP 400, with the same `invalid_input` name and exit 2."""

    http_status = 400


class NotFound(MeshopsError):
    error = "not_found"
    http_status = 404
    exit_code = 3


class Conflict(MeshopsError):
    error = "conflict"
    http_status = 409
    exit_code = 4


class Unauthenticated(MeshopsError):
    error = "unauthenticated"
    http_status = 401
    exit_code = 5


class Forbidden(MeshopsError):
    error = "forbidden"
    http_status = 403
    exit_code = 6


class PolicyViolation(Forbidden):
    """A policy of severity `block` refused the action; detail lists the violations."""

    error = "policy_violation"


class SchemaOutdated(MeshopsError):
    error = "schema_outdated"
    http_status = 503
    exit_code = 7


class Unavailable(MeshopsError):
    """A service the server depends on (the metadata database, Redis) does not answer right
    now; the request did nothing and may be retried (HTTP 503 with `Retry-After`)."""

    error = "unavailable"
    http_status = 503
    exit_code = 8


class NoSpace(MeshopsError):
    """The disk (or the database) is full: nothing was written; free space and retry
    (HTTP 507)."""

    error = "no_space"
    http_status = 507
    exit_code = 9


ERRORS_BY_NAME: dict[str, type[MeshopsError]] = {
    cls.error: cls
    for cls in (
        MeshopsError,
        InvalidInput,
        NotFound,
        Conflict,
        Unauthenticated,
        Forbidden,
        PolicyViolation,
        SchemaOutdated,
        Unavailable,
        NoSpace,
    )
}


def error_from_json(status: int, body: Any) -> MeshopsError:
    """Rebuild the server's error on the client side so both transports raise the same type."""
    if isinstance(body, dict) and isinstance(body.get("error"), str):
        # A name this client does not know (e.g. payload_too_large) keeps its status' type.
        cls = ERRORS_BY_NAME.get(body["error"]) or _by_status(status)
        if cls is InvalidInput and status == BadRequest.http_status:
            cls = BadRequest
        detail = body.get("detail")
        return cls(str(body.get("message", "")), detail if isinstance(detail, dict) else {})
    return _by_status(status)(f"HTTP {status}: {str(body)[:500]}")


def _by_status(status: int) -> type[MeshopsError]:
    by_status = {401: Unauthenticated, 403: Forbidden, 404: NotFound, 409: Conflict}
    return by_status.get(status, InvalidInput if 400 <= status < 500 else MeshopsError)


RETRY_AFTER_SECONDS = 2
# SQLite says so when its file system is full (SQLITE_FULL).
_SQLITE_FULL = "database or disk is full"


def outage_error(exc: BaseException) -> MeshopsError | None:
    """The error a fault of the machine or of a dependency stands for, or None: a full disk
    is `NoSpace`, a metadata database or Redis that does not answer is `Unavailable`. The
    API answers these instead of a 500 (and the CLI exits with their codes), because the
    request was sound and a retry succeeds once the fault is gone."""
    causes = list(_chain(exc))
    if any(_is_disk_full(cause) for cause in causes):
        return NoSpace(
            "no space left on device: nothing was written",
            {"fix": "free space on the disk of the home (or of the database) and retry"},
        )
    for cause in causes:
        service = _unavailable_service(cause)
        if service:
            return Unavailable(
                f"the {service} does not answer right now: nothing was done; retry shortly",
                {"service": service, "retry_after": RETRY_AFTER_SECONDS},
            )
    return None


def _chain(exc: BaseException) -> Iterator[BaseException]:
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _is_disk_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return True
    return _SQLITE_FULL in str(exc) or "No space left on device" in str(exc)


# SQLite's OperationalError also covers mistakes (no such table): only these are faults.
_SQLITE_FAULTS = ("database is locked", "unable to open database", "disk I/O error")


def _unavailable_service(exc: BaseException) -> str:
    # Imported here: every CLI start imports this module, and SQLAlchemy costs ~0.13 s.
    from sqlalchemy import exc as sa_exc

    if isinstance(exc, sa_exc.OperationalError) and type(exc.orig).__module__ == "sqlite3":
        return "metadata database" if any(f in str(exc) for f in _SQLITE_FAULTS) else ""
    if isinstance(exc, sa_exc.OperationalError | sa_exc.InterfaceError | sa_exc.TimeoutError):
        return "metadata database"
    if isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated:
        return "metadata database"
    try:
        from redis import exceptions as redis_exc
    except ImportError:  # pragma: no cover - the redis extra is not installed
        return ""
    if isinstance(exc, redis_exc.ConnectionError | redis_exc.TimeoutError):
        return "online store (Redis)"
    return ""
