"""Request-scoped dependencies shared by every router."""

from __future__ import annotations

from typing import Any

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from meshops.kernel.home import Context, Home


def get_home(request: Request) -> Home:
    home: Home = request.app.state.home
    return home


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


async def get_context(request: Request) -> Context:
    """The caller's context: the actor comes from the bearer token (see governance)."""
    return await context_for(request.app.state, request.headers.get("authorization", ""))
