"""What every page shares: the templates, the signed-in user, permission checks, links.

Signing in with an API token starts a server-side web session (`governance.sessions`); the
browser keeps only the session's random id, in an HttpOnly, SameSite=Strict cookie scoped
to `/ui` (Secure under HTTPS). Each request resolves the session and re-checks the token
it was made from, so signing out, or revoking or expiring the token, ends it at once, and
a page sees exactly what the token's owner may see. Every state-changing request must come
from this site (Origin/Referer) and carry the session's CSRF token (`csrf_token` in each
form), see `check_same_site`. Pages never touch a store: they call services built on the
caller's `Context`, which authorise again.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode, urlsplit

from fastapi import Request
from fastapi.templating import Jinja2Templates
from markdown_it import MarkdownIt
from markupsafe import Markup

from meshops.governance import sessions
from meshops.kernel.errors import Forbidden, MeshopsError, Unauthenticated
from meshops.kernel.home import Context, Home

HERE = Path(__file__).parent
COOKIE = "meshops_session"
COOKIE_PATH = "/ui"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "x-csrf-token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
LOGIN_PATH = "/ui/login"
CSRF_FIX = "reload the page (or sign in again) and submit the form from it"

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
    session_id: str

    @property
    def user(self) -> str:
        return self.ctx.actor.name

    @property
    def csrf(self) -> str:
        """The token every form of this session carries (checked by `check_same_site`)."""
        return sessions.csrf_token(self.ctx.home.settings, self.session_id)

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
    """The page's caller, from the session cookie (FastAPI dependency)."""
    home: Home = request.app.state.home
    session_id = request.cookies.get(COOKIE)
    next_url = request.url.path + (f"?{request.url.query}" if request.url.query else "")
    if not session_id:
        raise LoginRequired(next_url)
    try:
        actor = sessions.resolve(home, session_id, tokenless=ungoverned(request))
    except Unauthenticated as exc:
        raise LoginRequired(next_url, exc.message) from exc
    return Session(home.context(actor), request, session_id)


def ungoverned(request: Request) -> bool:
    """Does this server run without governance (any token acts as the local user)?"""
    from meshops.api.app import local_user

    return bool(request.app.state.authenticate is local_user)


async def check_same_site(request: Request) -> None:
    """Refuse (Forbidden) a state-changing request that another site could have made: its
    Origin (else Referer), when sent, must be this server's, and a signed-in browser's
    request must carry the session's CSRF token (a form field, or the X-CSRF-Token header).
    Sign-in has no session yet: the origin check covers it."""
    if request.method in SAFE_METHODS:
        return
    _check_origin(request)
    session_id = request.cookies.get(COOKIE)
    if request.url.path == LOGIN_PATH or not session_id:
        return  # no session: nothing to ride on (the page itself asks to sign in)
    candidate = request.headers.get(CSRF_HEADER)
    if candidate is None:
        form = await request.form()
        value = form.get(CSRF_FIELD)
        candidate = value if isinstance(value, str) else None
    if not candidate:
        raise Forbidden("the form carries no CSRF token", {"field": CSRF_FIELD, "fix": CSRF_FIX})
    if not sessions.csrf_ok(request.app.state.home.settings, session_id, candidate):
        raise Forbidden(
            "the form's CSRF token does not belong to your session",
            {"field": CSRF_FIELD, "fix": CSRF_FIX},
        )


def _check_origin(request: Request) -> None:
    base = request.base_url  # scheme and host only: a root path is not part of an origin
    own = f"{base.scheme}://{base.netloc}".lower()
    origin = request.headers.get("origin")
    source = "Origin"
    if origin is None and request.headers.get("referer"):
        parts = urlsplit(request.headers["referer"])
        origin, source = f"{parts.scheme}://{parts.netloc}", "Referer"
    if origin is not None and origin.rstrip("/").lower() != own:
        raise Forbidden(
            f"cross-site request refused: {source} {origin[:200]!r} is not {own!r}",
            {"field": source.lower(), "fix": f"use the pages served by {own}"},
        )


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
    if kind in ("job", "oldataset") and len(rest) == 2:  # received OpenLineage events
        from meshops.kernel.openlineage_ingest import unescape

        namespace = unescape(rest[0])  # a dataset's namespace says where it lives
        return unescape(rest[1]), f"job ({namespace})" if kind == "job" else namespace
    if kind == "olrun":
        return rest[0][:13], "OpenLineage run"
    return _other_label(kind, rest)


KIND_NAMES = {
    "pipelinerun": "pipeline run",
    "steprun": "pipeline step run",
    "featureview": "feature view",
    "featureservice": "feature service",
    "endpoint": "endpoint",
    "experiment": "experiment",
}


def _other_label(kind: str, rest: list[str]) -> tuple[str, str]:
    """Ids are cut to a copyable prefix; a training set's digest goes to the kind line."""
    if kind == "trainingset" and len(rest) > 1:
        return rest[0], f"training set {rest[1][:8]}"
    name = KIND_NAMES.get(kind, kind)
    if kind in ("pipelinerun", "steprun"):
        return rest[0][:12], name
    return ":".join(rest), name


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
