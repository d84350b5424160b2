"""Feature store routes written by hand; the rest are derived from the declarations of
`meshops.features.interface.FeatureStore` (`meshops.api.rpc`).

Here: training sets (entity rows in as one Arrow stream or SQL, the data streamed out as
Arrow record batches), materialization (one view per call from the SDK, for progress) and
`OnlineLookups`, the online lookup's fast path ahead of its derived route."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, MutableMapping
from datetime import datetime
from functools import partial
from typing import Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import Response, StreamingResponse
from pydantic import BaseModel, ValidationError, create_model

from meshops.api.deps import context_for, get_context
from meshops.features.interface import FeatureStore
from meshops.features.models import MaterializeResult, TrainingSetInfo
from meshops.features.service import FeatureStoreService
from meshops.kernel.errors import InvalidInput, MeshopsError
from meshops.kernel.home import Context
from meshops.kernel.rpc import operations
from meshops.kernel.wire import ARROW_STREAM, decode_table, stream_chunks

# Operation ids as the derived routes name theirs: area_method.
router = APIRouter(prefix="/v1/features", tags=["features"])


class MaterializeIn(BaseModel):
    views: list[str] | None = None
    end: datetime | None = None
    full: bool = False


@router.post("/training-sets", operation_id="features_training_set")
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
) -> TrainingSetInfo:
    """A training set of the entity rows in the body (an Arrow IPC stream) or of `sql`."""
    if not feature and not service:
        raise InvalidInput(
            "name the features (feature=view:name, repeated) or a feature service (service=)",
            {"field": "feature"},
        )
    entities: Any = sql or decode_table(await request.body(), "body")
    features: list[str] | str = service or list(feature or [])

    def run() -> TrainingSetInfo:
        result = FeatureStoreService(ctx).training_set(
            entities, features, name=name, timestamp_column=timestamp_column,
            full_names=full_names,
        )  # fmt: skip
        return result.info

    return await run_in_threadpool(run)


@router.get("/training-sets/{id_or_digest}", operation_id="features_get_training_set")
def get_training_set(id_or_digest: str, ctx: Context = Depends(get_context)) -> TrainingSetInfo:
    return FeatureStoreService(ctx).get_training_set(id_or_digest).info


@router.get("/training-sets/{id_or_digest}/data", operation_id="features_training_set_data")
def training_set_data(id_or_digest: str, ctx: Context = Depends(get_context)) -> Response:
    reader = FeatureStoreService(ctx).get_training_set(id_or_digest).reader()
    return StreamingResponse(stream_chunks(reader), media_type=ARROW_STREAM)


@router.post("/materialize", operation_id="features_materialize")
def materialize(
    body: MaterializeIn, ctx: Context = Depends(get_context)
) -> list[MaterializeResult]:
    return FeatureStoreService(ctx).materialize(body.views, end=body.end, full=body.full)


# --- the online lookup's hot path ----------------------------------------------------------

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
ONLINE = next(op for op in operations(FeatureStore) if op.name == "online")
# The body of the derived route, built from the same declaration: the two cannot differ.
_ONLINE_FIELDS: dict[str, Any] = {
    p.name: (p.hint, ... if p.required else p.default) for p in ONLINE.where("body")
}
OnlineIn = create_model("OnlineIn", **_ONLINE_FIELDS)


class OnlineLookups:
    """ASGI middleware answering `POST /v1/features/online` ahead of FastAPI's routing,
    dependency solving and endpoint wrappers, which cost several times the lookup itself
    (B4: a served lookup in well under a millisecond of CPU). Same body, the same
    authentication (`deps.context_for`), service call and error bodies as the derived
    route of `FeatureStore.online`; a body that does not validate goes on to that route for
    its standard 422."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = ONLINE.declaration.path
        if scope["type"] != "http" or scope["path"] != path or scope["method"] != "POST":
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


async def _lookup(scope: Scope, body: Any) -> tuple[int, bytes]:
    authorization = next(
        (v.decode("latin-1") for k, v in scope["headers"] if k == b"authorization"), ""
    )
    try:
        service = FeatureStoreService(await context_for(scope["app"].state, authorization))
        lookup = partial(
            service.online, body.entity_rows, body.features, service=body.service,
            full_names=body.full_names, now=body.now,
        )  # fmt: skip
        # A first feature.use decision is recorded (a write): in the thread pool, never on
        # the event loop; afterwards the lookup reads memory and a local SQLite file.
        local = service.online_is_local(
            body.features, service=body.service, full_names=body.full_names
        )
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
