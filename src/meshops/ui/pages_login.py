"""Signing in with an API token and out again."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse

from meshops.kernel.errors import Unauthenticated
from meshops.ui.routing import UIRoute
from meshops.ui.web import COOKIE, COOKIE_PATH, templates

router = APIRouter(prefix="/ui", route_class=UIRoute)

COOKIE_MAX_AGE = 12 * 3600


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
    try:
        actor = request.app.state.authenticate(request.app.state.home, token or None)
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
        token,
        max_age=COOKIE_MAX_AGE,
        path=COOKIE_PATH,
        httponly=True,
        samesite="lax",
        secure=request.url.scheme == "https",
    )
    response.headers["x-meshops-user"] = actor.name
    return response


@router.post("/logout", include_in_schema=False)
def logout() -> Any:
    response = RedirectResponse("/ui/login", status_code=303)
    response.delete_cookie(COOKIE, path=COOKIE_PATH)
    return response
