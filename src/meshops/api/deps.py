"""Request-scoped dependencies shared by every router."""

from __future__ import annotations

from fastapi import Request

from meshops.kernel.edge import context_for
from meshops.kernel.home import Context, Home

__all__ = ["context_for", "get_context", "get_home"]


def get_home(request: Request) -> Home:
    home: Home = request.app.state.home
    return home


async def get_context(request: Request) -> Context:
    """The caller's context: the actor comes from the bearer token (see governance)."""
    return await context_for(request.app.state, request.headers.get("authorization", ""))
