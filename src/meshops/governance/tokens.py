"""API tokens: random secrets shown once, stored as SHA-256 digests.

A token looks like `msh_<43 url-safe characters>` (256 bits from `secrets`). Only its
SHA-256 digest and the first characters (to recognise it in listings) are stored, so a
leaked database does not leak usable tokens. SHA-256 without salt or stretching is enough
here because the secrets are uniformly random, not human passwords.
"""

from __future__ import annotations

import hashlib
import secrets
import uuid
from datetime import datetime, timedelta
from fnmatch import fnmatchcase
from typing import Any

from sqlalchemy import Connection, select, update

from meshops.governance.models import TokenInfo
from meshops.governance.store import tokens
from meshops.kernel.auth import Actor
from meshops.kernel.db import utcnow
from meshops.kernel.errors import Forbidden, InvalidInput, NotFound
from meshops.kernel.permissions import ACTIONS

TOKEN_PREFIX = "msh_"
SHOWN_PREFIX_LENGTH = 12


def new_secret() -> str:
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def check_scopes(scopes: list[str] | None) -> list[str] | None:
    """Scopes are action patterns; each must match at least one catalogued action."""
    if scopes is None:
        return None
    for scope in scopes:
        if not any(fnmatchcase(action, scope) for action in ACTIONS):
            raise InvalidInput(
                f"token scope {scope!r} matches no action",
                {"field": "scopes", "fix": "use actions or patterns such as 'tracking.*'"},
            )
    return sorted(set(scopes))


def _actions(patterns: list[str] | frozenset[str]) -> set[str]:
    return {a for a in ACTIONS if any(fnmatchcase(a, p) for p in patterns)}


def within_caller(
    actor: Actor, scopes: list[str] | None, expires_in: timedelta | None, now: datetime
) -> tuple[list[str] | None, timedelta | None]:
    """The scopes and lifetime of a token `actor` creates, no wider than the token it acts
    with: scopes a subset of its own (none asked: its own), expiry no later than its own
    (none asked: its own). Otherwise a scoped or expiring token could mint an unscoped,
    never-expiring one, for its own principal or (with identity.write) another."""
    if actor.scopes is not None:
        if scopes is None:
            scopes = sorted(actor.scopes)
        wider = sorted(_actions(check_scopes(scopes) or []) - _actions(actor.scopes))
        if wider:
            raise Forbidden(
                f"a token may only create tokens within its own scopes; {wider[:5]} are not",
                {"field": "scopes", "own_scopes": sorted(actor.scopes),
                 "fix": "ask for a subset of the scopes of the token you use"},
            )  # fmt: skip
    if actor.expires_at is not None:
        left = actor.expires_at - now
        if expires_in is None:
            expires_in = left
        elif expires_in > left:
            raise Forbidden(
                "a token may not create a token that outlives it",
                {"field": "expires_in_days", "expires_at": actor.expires_at.isoformat(),
                 "fix": "ask for an expiry no later than that of the token you use"},
            )  # fmt: skip
    return scopes, expires_in


def create(
    conn: Connection,
    principal: str,
    name: str,
    scopes: list[str] | None,
    expires_in: timedelta | None,
    *,
    not_after: datetime | None = None,
) -> tuple[str, TokenInfo]:
    """A new token; `not_after` caps its expiry (the expiry of the token creating it)."""
    secret = new_secret()
    now = utcnow()
    expires_at = now + expires_in if expires_in is not None else None
    if not_after is not None:
        expires_at = min(expires_at or not_after, not_after)
    row = {
        "id": uuid.uuid4().hex,
        "principal": principal,
        "name": name,
        "secret_hash": digest(secret),
        "prefix": secret[:SHOWN_PREFIX_LENGTH],
        "scopes": check_scopes(scopes),
        "created_at": now,
        "expires_at": expires_at,
        "revoked_at": None,
        "last_used_at": None,
    }
    conn.execute(tokens.insert().values(**row))
    return secret, _info(row)


def find_by_secret(conn: Connection, secret: str) -> TokenInfo | None:
    row = conn.execute(select(tokens).where(tokens.c.secret_hash == digest(secret))).mappings()
    first = row.first()
    return _info(first) if first else None


def get(conn: Connection, token_id: str) -> TokenInfo:
    row = conn.execute(select(tokens).where(tokens.c.id == token_id)).mappings().first()
    if row is None:
        raise NotFound(f"no token {token_id!r}", {"fix": "list tokens with `meshops tokens list`"})
    return _info(row)


def list_for(conn: Connection, principal: str | None) -> list[TokenInfo]:
    query = select(tokens).order_by(tokens.c.created_at)
    if principal is not None:
        query = query.where(tokens.c.principal == principal)
    return [_info(r) for r in conn.execute(query).mappings()]


def revoke(conn: Connection, token_id: str, at: datetime) -> None:
    conn.execute(update(tokens).where(tokens.c.id == token_id).values(revoked_at=at))


def touch(conn: Connection, token_id: str, at: datetime) -> None:
    conn.execute(update(tokens).where(tokens.c.id == token_id).values(last_used_at=at))


def _info(row: Any) -> TokenInfo:
    return TokenInfo(
        id=row["id"],
        principal=row["principal"],
        name=row["name"],
        prefix=row["prefix"],
        scopes=list(row["scopes"]) if row["scopes"] is not None else None,
        created_at=row["created_at"],
        expires_at=row["expires_at"],
        revoked_at=row["revoked_at"],
        last_used_at=row["last_used_at"],
    )
