"""Serving routes written by hand: the predict and feedback data plane
(`meshops.serving.endpoint_app`, shared with `meshops serve`) and the shutdown that writes
the buffered prediction log. Endpoints, traffic, the prediction log and batch scoring are
derived from the declarations of `meshops.serving.interface.Serving` (`meshops.api.rpc`)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import APIRouter, FastAPI
from starlette.concurrency import run_in_threadpool

from meshops.serving import endpoint_app
from meshops.serving.runtime import close_runtime


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    yield
    # Graceful shutdown: in-flight requests are done; write the buffered prediction log.
    await run_in_threadpool(close_runtime, app.state.home)


router = APIRouter(tags=["serving"], lifespan=lifespan)
router.include_router(endpoint_app.router)
