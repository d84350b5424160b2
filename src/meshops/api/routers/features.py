"""Feature store: definitions, training sets (Arrow IPC in and out), materialization,
online lookups (`POST /v1/features/online`) and view status."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ValidationError

from meshops.api.deps import context_for, get_context
from meshops.features.arrow_ipc import bytes_to_reader, stream_chunks
from meshops.features.models import FeatureRepo
from meshops.features.service import FeatureStoreService
from meshops.kernel.errors import InvalidInput, MeshopsError
from meshops.kernel.home import Context

router = APIRouter(prefix="/v1/features", tags=["features"])
ARROW_STREAM = "application/vnd.apache.arrow.stream"


def _json(model: BaseModel) -> Response:
    return Response(content=model.model_dump_json(), media_type="application/json")


class MaterializeIn(BaseModel):
    views: list[str] | None = None
    end: datetime | None = None
    full: bool = False


class OnlineIn(BaseModel):
    entity_rows: list[dict[str, Any]]
    features: list[str] | str
    full_names: bool = False
    now: datetime | None = None


@router.post("/apply")
def apply(repo: FeatureRepo, ctx: Context = Depends(get_context)) -> Response:
    return _json(FeatureStoreService(ctx).apply(repo))


@router.get("/definitions")
def list_definitions(kind: str | None = None, ctx: Context = Depends(get_context)) -> Any:
    return [d.model_dump(mode="json") for d in FeatureStoreService(ctx).list_definitions(kind)]


@router.get("/definitions/{kind}/{name}")
def get_definition(kind: str, name: str, ctx: Context = Depends(get_context)) -> Response:
    return _json(FeatureStoreService(ctx).get(name, kind))


@router.get("/views/{name}")
def get_view(name: str, ctx: Context = Depends(get_context)) -> Response:
    return _json(FeatureStoreService(ctx).get_view(name))


@router.get("/views/{name}/status")
def view_status(name: str, ctx: Context = Depends(get_context)) -> Response:
    return _json(FeatureStoreService(ctx).status(name))


@router.post("/training-sets")
async def create_training_set(
    request: Request,
    *,
    name: str = "training_set",
    timestamp_column: str = "event_timestamp",
    full_names: bool = False,
    feature: list[str] | None = Query(default=None),
    service: str | None = None,
    sql: str | None = None,
    ctx: Context = Depends(get_context),
) -> Response:
    if not feature and not service:
        raise InvalidInput(
            "name the features (feature=view:name, repeated) or a feature service (service=)",
            {"field": "feature"},
        )
    body = await request.body()
    try:
        entities: Any = sql if sql else bytes_to_reader(body).read_all()
    except Exception as exc:
        raise InvalidInput(
            f"the body is not an Arrow IPC stream: {exc}",
            {"field": "body", "fix": f"send the entity rows as {ARROW_STREAM}, or sql="},
        ) from exc
    features: list[str] | str = service or list(feature or [])

    def run() -> Response:
        result = FeatureStoreService(ctx).training_set(
            entities, features, name=name, timestamp_column=timestamp_column,
            full_names=full_names,
        )  # fmt: skip
        return _json(result.info)

    return await run_in_threadpool(run)


@router.get("/training-sets")
def list_training_sets(name: str | None = None, ctx: Context = Depends(get_context)) -> Any:
    return [t.model_dump(mode="json") for t in FeatureStoreService(ctx).list_training_sets(name)]


@router.get("/training-sets/{id_or_digest}")
def get_training_set(id_or_digest: str, ctx: Context = Depends(get_context)) -> Response:
    return _json(FeatureStoreService(ctx).get_training_set(id_or_digest).info)


@router.get("/training-sets/{id_or_digest}/data")
def training_set_data(id_or_digest: str, ctx: Context = Depends(get_context)) -> Any:
    reader = FeatureStoreService(ctx).get_training_set(id_or_digest).reader()
    return StreamingResponse(stream_chunks(reader), media_type=ARROW_STREAM)


@router.post("/materialize")
def materialize(body: MaterializeIn, ctx: Context = Depends(get_context)) -> Any:
    results = FeatureStoreService(ctx).materialize(body.views, end=body.end, full=body.full)
    return [r.model_dump(mode="json") for r in results]


@router.post("/online")
def online(body: OnlineIn, ctx: Context = Depends(get_context)) -> Response:
    result = FeatureStoreService(ctx).online(
        body.entity_rows, body.features, full_names=body.full_names, now=body.now
    )
    return _json(result)


# --- the online lookup's hot path ----------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ONLINE_PATH = "/v1/features/online"


class OnlineLookups:
    """ASGI middleware answering `POST /v1/features/online` ahead of FastAPI's routing,
    dependency solving and endpoint wrappers, which cost several times the lookup itself
    (B4: a served lookup in well under a millisecond of CPU). Same body model, the same
    authentication (`deps.context_for`), service call and error bodies as the `online`
    route above; a body that does not validate goes on to that route for its standard 422."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] != ONLINE_PATH or scope["method"] != "POST":
            await self.app(scope, receive, send)
            return
        body = await _read_body(receive)
        try:
            request = OnlineIn.model_validate_json(body)
        except ValidationError:
            await self.app(scope, _replay(body, receive), send)
            return
        status, content = await _lookup(scope, request)
        await send({
            "type": "http.response.start", "status": status,
            "headers": [(b"content-type", b"application/json"),
                        (b"content-length", str(len(content)).encode())],
        })  # fmt: skip
        await send({"type": "http.response.body", "body": content})


async def _lookup(scope: Scope, body: OnlineIn) -> tuple[int, bytes]:
    authorization = next(
        (v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), ""
    )
    try:
        service = FeatureStoreService(await context_for(scope["app"].state, authorization))
        lookup = partial(
            service.online, body.entity_rows, body.features, full_names=body.full_names,
            now=body.now,
        )  # fmt: skip
        # A first feature.use decision is recorded (a write): in the thread pool, never on
        # the event loop; afterwards the lookup reads memory and a local SQLite file.
        local = service.online_is_local(body.features, full_names=body.full_names)
        result = lookup() if local else await run_in_threadpool(lookup)
    except MeshopsError as exc:
        return exc.http_status, json.dumps(exc.to_json()).encode()
    return 200, result.model_dump_json().encode()


async def _read_body(receive: Receive) -> bytes:
    chunks = []
    while True:
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """`receive` for the next app: the body already read, then the connection's events."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if sent:
            return await receive()
        sent = True
        return {"type": "http.request", "body": body, "more_body": False}

    return replay
