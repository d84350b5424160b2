"""The predict data plane over HTTP: one router used inside `meshops server` and by the
standalone app of `meshops serve ENDPOINT --workers N`.

Predicting is `predict_payload`: the authenticated caller, the body bytes and a request id
in, JSON bytes out, with no framework objects in between, so both ways in share it. Inside
`meshops server` it sits behind a FastAPI route. The standalone app (`DataPlane`) answers
predict requests straight from ASGI and hands every other path to its FastAPI app: per
request, FastAPI's dependency solving and middleware stack cost more than validating,
scoring and logging a record, and the served paths need none of it. A predict request
whose body is JSON of a declared length within `[server] max_request_mb` does not go
through `Edge` either: the data plane makes Edge's two checks itself (that limit, the
security headers on every answer) while reading the headers it needs anyway; any other
predict request (chunked, an upload type, too large) goes through `Edge` as before, which
answers it or refuses it the same way.

Scoring runs inline on the event loop, in the loop's batch (batching.py): a single-record
prediction of a typical model takes well under a millisecond, and hopping to the thread
pool would cost more than it saves (the GIL serialises the model call anyway). Only an
endpoint's first request, which loads the model, runs in the thread pool. When the
prediction-log buffer is full the handler blocks the loop: that is the backpressure.
"""

from __future__ import annotations

import gc
import logging
import os
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping
from contextlib import asynccontextmanager
from typing import Any

import orjson
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from meshops.kernel import ports
from meshops.kernel.auth import Actor
from meshops.kernel.edge import HTTPS_HEADERS, SECURITY_HEADERS, Edge, is_upload
from meshops.kernel.errors import InvalidInput, MeshopsError
from meshops.kernel.home import Context, Home
from meshops.kernel.responses import SafeJSONResponse, install_error_shape
from meshops.serving import metrics
from meshops.serving.models import REQUEST_ID_HEADER, PayloadTooLarge, proba_of, records_of
from meshops.serving.runtime import close_runtime, runtime_for

ENDPOINTS_ENV = "MESHOPS_SERVE_ENDPOINTS"
AUTH_ENV = "MESHOPS_SERVE_AUTH"  # "token" (default, like `meshops server`) or "none"
# 10,000 records (models.MAX_RECORDS) of a few hundred columns fit; anything larger is a
# mistake or an attack, refused before it is buffered whole.
MAX_BODY_BYTES = 64 * 1024 * 1024

Authenticate = Callable[[Home, str | None], Actor]
Headers = tuple[tuple[bytes, bytes], ...]
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger(__name__)
router = APIRouter(tags=["serving"])


def bearer_token(authorization: str | None) -> str | None:
    if authorization and authorization[:7].lower() == "bearer ":
        return authorization[7:].strip()
    return None


def request_context(request: Request) -> Context:
    """The caller's context, by the same convention as the API (app.state.authenticate)."""
    home: Home = request.app.state.home
    token = bearer_token(request.headers.get("authorization"))
    actor: Actor = request.app.state.authenticate(home, token)
    return home.context(actor)


def parse_json(raw: bytes) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidInput(
            f"the body is not valid JSON: {exc}",
            {"field": "body", "fix": 'send {"records": [{...}, ...]}'},
        ) from exc


async def ensure_loaded(home: Home, name: str) -> None:
    """Load an endpoint off the event loop (reading model files) before its first request."""
    runtime = runtime_for(home)
    if not runtime.is_loaded(name):
        await run_in_threadpool(runtime.deployment, name)


def is_loaded(home: Home, name: str) -> bool:
    return runtime_for(home).is_loaded(name)


