"""Request-scoped dependencies shared by every router."""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from meshops.kernel import steps
from meshops.kernel.edge import context_for
from meshops.kernel.home import Context, Home

__all__ = ["context_for", "get_context", "get_home"]


def get_home(request: Request) -> Home:
    home: Home = request.app.state.home
    return home


async def get_context(request: Request) -> Context:
    """The caller's context: the actor comes from the bearer token (see governance).

    A request from inside a pipeline step names its step (`x-meshops-step`, sent by the
    SDK); the step becomes the request's `kernel.steps.current_step()`, so what the call
    creates is linked to the step run (`Context.link_to_step`), only once the server's
    state confirms it (`pipelines.step_claims.verify`): a claim the server cannot confirm
    is refused, never believed. Every request sets it (None without the header), so no
    step leaks from one request into another."""
    ctx = await context_for(request.app.state, request.headers.get("authorization", ""))
    claim = request.headers.get(steps.HEADER)
    verified = None
    if claim is not None:
        from meshops.pipelines.step_claims import verify

        verified = await run_in_threadpool(verify, ctx, steps.parse_header(claim))
    steps.enter(verified)  # this request's task (and the threads it calls) only
    return ctx
