"""The UI's route class: errors become pages (not the API's JSON), no session -> login,
and every state-changing request is checked against cross-site forgery first."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any
from urllib.parse import quote

from fastapi import Request, Response
from fastapi.responses import RedirectResponse
from fastapi.routing import APIRoute

from meshops.kernel.errors import MeshopsError
from meshops.ui.web import LoginRequired, check_same_site, templates

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class UIRoute(APIRoute):
    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()

        async def route(request: Request) -> Response:
            try:
                await check_same_site(request)
                return await handler(request)
            except LoginRequired as exc:
                target = f"/ui/login?next={quote(exc.next_url, safe='')}"
                if exc.message:
                    target += f"&error={quote(exc.message)}"
                return RedirectResponse(target, status_code=303)
            except MeshopsError as exc:
                return templates.TemplateResponse(
                    request,
                    "error.html",
                    {"error": exc, "user": None, "session": None, "active": ""},
                    status_code=exc.http_status,
                )

        return route
