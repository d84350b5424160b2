"""What every HTTP response and request body passes through, ahead of any route.

`Edge` is the outermost ASGI middleware of `meshops server` (and of `meshops serve`'s data
plane):

- security headers on every response, JSON or page: no framing (`X-Frame-Options`, CSP
  `frame-ancestors`), no inline or foreign scripts (CSP), no MIME sniffing, no referrer
  sent to other sites (and HSTS under HTTPS);
- request bodies bounded by `[server] max_request_mb`, uploads (multipart forms, octet
  streams, Parquet and Arrow bodies) by `max_upload_mb`: a declared `Content-Length` over
  the limit is refused before a byte is read, and a body without one (chunked) is counted
  as it streams, so the fast paths that read bodies themselves (online lookups, predict)
  are bounded too. Refusals are 413 in the API's error shape. An upload larger than a
  request's limit must come with a valid token (checked before its body is read), so an
  anonymous caller cannot make the server spool it;
- `/metrics` answers only to a caller with a valid token, like every route but the health
  checks and the API docs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import TYPE_CHECKING, Any

import orjson
from starlette.concurrency import run_in_threadpool

from meshops.kernel.config import Settings
from meshops.kernel.errors import InvalidInput, MeshopsError

if TYPE_CHECKING:
    from meshops.kernel.home import Context, Home

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

MIB = 1024 * 1024
TOKEN_PATHS = frozenset({"/metrics"})
# Styles may be inline: the SVG charts (matplotlib's included) carry style attributes.
# Scripts may not: the UI's few scripts are files under /ui/static.
CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; object-src 'none'; base-uri 'none'; form-action 'self'; "
    "frame-ancestors 'none'"
)
SECURITY_HEADERS = (
    (b"x-frame-options", b"DENY"),
    (b"content-security-policy", CSP.encode()),
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"same-origin"),
)
# Under HTTPS (directly or through a proxy that says so), browsers stay on HTTPS.
HTTPS_HEADERS = (*SECURITY_HEADERS, (b"strict-transport-security", b"max-age=31536000"))


class PayloadTooLarge(InvalidInput):
    error = "payload_too_large"
    http_status = 413


class Edge:
    """`state` (with `home` and `authenticate`) is the app's, read from the scope when the
    middleware sits inside a Starlette app; an ASGI app in front of one passes it."""

    def __init__(self, app: ASGIApp, settings: Settings, state: Any = None) -> None:
        self.app = app
        self.state = state
        self.max_request = int(settings.max_request_mb * MIB)
        self.max_upload = int(settings.max_upload_mb * MIB)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        send = _with_headers(send, HTTPS_HEADERS if scope.get("scheme") == "https" else None)
        headers = _wanted_headers(scope)
        if scope["path"] in TOKEN_PATHS and not await _authenticated(
            self._state(scope), headers, send
        ):
            return
        upload = is_upload(headers.get(b"content-type", b""))
        limit, setting = (
            (self.max_upload, "max_upload_mb") if upload else (self.max_request, "max_request_mb")
        )
        declared = headers.get(b"content-length")
        if declared is None and b"transfer-encoding" not in headers:
            await self.app(scope, receive, send)  # no body at all
            return
        big = declared is None or not declared.isdigit() or int(declared) > self.max_request
        if upload and big and not await _authenticated(self._state(scope), headers, send):
            return  # only a caller with a token may send more than a request's worth
        if declared is not None:
            if not declared.isdigit() or int(declared) > limit:
                await _send_error(send, too_large(limit, setting))
                return
            # The server stops reading at Content-Length: nothing more can arrive.
            await self.app(scope, receive, send)
            return
        await _counted(self.app, (scope, receive, send), limit, setting)

    def _state(self, scope: Scope) -> Any:
        return self.state if self.state is not None else scope["app"].state


def is_upload(content_type: bytes) -> bool:
    """Files and tables (multipart forms, octet streams, Parquet, Arrow...) are uploads;
    JSON, url-encoded forms, text and a body that names no type are requests."""
    kind = content_type.split(b";", 1)[0].strip().lower()
    textual = (
        not kind
        or kind.endswith(b"json")
        or kind == b"application/x-www-form-urlencoded"
        or kind.startswith(b"text/")
    )
    return not textual


def too_large(limit: int, setting: str) -> PayloadTooLarge:
    return PayloadTooLarge(
        f"the request body is larger than {limit / MIB:g} MiB",
        {
            "field": "body",
            "limit_bytes": limit,
            "setting": f"server.{setting}",
            "fix": f"send a smaller body, or raise `[server] {setting}` in meshops.toml",
        },
    )


async def _counted(
    app: ASGIApp, call: tuple[Scope, Receive, Send], limit: int, setting: str
) -> None:
    """Run `app` on a body without a declared length, cut off past `limit` bytes: the app
    sees the client go away, whatever it answers is dropped, and the caller gets 413."""
    scope, receive, send = call
    state = {"size": 0, "over": False, "started": False}

    async def counting_receive() -> Message:
        if state["over"]:
            return {"type": "http.disconnect"}
        message = await receive()
        if message["type"] == "http.request":
            state["size"] += len(message.get("body", b""))
            if state["size"] > limit:
                state["over"] = True
                return {"type": "http.disconnect"}
        return message

    async def guarded_send(message: Message) -> None:
        if state["over"]:
            return
        state["started"] = True
        await send(message)

    try:
        await app(scope, counting_receive, guarded_send)
    except Exception:
        if not state["over"]:
            raise
    if state["over"] and not state["started"]:
        await _send_error(send, too_large(limit, setting))


def _wanted_headers(scope: Scope) -> dict[bytes, bytes]:
    wanted = (b"content-length", b"transfer-encoding", b"content-type", b"authorization")
    return {k: v for k, v in scope["headers"] if k in wanted}


def _with_headers(send: Send, headers: tuple[tuple[bytes, bytes], ...] | None) -> Send:
    wanted = headers or SECURITY_HEADERS

    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            present = {k.lower() for k, _ in message.get("headers", ())}
            extra = [h for h in wanted if h[0] not in present]
            if extra:
                message["headers"] = [*message.get("headers", ()), *extra]
        await send(message)

    return wrapped


def bearer_token(authorization: str) -> str | None:
    return authorization[7:].strip() if authorization.lower().startswith("bearer ") else None


async def context_for(state: Any, authorization: str) -> Context:
    """The context of a caller of the app with this `state` (home, authenticate).

    A token verified recently and unchanged since is answered on the event loop (no thread
    hop: this runs on every request); otherwise the authenticator reads the database in
    the thread pool, never blocking the loop."""
    home: Home = state.home
    token = bearer_token(authorization)
    authenticate = state.authenticate
    cached = getattr(authenticate, "cached", None)
    actor = cached(home, token) if cached is not None else None
    if actor is None:
        actor = await run_in_threadpool(authenticate, home, token)
    return home.context(actor)


async def _authenticated(state: Any, headers: dict[bytes, bytes], send: Send) -> bool:
    try:
        await context_for(state, headers.get(b"authorization", b"").decode("latin-1"))
    except MeshopsError as exc:
        await _send_error(send, exc)
        return False
    return True


async def _send_error(send: Send, error: MeshopsError) -> None:
    body = orjson.dumps(error.to_json(), default=str)
    await send(
        {
            "type": "http.response.start",
            "status": error.http_status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", b"%d" % len(body)),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})
