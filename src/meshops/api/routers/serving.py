"""Serving: endpoints, traffic, the prediction log and batch scoring (the predict and
feedback data plane comes from `meshops.serving.endpoint_app`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, FastAPI
from fastapi.responses import Response
from pydantic import BaseModel, Field
from starlette.concurrency import run_in_threadpool

from meshops.api.deps import get_context
from meshops.kernel.bounds import Percent
from meshops.kernel.home import Context
from meshops.serving import endpoint_app
from meshops.serving.models import Endpoint, RolledLog
from meshops.serving.runtime import close_runtime
from meshops.serving.service import ServingService


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    # Graceful shutdown: in-flight requests are done; write the buffered prediction log.
    await run_in_threadpool(close_runtime, app.state.home)


router = APIRouter(tags=["serving"], lifespan=lifespan)
router.include_router(endpoint_app.router)


class EndpointIn(BaseModel):
    name: str
    model: str
    domain: str | None = None
    canary: str | None = None
    canary_percent: Percent = 0.0
    shadows: list[str] = Field(default_factory=list)
    features: list[str] | str | None = None
    entity_keys: list[str] | None = None
    description: str = ""
    trust_model_code: bool = False


class TrafficIn(BaseModel):
    model: str | None = None
    canary: str | None = None
    canary_percent: Percent = 0.0
    shadows: list[str] = Field(default_factory=list)
    trust_model_code: bool | None = None


class BatchIn(BaseModel):
    model: str
    product: str
    version: str | None = None
    output: str
    output_version: str | None = None
    port: str | None = None
    keep_columns: list[str] | None = None
    trust_model_code: bool = False


@router.post("/v1/endpoints", status_code=201)
def create_endpoint(body: EndpointIn, ctx: Context = Depends(get_context)) -> Endpoint:
    return ServingService(ctx).create_endpoint(
        body.name,
        body.model,
        domain=body.domain,
        canary=body.canary,
        canary_percent=body.canary_percent,
        shadows=body.shadows,
        features=body.features,
        entity_keys=body.entity_keys,
        description=body.description,
        trust_model_code=body.trust_model_code,
    )


@router.get("/v1/endpoints")
def list_endpoints(
    domain: str | None = None, ctx: Context = Depends(get_context)
) -> list[Endpoint]:
    return ServingService(ctx).list_endpoints(domain)


@router.get("/v1/endpoints/{name}")
def get_endpoint(name: str, ctx: Context = Depends(get_context)) -> Endpoint:
    return ServingService(ctx).get_endpoint(name)


@router.put("/v1/endpoints/{name}/traffic")
def set_traffic(name: str, body: TrafficIn, ctx: Context = Depends(get_context)) -> Endpoint:
    return ServingService(ctx).set_traffic(
        name,
        model=body.model,
        canary=body.canary,
        canary_percent=body.canary_percent,
        shadows=body.shadows,
        trust_model_code=body.trust_model_code,
    )


@router.delete("/v1/endpoints/{name}", status_code=204)
def delete_endpoint(name: str, ctx: Context = Depends(get_context)) -> Response:
    ServingService(ctx).delete_endpoint(name)
    return Response(status_code=204)


@router.get("/v1/endpoints/{name}/predictions")
def prediction_window(
    name: str,
    *,
    start: datetime | None = None,
    end: datetime | None = None,
    with_labels: bool = True,
    include_shadow: bool = False,
    ctx: Context = Depends(get_context),
) -> Response:
    """The window as an Arrow IPC stream (what `RemoteServing.prediction_window` reads)."""
    import pyarrow as pa

    table = ServingService(ctx).prediction_window(
        name, start, end, with_labels=with_labels, include_shadow=include_shadow
    )
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return Response(
        content=sink.getvalue().to_pybytes(), media_type="application/vnd.apache.arrow.stream"
    )


@router.post("/v1/endpoints/{name}/log/roll")
def roll_log(name: str, ctx: Context = Depends(get_context)) -> RolledLog:
    return ServingService(ctx).roll_log(name)


@router.post("/v1/serving/batch", status_code=201)
def batch_score(body: BatchIn, ctx: Context = Depends(get_context)) -> Any:
    version = ServingService(ctx).batch_score(
        body.model,
        body.product,
        body.version,
        output=body.output,
        output_version=body.output_version,
        port=body.port,
        keep_columns=body.keep_columns,
        trust_model_code=body.trust_model_code,
    )
    return version.model_dump(mode="json")
