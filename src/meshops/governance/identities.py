"""Principals (users and service accounts) and their role bindings: queries, plus the
per-home cache the authorizer and the authenticator read on every call."""

from __future__ import annotations

import re
import threading
import time
import weakref
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Connection, delete, select

from meshops.governance.models import PLATFORM_SCOPE, Principal, RoleBinding
from meshops.governance.roles import IMPLICIT_ROLE, PLATFORM_ADMIN, get_role
from meshops.governance.store import principals, role_bindings
from meshops.kernel.db import insert_ignoring_conflicts, utcnow
from meshops.kernel.errors import Conflict, InvalidInput, NotFound

NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@\-]{0,199}$")
# Bindings change rarely and are read on every call: cache them briefly per home. Changes
# made in this process invalidate at once; other processes see them within the TTL.
CACHE_TTL_SECONDS = 5.0


def check_name(name: str, what: str = "name") -> str:
    if not NAME.match(name):
        raise InvalidInput(
            f"invalid {what} {name!r}",
            {"field": what, "fix": "use letters, digits and . _ - @ (max 200)"},
        )
    return name


def get_principal(conn: Connection, name: str) -> Principal | None:
    row = conn.execute(select(principals).where(principals.c.name == name)).mappings().first()
    return Principal.model_validate(dict(row)) if row else None


def require_principal(conn: Connection, name: str) -> Principal:
    principal = get_principal(conn, name)
    if principal is None:
        raise NotFound(
            f"no user or service account named {name!r}",
            {"fix": f"create it with `meshops users create {name}`"},
        )
    return principal


def insert_principal(conn: Connection, principal: Principal) -> None:
    if get_principal(conn, principal.name) is not None:
        raise Conflict(
            f"{principal.name!r} already exists", {"field": "name", "fix": "pick another name"}
        )
    conn.execute(principals.insert().values(**principal.model_dump()))


def ensure_principal(conn: Connection, name: str, created_by: str) -> None:
    """Register a principal that already acts (the home's local user) on first need."""
    row = {
        "name": name,
        "kind": "user",
        "display_name": name,
        "email": "",
        "owner": None,
        "disabled": False,
        "created_at": utcnow(),
        "created_by": created_by,
    }
    insert_ignoring_conflicts(conn, principals, [row], ["name"])


def list_principals(conn: Connection) -> list[Principal]:
    rows = conn.execute(select(principals).order_by(principals.c.name)).mappings()
    return [Principal.model_validate(dict(r)) for r in rows]


def stored_bindings(conn: Connection, principal: str | None = None) -> list[RoleBinding]:
    query = select(role_bindings).order_by(role_bindings.c.principal, role_bindings.c.id)
    if principal is not None:
        query = query.where(role_bindings.c.principal == principal)
    return [
        RoleBinding(
            principal=r["principal"],
            role=r["role"],
            scope=r["scope"],
            created_at=r["created_at"],
            created_by=r["created_by"],
        )
        for r in conn.execute(query).mappings()
    ]


def add_binding(conn: Connection, binding: RoleBinding, by: str) -> RoleBinding:
    get_role(binding.role)
    if binding.scope != PLATFORM_SCOPE:
        check_name(binding.scope, "scope")
    row = {
        "principal": binding.principal,
        "role": binding.role,
        "scope": binding.scope,
        "created_at": utcnow(),
        "created_by": by,
    }
    insert_ignoring_conflicts(conn, role_bindings, [row], ["principal", "role", "scope"])
    return RoleBinding(**row)


def remove_binding(conn: Connection, binding: RoleBinding) -> bool:
    result = conn.execute(
        delete(role_bindings).where(
            role_bindings.c.principal == binding.principal,
            role_bindings.c.role == binding.role,
            role_bindings.c.scope == binding.scope,
        )
    )
    return bool(result.rowcount)


def implicit_bindings(name: str, local_user: str) -> list[RoleBinding]:
    """Everyone is a consumer; the home's configured local user is its platform admin."""
    found = [RoleBinding(principal=name, role=IMPLICIT_ROLE, implicit=True)]
    if name == local_user:
        found.append(RoleBinding(principal=name, role=PLATFORM_ADMIN, implicit=True))
    return found


@dataclass
class _Entry:
    at: float
    value: Any


@dataclass
class HomeCache:
    """Bindings and principal states of one home, each kept for `CACHE_TTL_SECONDS`."""

    bindings: dict[str, _Entry] = field(default_factory=dict)
    principals: dict[str, _Entry] = field(default_factory=dict)
    tokens: dict[str, _Entry] = field(default_factory=dict)  # secret digest -> TokenInfo
    lock: threading.Lock = field(default_factory=threading.Lock)

    def clear(self) -> None:
        with self.lock:
            self.bindings.clear()
            self.principals.clear()
            self.tokens.clear()


_caches: weakref.WeakKeyDictionary[Any, HomeCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def cache_of(home: Any) -> HomeCache:
    with _caches_lock:
        cache = _caches.get(home)
        if cache is None:
            cache = _caches[home] = HomeCache()
        return cache


def invalidate(home: Any) -> None:
    cache_of(home).clear()


def cached_bindings(home: Any, name: str) -> list[RoleBinding]:
    cache = cache_of(home)
    entry = cache.bindings.get(name)
    if entry is not None and time.monotonic() - entry.at < CACHE_TTL_SECONDS:
        return list(entry.value)
    with home.db.read() as conn:
        found = stored_bindings(conn, name)
    found += implicit_bindings(name, home.settings.user)
    with cache.lock:
        cache.bindings[name] = _Entry(time.monotonic(), found)
    return found


def cached_principal(home: Any, name: str) -> Principal | None:
    cache = cache_of(home)
    entry = cache.principals.get(name)
    if entry is not None and time.monotonic() - entry.at < CACHE_TTL_SECONDS:
        return entry.value  # type: ignore[no-any-return]
    with home.db.read() as conn:
        principal = get_principal(conn, name)
    with cache.lock:
        cache.principals[name] = _Entry(time.monotonic(), principal)
    return principal


def cached_is_disabled(home: Any, name: str) -> bool:
    principal = cached_principal(home, name)
    return principal is not None and principal.disabled
