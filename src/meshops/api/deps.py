"""Request-scoped dependencies shared by every router."""

from __future__ import annotations

from fastapi import Request

from meshops.kernel.home import Context, Home


def get_home(request: Request) -> Home:
    home: Home = request.app.state.home
    return home


def get_context(request: Request) -> Context:
    """The caller's context: the actor comes from the bearer token (see governance)."""
    home = get_home(request)
    header = request.headers.get("authorization", "")
    token = header[7:].strip() if header.lower().startswith("bearer ") else None
    actor = request.app.state.authenticate(home, token)
    return home.context(actor)
