"""What every page shares: the templates, the signed-in user, permission checks, links.

The session is the API token itself, kept in an HttpOnly, SameSite=Strict cookie scoped to
`/ui`; each request resolves it with the same `authenticate` callable the API uses
(`app.state.authenticate`), so revoked or expired tokens stop working at once and a page
sees exactly what the token's owner may see. Pages never touch a store: they call services
built on the caller's `Context`, which authorise again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from markupsafe import Markup

from meshops.kernel.errors import Forbidden, MeshopsError, Unauthenticated
from meshops.kernel.home import Context, Home

HERE = Path(__file__).parent
COOKIE = "meshops_token"
COOKIE_PATH = "/ui"

templates = Jinja2Templates(directory=str(HERE / "templates"))
_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


class LoginRequired(Exception):
    """Raised by `session` when the request carries no valid token; answered by a redirect."""

    def __init__(self, next_url: str, message: str = "") -> None:
        super().__init__(message)
        self.next_url = next_url
        self.message = message


@dataclass(frozen=True)
class Session:
    ctx: Context
    request: Request

    @property
    def user(self) -> str:
        return self.ctx.actor.name

    def can(self, action: str, domain: str | None = None) -> bool:
        """Would the service allow this? Used to decide which links and buttons to show."""
        try:
            self.ctx.authorize(action, domain)
        except Forbidden:
            return False
        return True

    def render(self, template: str, status_code: int = 200, **values: Any) -> Any:
        values.setdefault("active", template.rsplit(".", 1)[0])
        return templates.TemplateResponse(
            self.request,
            template,
            {"session": self, "user": self.user, **values},
            status_code=status_code,
        )


def session(request: Request) -> Session:
    """The page's caller, from the token cookie (FastAPI dependency)."""
    home: Home = request.app.state.home
    token = request.cookies.get(COOKIE)
    next_url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not token:
        raise LoginRequired(next_url)
    try:
        actor = request.app.state.authenticate(home, token)
    except Unauthenticated as exc:
        raise LoginRequired(next_url, exc.message) from exc
    return Session(home.context(actor), request)


def attempt(call: Any, *args: Any, **kwargs: Any) -> Any:
    """Run a read that the user may not be allowed to make: None when forbidden or absent."""
    try:
        return call(*args, **kwargs)
    except (Forbidden, MeshopsError):
        return None


def markdown(text: str) -> Markup:
    """CommonMark without raw HTML; markdown-it refuses javascript:/data: links itself."""
    return Markup(_markdown.render(text or ""))


def urn_href(urn: str) -> str | None:
    """The page showing the object a URN names, if there is one."""
    parts = urn.split(":")
    if len(parts) < 3 or parts[0] != "meshops":
        return None
    kind, rest = parts[1], parts[2:]
    if kind == "dataproduct" and rest:
        query = f"?version={quote(rest[1])}" if len(rest) > 1 else ""
        return f"/ui/products/{quote(rest[0])}{query}"
    if kind == "model" and rest:
        query = f"?version={quote(rest[1])}" if len(rest) > 1 else ""
        return f"/ui/models/{quote(rest[0])}{query}"
    if kind == "run" and rest:
        return f"/ui/runs/{quote(rest[0])}"
    if kind == "endpoint" and rest:
        return f"/ui/endpoints/{quote(rest[0])}"
    if kind == "monitor" and rest:
        return f"/ui/monitors/{quote(rest[0])}"
    if kind == "pipelinerun" and rest:
        return f"/ui/pipelines/runs/{quote(rest[0])}"
    if kind == "experiment" and rest:
        return f"/ui/experiments/{quote(rest[0])}"
    return None


def urn_label(urn: str) -> tuple[str, str]:
    """(label, kind line) of a URN for a graph node."""
    parts = urn.split(":")
    if len(parts) < 3:
        return urn, ""
    kind, rest = parts[1], parts[2:]
    if kind == "dataproduct":
        return rest[0], f"data product {rest[1] if len(rest) > 1 else ''}".strip()
    if kind == "model":
        return rest[0], f"model version {rest[1] if len(rest) > 1 else ''}".strip()
    if kind == "run":
        return rest[0][:12], "tracking run"
    if kind == "monitor":
        return rest[0][:12], "monitor"
    if kind == "source":
        return rest[-1].rsplit("/", 1)[-1], f"source ({rest[0]})"
    if kind in ("artifact", "monitorresult", "alert"):
        return rest[-1][:14], kind
    return ":".join(rest), kind


def query_string(request: Request, **changes: Any) -> str:
    """The current query with some parameters changed (None removes one)."""
    params = dict(request.query_params)
    for key, value in changes.items():
        if value is None:
            params.pop(key, None)
        else:
            params[key] = str(value)
    return "?" + urlencode(params) if params else "?"


def ago(value: datetime | None) -> str:
    if value is None:
        return "—"
    when = value if value.tzinfo else value.replace(tzinfo=UTC)
    seconds = (datetime.now(UTC) - when).total_seconds()
    for unit, size in (("d", 86400), ("h", 3600), ("min", 60)):
        if seconds >= size:
            return f"{int(seconds // size)} {unit} ago"
    return "just now"


def fmt_number(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}"
    if isinstance(value, int):
        return f"{value:,}"
    return str(value)


templates.env.filters["ago"] = ago
templates.env.filters["num"] = fmt_number
templates.env.filters["urn_href"] = urn_href
templates.env.globals["query_string"] = query_string
