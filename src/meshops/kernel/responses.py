"""The API's JSON: one response class and one error shape for every answer.

- `SafeJSONResponse` is the default response class of the app: non-finite floats travel as
  "NaN"/"Infinity"/"-Infinity" strings (`meshops.kernel.jsontext`), never as bare literals.
- Every error body, whoever raises it, is `{"error": name, "message": text, "detail": {}}`
  (`MeshopsError.to_json`): meshops' errors, request validation (422, `detail.errors`
  lists every field), Starlette's own HTTP errors (404 of an unknown path, 405, the
  400 of a body that does not parse), a recursion or an integer overflow that the caller's
  input caused (422: the request was at fault, not the server), and, last, anything
  unexpected (500, message without internals; the traceback goes to the server log).
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException

from meshops.kernel import jsontext
from meshops.kernel.errors import MeshopsError

log = logging.getLogger("meshops.api")

HTTP_ERROR_NAMES = {
    400: "invalid_input",
    401: "unauthenticated",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "invalid_input",
    429: "too_many_requests",
}


class SafeJSONResponse(JSONResponse):
    """JSON without bare NaN/Infinity (see `meshops.kernel.jsontext`)."""

    def render(self, content: Any) -> bytes:
        return jsontext.dumps(content)


def error_body(error: str, message: str, detail: dict[str, Any] | None = None) -> dict[str, Any]:
    return {"error": error, "message": message, "detail": detail or {}}


def _http_message(exc: HTTPException) -> str:
    cause = exc.__cause__
    if isinstance(cause, RecursionError):
        return "the request body nests too deeply to be read"
    return str(exc.detail)


def install_error_shape(app: FastAPI) -> None:
    """Handlers that give every error the documented shape (see the module docstring);
    used by the API and by `meshops serve`'s data plane."""

    @app.exception_handler(MeshopsError)
    async def meshops_error(_: Request, exc: MeshopsError) -> JSONResponse:
        return SafeJSONResponse(status_code=exc.http_status, content=exc.to_json())

    @app.exception_handler(RequestValidationError)
    async def validation_error(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [
            {"field": ".".join(str(p) for p in e["loc"]), "problem": e["msg"]} for e in exc.errors()
        ]
        first = errors[0] if errors else {"field": "?", "problem": "invalid"}
        body = error_body(
            "invalid_input", f"{first['field']}: {first['problem']}", {"errors": errors}
        )
        return SafeJSONResponse(status_code=422, content=body)

    @app.exception_handler(HTTPException)
    async def http_error(_: Request, exc: HTTPException) -> JSONResponse:
        name = HTTP_ERROR_NAMES.get(exc.status_code, "http_error")
        body = error_body(name, _http_message(exc), {"status": exc.status_code})
        return SafeJSONResponse(body, status_code=exc.status_code, headers=exc.headers)

    @app.exception_handler(RecursionError)
    async def too_deep(_: Request, exc: RecursionError) -> JSONResponse:
        log.warning("input nested too deeply: %s", exc)
        body = error_body(
            "invalid_input",
            "the request nests too deeply to be processed",
            {"fix": "flatten the documents and expressions of the request"},
        )
        return SafeJSONResponse(body, status_code=422)

    @app.exception_handler(OverflowError)
    async def out_of_range(_: Request, exc: OverflowError) -> JSONResponse:
        log.warning("number out of range: %s", exc)
        body = error_body(
            "invalid_input",
            f"a number of the request is out of range: {exc}",
            {"fix": "send integers below 2**63 and finite numbers of sensible size"},
        )
        return SafeJSONResponse(body, status_code=422)

    @app.exception_handler(Exception)
    async def internal(_: Request, exc: Exception) -> JSONResponse:
        # Starlette logs the traceback; the caller learns no internals.
        body = error_body("internal", "internal error: the server log has the details")
        return SafeJSONResponse(body, status_code=500)