async def predict_payload(
    ctx: Context, name: str, body: bytes, request_id: str | None = None, query: str = ""
) -> tuple[bytes, str]:
    """Parse, score and log one predict request of the authenticated caller `ctx`; returns
    the JSON answer and the request id. Raises MeshopsError (with its HTTP status) for a
    refused request. `query`: the raw query string (`proba=true`). Scored in the event
    loop's batch (batching.py)."""
    parsed = parse_json(body)
    records = records_of(parsed)
    proba = proba_of(parsed, query)
    batcher = runtime_for(ctx.home).batcher
    result = await batcher.serve(ctx, name, records, request_id, proba=proba)
    payload = {
        "request_id": result.request_id,
        "endpoint": name,
        "model": result.route.model.name,
        "model_version": result.route.version,
        "predictions": result.outputs,
    }
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY), result.request_id


async def predict_response(request: Request, name: str) -> Response:
    ctx = request_context(request)  # first: an anonymous caller loads no model
    body = await request.body()
    await ensure_loaded(ctx.home, name)
    request_id = request.headers.get(REQUEST_ID_HEADER)
    payload, request_id = await predict_payload(ctx, name, body, request_id, request.url.query)
    return Response(
        content=payload,
        media_type="application/json",
        headers={REQUEST_ID_HEADER: request_id},
    )


@router.post("/v1/endpoints/{name}/predict", operation_id="serving_predict")
async def predict(name: str, request: Request) -> Response:
    """Score records: `{"records": [{col: value, ...}, ...]}` (also the MLflow scoring forms
    `dataframe_split`, `dataframe_records` and `inputs`). `X-Request-ID` sets the id;
    `"proba": true` (or `?proba=true`) adds a classifier's class probabilities."""
    return await predict_response(request, name)


@router.post("/v1/endpoints/{name}/feedback", operation_id="serving_feedback_bulk")
async def feedback(name: str, request: Request) -> dict[str, int]:
    """Ground-truth labels: `{"items": [{"request_id", "label", "record"?}, ...]}` or one
    `{"request_id", "label"}`."""
    from meshops.serving.service import ServingService

    body = parse_json(await request.body())
    items = body.get("items", [body]) if isinstance(body, dict) else body
    if not isinstance(items, list):
        raise InvalidInput("`items` must be a list", {"field": "items"})
    service = ServingService(request_context(request))
    stored = await run_in_threadpool(service.feedback_bulk, name, items)
    return {"stored": stored}


@router.get("/metrics", include_in_schema=False)
def prometheus_metrics() -> Response:
    data, content_type = metrics.render()
    return Response(content=data, media_type=content_type)


# --- the standalone app ----------------------------------------------------------------------


def local_user(home: Home, token: str | None) -> Actor:
    return Actor(home.settings.user)


