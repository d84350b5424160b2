"""Who is calling the server: a bearer API token -> the `Actor` it stands for.

Every route but the health checks and the API docs depends on `api.deps.get_context`,
which calls this; missing, unknown, expired and revoked tokens and disabled principals all
get 401 with the fix. Verified tokens are cached briefly per home, stamped with the
database's change epoch (`kernel.changes`): any commit since the token was read (a
revocation by this process, another worker or the CLI) makes the next request read it
again, so a revoked token is refused at once while an unchanged one costs no query.
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any

from meshops.governance import tokens
from meshops.governance.identities import (
    CACHE_TTL_SECONDS,
    _Entry,
    cache_of,
    cached_principal,
)
from meshops.governance.models import Principal, TokenInfo
from meshops.kernel import changes
from meshops.kernel.auth import Actor
from meshops.kernel.db import utcnow
from meshops.kernel.errors import Unauthenticated

TOKEN_CACHE_SECONDS = 5.0
LAST_USED_RESOLUTION = timedelta(minutes=1)
LOGIN_FIX = "create a token (`meshops tokens create`) and run `meshops login <url> --token ...`"


def _cached_token(home: Any, key: str) -> tuple[bool, TokenInfo | None]:
    """(current, token) for a secret digest: current is False when the cached entry is
    missing, too old or stamped before the last change, and the token must be read."""
    entry = cache_of(home).tokens.get(key)
    if entry is None or time.monotonic() - entry.at >= TOKEN_CACHE_SECONDS:
        return False, None
    stamp, info = entry.value
    return stamp == changes.epoch(home.db), info


def _lookup(home: Any, secret: str) -> TokenInfo | None:
    key = tokens.digest(secret)
    current, cached = _cached_token(home, key)
    if current:
        return cached
    stamp = changes.epoch(home.db)  # taken before the read (see kernel.changes)
    with home.db.read() as conn:
        info = tokens.find_by_secret(conn, secret)
    if info is not None:
        now = utcnow()
        if info.last_used_at is None or now - info.last_used_at > LAST_USED_RESOLUTION:
            with home.db.begin() as conn:
                tokens.touch(conn, info.id, now)
        cache = cache_of(home)
        with cache.lock:
            cache.tokens[key] = _Entry(time.monotonic(), (stamp, info))
    return info


def _actor(info: TokenInfo | None, principal: Principal | None) -> Actor:
    if info is None:
        raise Unauthenticated("unknown API token", {"fix": LOGIN_FIX})
    state = info.state(utcnow())
    if state != "active":
        raise Unauthenticated(
            f"the API token {info.prefix}... is {state}",
            {"token": info.id, "state": state, "fix": LOGIN_FIX},
        )
    if principal is not None and principal.disabled:
        raise Unauthenticated(
            f"{info.principal} is disabled", {"fix": "ask a platform admin to enable the account"}
        )
    kind = principal.kind if principal is not None else "user"
    scopes = frozenset(info.scopes) if info.scopes is not None else None
    return Actor(info.principal, kind, scopes=scopes, expires_at=info.expires_at)


def _require(token: str | None) -> str:
    if not token:
        raise Unauthenticated("this server needs an API token", {"fix": LOGIN_FIX})
    return token


class TokenAuthenticator:
    """The `authenticate` callable of `api.app.create_app` for a governed server, with a
    `cached` variant that never touches the database (for the event loop)."""

    def __call__(self, home: Any, token: str | None) -> Actor:
        info = _lookup(home, _require(token))
        principal = cached_principal(home, info.principal) if info is not None else None
        return _actor(info, principal)

    def cached(self, home: Any, token: str | None) -> Actor | None:
        """The actor from cached, current entries only; None when the database is needed
        (then call the authenticator itself, off the event loop)."""
        current, info = _cached_token(home, tokens.digest(_require(token)))
        if not current:
            return None
        if info is None:
            raise Unauthenticated("unknown API token", {"fix": LOGIN_FIX})
        entry = cache_of(home).principals.get(info.principal)
        if entry is None or time.monotonic() - entry.at >= CACHE_TTL_SECONDS:
            return None
        principal: Principal | None = entry.value
        return _actor(info, principal)


authenticate_token = TokenAuthenticator()
