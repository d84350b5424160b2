"""One error hierarchy, mapped once to HTTP status codes and CLI exit codes."""

from __future__ import annotations

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
