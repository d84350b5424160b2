"""Web sessions of the UI: made from an API token at sign-in, ended at sign-out.

The browser holds a random session id (256 bits), never the API token, so signing out
(which deletes the row) ends the session for good: a copied cookie stops working at once.
Only an HMAC of the id, keyed with the home's `session` key (kept outside the database,
`kernel.secrets`), is stored, so neither a leaked database nor someone who can write it
can produce a working cookie. A session lives at most `LIFETIME` and never longer than the
token it was made from; each request re-reads that token, so revoking or expiring the
token (or disabling its principal) ends its sessions too.

The CSRF token of a session is an HMAC of its id with the `csrf` key: forms carry it, and
only a page served to the session's own browser can know it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, delete, select

from meshops.governance import tokens
from meshops.governance.authn import _actor
from meshops.governance.identities import cached_principal
from meshops.governance.store import web_sessions
from meshops.kernel.auth import Actor
from meshops.kernel.config import Settings
from meshops.kernel.db import utcnow
from meshops.kernel.errors import NotFound, Unauthenticated
from meshops.kernel.secrets import derived_key

LIFETIME = timedelta(hours=12)
SIGN_IN_FIX = "sign in again with an API token"


@dataclass(frozen=True)
class WebSession:
    principal: str
    token_id: str | None
    expires_at: datetime


def id_hash(settings: Settings, session_id: str) -> str:
    return hmac.new(
        derived_key(settings, "session"), session_id.encode(), hashlib.sha256
    ).hexdigest()


def csrf_token(settings: Settings, session_id: str) -> str:
    return hmac.new(derived_key(settings, "csrf"), session_id.encode(), hashlib.sha256).hexdigest()


def csrf_ok(settings: Settings, session_id: str, candidate: str) -> bool:
    return hmac.compare_digest(csrf_token(settings, session_id), candidate)


def start(
    home: Any, api_token: str, actor: Actor, *, tokenless: bool = False
) -> tuple[str, WebSession]:
    """A new session for the caller who just signed in with `api_token` (already verified
    by the app's authenticator, which made `actor`); returns (session id, session).
    `tokenless`: the server runs without governance, where any token acts as the local
    user; otherwise the session must come from a stored API token."""
    now = utcnow()
    session_id = secrets.token_urlsafe(32)
    with home.db.begin() as conn:
        info = tokens.find_by_secret(conn, api_token)
        if info is None and not tokenless:
            raise Unauthenticated("unknown API token", {"fix": SIGN_IN_FIX})
        expires = now + LIFETIME
        if info is not None and info.expires_at is not None:
            expires = min(expires, info.expires_at)
        row = WebSession(actor.name, info.id if info is not None else None, expires)
        # Sign-ins are rare: a good moment to forget sessions that can no longer be used.
        conn.execute(delete(web_sessions).where(web_sessions.c.expires_at <= now))
        conn.execute(
            web_sessions.insert().values(
                id_hash=id_hash(home.settings, session_id),
                principal=row.principal,
                token_id=row.token_id,
                created_at=now,
                expires_at=row.expires_at,
            )
        )
    return session_id, row


def end(home: Any, session_id: str) -> None:
    """Sign-out: the session's row is deleted, so its cookie is worthless from now on."""
    with home.db.begin() as conn:
        conn.execute(
            delete(web_sessions).where(web_sessions.c.id_hash == id_hash(home.settings, session_id))
        )


def end_for_token(conn: Connection, token_id: str) -> int:
    """Delete every session made from a token (e.g. when it is revoked); returns how many."""
    result = conn.execute(delete(web_sessions).where(web_sessions.c.token_id == token_id))
    return int(result.rowcount or 0)


def resolve(home: Any, session_id: str, *, tokenless: bool = False) -> Actor:
    """The actor behind a session cookie; Unauthenticated when the session is unknown,
    expired, or its token is no longer active. A session made without a token (`start`
    with `tokenless`) is accepted only by a server that runs without governance."""
    now = utcnow()
    with home.db.read() as conn:
        row = (
            conn.execute(
                select(web_sessions).where(
                    web_sessions.c.id_hash == id_hash(home.settings, session_id)
                )
            )
            .mappings()
            .first()
        )
        if row is None or row["expires_at"] <= now:
            raise Unauthenticated("your web session has ended", {"fix": SIGN_IN_FIX})
        if row["token_id"] is None:
            if not tokenless:
                raise Unauthenticated("your web session has ended", {"fix": SIGN_IN_FIX})
            return Actor(row["principal"])
        try:
            info = tokens.get(conn, row["token_id"])
        except NotFound as exc:
            raise Unauthenticated("the session's API token is gone", {"fix": SIGN_IN_FIX}) from exc
    return _actor(info, cached_principal(home, info.principal))
