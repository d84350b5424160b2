"""Who is calling the server: a bearer API token -> the `Actor` it stands for.

Every route but the health checks and the API docs depends on `api.deps.get_context`,
which calls this; missing, unknown, expired and revoked tokens and disabled principals all
get 401 with the fix. Verified tokens are cached briefly per home (revocations made in the
same process invalidate the cache at once).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from meshops.governance import tokens
from meshops.governance.identities import _Entry, cache_of, cached_principal
from meshops.governance.models import TokenInfo
from meshops.kernel.auth import Actor
from meshops.kernel.db import utcnow
from meshops.kernel.errors import Unauthenticated

TOKEN_CACHE_SECONDS = 5.0
LAST_USED_RESOLUTION = timedelta(minutes=1)
LOGIN_FIX = "create a token (`meshops tokens create`) and run `meshops login <url> --token ...`"


def _lookup(home: Any, secret: str) -> tuple[TokenInfo | None, str]:
    cache = cache_of(home)
    key = tokens.digest(secret)
    entry = cache.tokens.get(key)
    if entry is not None and time.monotonic() - entry.at < TOKEN_CACHE_SECONDS:
        return entry.value, key
    with home.db.read() as conn:
        info = tokens.find_by_secret(conn, secret)
    if info is not None:
        now = utcnow()
        if info.last_used_at is None or now - info.last_used_at > LAST_USED_RESOLUTION:
            with home.db.begin() as conn:
                tokens.touch(conn, info.id, now)
        with cache.lock:
            cache.tokens[key] = _Entry(time.monotonic(), info)
    return info, key


def authenticate_token(home: Any, token: str | None) -> Actor:
    """The `authenticate` callable of `api.app.create_app` for a governed server."""
    if not token:
        raise Unauthenticated("this server needs an API token", {"fix": LOGIN_FIX})
    info, _ = _lookup(home, token)
    if info is None:
        raise Unauthenticated("unknown API token", {"fix": LOGIN_FIX})
    state = info.state(utcnow())
    if state != "active":
        raise Unauthenticated(
            f"the API token {info.prefix}... is {state}",
            {"token": info.id, "state": state, "fix": LOGIN_FIX},
        )
    principal = cached_principal(home, info.principal)
    if principal is not None and principal.disabled:
        raise Unauthenticated(
            f"{info.principal} is disabled", {"fix": "ask a platform admin to enable the account"}
        )
    kind = principal.kind if principal is not None else "user"
    scopes = frozenset(info.scopes) if info.scopes is not None else None
    return Actor(info.principal, kind, scopes=scopes)
