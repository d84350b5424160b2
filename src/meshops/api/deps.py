"""Request-scoped dependencies shared by every router."""

from __future__ import annotations

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from meshops.kernel.home import Context, Home


def get_home(request: Request) -> Home:
    home: Home = request.app.state.home
    return home


async def get_context(request: Request) -> Context:
    """The caller's context: the actor comes from the bearer token (see governance).

    A token verified recently and unchanged since is answered on the event loop (no thread
    hop: this runs on every request); otherwise the authenticator reads the database in
    the thread pool, never blocking the loop."""
    home = get_home(request)
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    authenticate = request.app.state.authenticate
    cached = getattr(authenticate, "cached", None)
    actor = cached(home, token) if cached is not None else None
    if actor is None:
        actor = await run_in_threadpool(authenticate, home, token)
    return home.context(actor)
