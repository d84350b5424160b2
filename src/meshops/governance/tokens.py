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
from meshops.kernel.db import utcnow
from meshops.kernel.errors import InvalidInput, NotFound
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


def create(
    conn: Connection,
    principal: str,
    name: str,
    scopes: list[str] | None,
    expires_in: timedelta | None,
) -> tuple[str, TokenInfo]:
    secret = new_secret()
    now = utcnow()
    row = {
        "id": uuid.uuid4().hex,
        "principal": principal,
        "name": name,
        "secret_hash": digest(secret),
        "prefix": secret[:SHOWN_PREFIX_LENGTH],
        "scopes": check_scopes(scopes),
        "created_at": now,
        "expires_at": now + expires_in if expires_in is not None else None,
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