class DataPlane:
    """The ASGI app of `meshops serve`: predict requests of the served endpoints (and MLflow's
    `/invocations`, for the first one) are answered here; `/v1/endpoints/<other>/...` is a
    404; every other path (health, metrics, feedback, docs, lifespan) goes to `app`."""

    def __init__(
        self, app: FastAPI, home: Home, endpoints: list[str], authenticate: Authenticate
    ) -> None:
        self.app = app
        self.home = home
        self.endpoints = list(endpoints)
        self.authenticate = authenticate
        self._predict_paths = {f"/v1/endpoints/{n}/predict": n for n in endpoints}
        self._predict_paths["/invocations"] = endpoints[0]
        # In front of everything, as in `meshops server`: security headers, the configured
        # body limits and /metrics' token.
        self._edge = Edge(self._route, home.settings, state=app.state)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            name = self._predict_paths.get(scope["path"])
            if name is not None:
                headers = _request_headers(scope)
                if self._within_limit(headers):
                    https = scope.get("scheme") == "https"
                    secure = HTTPS_HEADERS if https else SECURITY_HEADERS
                    await self._predict(scope, receive, send, name, headers, secure=secure)
                    return
        await self._edge(scope, receive, send)

    def _within_limit(self, headers: dict[bytes, bytes]) -> bool:
        """A JSON (not upload) body of a declared length within the request limit: what
        `Edge` would pass on unchanged. Anything else is left to `Edge`."""
        declared = headers.get(b"content-length")
        return (
            declared is not None
            and declared.isdigit()
            and int(declared) <= self._edge.max_request
            and b"transfer-encoding" not in headers
            and not is_upload(headers.get(b"content-type", b""))
        )

    async def _route(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            path: str = scope["path"]
            name = self._predict_paths.get(path)
            if name is not None and scope["method"] == "POST":
                await self._predict(scope, receive, send, name, _request_headers(scope))
                return
            if path.startswith("/v1/endpoints/") and path.split("/")[3] not in self.endpoints:
                await _send_json(send, 404, _not_served(self.endpoints))
                return
        await self.app(scope, receive, send)

    async def _predict(
        self,
        scope: Scope,
        receive: Receive,
        send: Send,
        name: str,
        headers: dict[bytes, bytes],
        *,
        secure: Headers = (),
    ) -> None:
        """`secure`: the security headers to add to the answer (none when `Edge` adds them)."""
        try:
            token = bearer_token(_text(headers.get(b"authorization")))
            # First: an anonymous caller neither loads a model nor has its body read.
            ctx = self.home.context(self.authenticate(self.home, token))
            body = await _read_body(receive)
            if body is None:
                return  # the client went away
            if not is_loaded(self.home, name):
                await ensure_loaded(self.home, name)
            query = scope.get("query_string", b"").decode("latin-1")
            request_id = _text(headers.get(_REQUEST_ID))
            payload, request_id = await predict_payload(ctx, name, body, request_id, query)
        except MeshopsError as exc:
            error = orjson.dumps(exc.to_json(), default=str)
            await _send_json(send, exc.http_status, error, secure=secure)
            return
        except Exception:
            log.exception("predict on endpoint %s failed", name)
            failure = MeshopsError("the server failed to answer; see its log", {"endpoint": name})
            await _send_json(send, 500, orjson.dumps(failure.to_json(), default=str), secure=secure)
            return
        await _send_json(send, 200, payload, request_id, secure)


_REQUEST_ID = REQUEST_ID_HEADER.lower().encode()
# What the data plane reads of a predict request's headers (ASGI names are lower-case bytes):
# what Edge's checks need, the caller's token and the request id.
_WANTED_HEADERS = frozenset(
    {b"content-length", b"transfer-encoding", b"content-type", b"authorization", _REQUEST_ID}
)


def _request_headers(scope: Scope) -> dict[bytes, bytes]:
    return {k: v for k, v in scope["headers"] if k in _WANTED_HEADERS}


def _text(value: bytes | None) -> str | None:
    return None if value is None else value.decode("latin-1")


async def _read_body(receive: Receive) -> bytes | None:
    chunks: list[bytes] = []
    size = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunk: bytes = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise PayloadTooLarge(
                f"the body is larger than {MAX_BODY_BYTES // (1024 * 1024)} MiB",
                {"field": "body", "fix": "send fewer records per request"},
            )
        chunks.append(chunk)
        if not message.get("more_body", False):
            return chunks[0] if len(chunks) == 1 else b"".join(chunks)


async def _send_json(
    send: Send, status: int, body: bytes, request_id: str | None = None, secure: Headers = ()
) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]
    if request_id is not None:
        headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
    headers.extend(secure)
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def _not_served(endpoints: list[str]) -> bytes:
    return orjson.dumps(
        {
            "error": "not_found",
            "message": f"this process serves {sorted(endpoints)} only",
            "detail": {"field": "endpoint"},
        }
    )


