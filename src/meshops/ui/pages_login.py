"""Signing in with an API token (which starts a web session) and out again (which ends it)."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from meshops.governance import sessions
from meshops.kernel.errors import Unauthenticated
from meshops.ui.routing import UIRoute
from meshops.ui.web import COOKIE, COOKIE_PATH, templates, ungoverned

router = APIRouter(prefix="/ui", route_class=UIRoute)


def _safe_next(next_url: str) -> str:
    """Only local UI paths (no open redirect to another site)."""
    return next_url if next_url.startswith("/ui") and not next_url.startswith("//") else "/ui"


@router.get("/login", include_in_schema=False)
def login_form(request: Request, next: str = "/ui", error: str = "") -> Any:
    return templates.TemplateResponse(
        request,
        "login.html",
        {"next": _safe_next(next), "error": error, "user": None, "session": None, "active": ""},
    )


@router.post("/login", include_in_schema=False)
def login(request: Request, token: str = Form(""), next: str = Form("/ui")) -> Any:
    token = token.strip()
    home = request.app.state.home
    try:
        actor = request.app.state.authenticate(home, token or None)
        previous = request.cookies.get(COOKIE)
        if previous:  # signing in again replaces the browser's session, it does not add one
            sessions.end(home, previous)
        session_id, web_session = sessions.start(home, token, actor, tokenless=ungoverned(request))
    except Unauthenticated as exc:
        return templates.TemplateResponse(
            request,
            "login.html",
            {
                "next": _safe_next(next),
                "error": exc.message,
                "user": None,
                "session": None,
                "active": "",
            },
            status_code=401,
        )
    response = RedirectResponse(_safe_next(next), status_code=303)
    response.set_cookie(
        COOKIE,
        session_id,
        expires=web_session.expires_at,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    response.headers["x-meshops-user"] = actor.name
    return response


@router.post("/logout", include_in_schema=False)
def logout(request: Request) -> Any:
    """Ends the session on the server (the CSRF check ran first: another site cannot sign
    the user out), so the cookie, even copied elsewhere, no longer works."""
    session_id = request.cookies.get(COOKIE)
    if session_id:
        sessions.end(request.app.state.home, session_id)
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(
        COOKIE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return response