def create_endpoint_app(
    home: Home,
    endpoints: list[str],
    authenticate: Authenticate = local_user,
    *,
    trust_model_code: bool = False,
) -> DataPlane:
    """An app serving only `endpoints` (plus `/invocations` for the first one, the MLflow
    scoring path, so MLflow clients work unchanged). `trust_model_code` is the admin's
    `--trust-model-code`: only then are pickled models of trusting endpoints loaded."""
    from meshops.serving.trust import mark_standalone

    mark_standalone(home, trust_model_code)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = runtime_for(home)
        for name in endpoints:  # warm: the first request should not pay for loading
            await run_in_threadpool(runtime.deployment, name)
        # What is alive now (modules, models: ~350k objects) lives as long as the process.
        # Frozen, a full collection under load no longer walks it (a pause of tens to
        # hundreds of milliseconds otherwise, straight into the latency tail).
        gc.collect()
        gc.freeze()
        yield
        # Graceful shutdown: uvicorn has drained in-flight requests; write the log.
        await run_in_threadpool(close_runtime, home)

    app = FastAPI(
        title=f"meshops serve {', '.join(endpoints)}",
        lifespan=lifespan,
        default_response_class=SafeJSONResponse,  # never a bare NaN (kernel.responses)
    )
    app.state.home = home
    app.state.authenticate = authenticate
    install_error_shape(app)  # the API's error shape for 404/405/422/400 and the unexpected

    @app.exception_handler(MeshopsError)
    async def meshops_error(_: Request, exc: MeshopsError) -> JSONResponse:
        return JSONResponse(status_code=exc.http_status, content=exc.to_json())

    @app.get("/healthz")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    app.include_router(router)
    return DataPlane(app, home, endpoints, authenticate)


def app_factory() -> DataPlane:
    """Used by uvicorn workers: each process opens the home and serves the endpoints named
    in MESHOPS_SERVE_ENDPOINTS."""
    from meshops.kernel.config import load_settings

    names = [n for n in os.environ.get(ENDPOINTS_ENV, "").split(",") if n]
    if not names:
        raise MeshopsError(f"{ENDPOINTS_ENV} names no endpoint")
    authenticate = local_user
    if os.environ.get(AUTH_ENV, "token") != "none":
        authenticate = ports.TOKEN_AUTHENTICATOR.get()
    from meshops.serving.trust import standalone_trust_from_env

    home = Home(load_settings(), auto_upgrade=False)
    return create_endpoint_app(
        home, names, authenticate, trust_model_code=standalone_trust_from_env()
    )


def serve(
    endpoints: list[str],
    host: str,
    port: int,
    workers: int = 1,
    *,
    auth: bool = True,
    log_level: str = "warning",
    trust_model_code: bool = False,
) -> None:
    """Run the standalone app with uvicorn (several worker processes share the port).
    `trust_model_code`: load pickled models of endpoints that trust them (admin's flag)."""
    import shutil
    import tempfile

    import uvicorn

    from meshops.kernel.config import load_settings

    settings = load_settings()
    # Check the endpoints exist (and the schema is current) before starting workers.
    home = Home(settings, auto_upgrade=settings.database_url.startswith("sqlite"))
    try:
        from meshops.serving.service import ServingService

        for name in endpoints:
            ServingService(home.context()).get_endpoint(name)
    finally:
        home.close()
    os.environ[ENDPOINTS_ENV] = ",".join(endpoints)
    os.environ[AUTH_ENV] = "token" if auth else "none"
    from meshops.serving.trust import SERVE_TRUST_ENV

    os.environ[SERVE_TRUST_ENV] = "1" if trust_model_code else "0"
    os.environ.setdefault("MESHOPS_HOME", str(settings.home))
    created = None
    if workers > 1 and not os.environ.get(metrics.MULTIPROC_ENV):
        # Workers aggregate their metrics through files here (see metrics.py).
        created = tempfile.mkdtemp(prefix="meshops-metrics-")
        os.environ[metrics.MULTIPROC_ENV] = created
    try:
        uvicorn.run(
            "meshops.serving.endpoint_app:app_factory",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
            access_log=False,
            timeout_graceful_shutdown=30,
        )
    finally:
        if created:
            shutil.rmtree(created, ignore_errors=True)
