"""Access requests and grants: queries and the checks a grant's row filter must pass.

A grant gives one principal access to one product port (every version), may name
classified columns it shows unmasked, may carry a row filter (a SQL predicate the read path
applies) and may expire; revoking it ends it at once.
"""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, or_, select, update

from meshops.governance.models import AccessRequest, Grant
from meshops.governance.store import access_requests, grants
from meshops.kernel.errors import InvalidInput, NotFound

# A row filter is a predicate over the port's own columns, never a way to read elsewhere.
_FORBIDDEN = re.compile(
    r"(;|--|/\*|\b(select|from|copy|attach|detach|pragma|install|load|export|import|call|"
    r"create|insert|update|delete|drop|alter|set)\b|\bread_\w+|\bglob\s*\()",
    re.IGNORECASE,
)


def check_row_filter(predicate: str | None) -> str | None:
    """Accept a single SQL predicate (DuckDB dialect) over the port's columns."""
    if predicate is None or not predicate.strip():
        return None
    found = _FORBIDDEN.search(predicate)
    if found:
        raise InvalidInput(
            f"row filter may not contain {found.group(0)!r}",
            {
                "field": "row_filter",
                "fix": "write a predicate over the port's columns, e.g. region = 'EU'",
            },
        )
    import duckdb  # only row filters need the SQL parser; reads that check grants do not

    try:
        statements = duckdb.extract_statements(f"SELECT * FROM t WHERE ({predicate})")
    except duckdb.Error as exc:
        raise InvalidInput(
            f"row filter is not a valid SQL predicate: {str(exc).splitlines()[0]}",
            {"field": "row_filter", "fix": "e.g. region = 'EU' AND amount < 1000"},
        ) from exc
    if len(statements) != 1:
        raise InvalidInput("row filter must be one predicate", {"field": "row_filter"})
    # The syntax-tree check the read path repeats: no table, no refused function (imported
    # here, like duckdb above: reads that only check grants need neither).
    from meshops.kernel.sandbox import check_predicate

    return check_predicate(predicate.strip())


def new_id() -> str:
    return uuid.uuid4().hex


def insert_request(
    conn: Connection, request: AccessRequest, classification: dict[str, str]
) -> None:
    conn.execute(
        access_requests.insert().values(
            **request.model_dump(exclude={"owners"}),
            owners=request.owners,
            classification=classification,
        )
    )


def get_request(conn: Connection, request_id: str) -> tuple[AccessRequest, dict[str, str]]:
    row = (
        conn.execute(select(access_requests).where(access_requests.c.id == request_id))
        .mappings()
        .first()
    )
    if row is None:
        raise NotFound(
            f"no access request {request_id!r}", {"fix": "list them with `meshops access list`"}
        )
    return _request(row), dict(row["classification"])


def list_requests(
    conn: Connection,
    status: str | None = None,
    product: str | None = None,
    requester: str | None = None,
) -> list[AccessRequest]:
    query = select(access_requests).order_by(access_requests.c.created_at)
    if status:
        query = query.where(access_requests.c.status == status)
    if product:
        query = query.where(access_requests.c.product == product)
    if requester:
        query = query.where(access_requests.c.requester == requester)
    return [_request(r) for r in conn.execute(query).mappings()]


def set_request_decision(conn: Connection, request_id: str, **values: Any) -> None:
    conn.execute(update(access_requests).where(access_requests.c.id == request_id).values(**values))


def insert_grant(conn: Connection, grant: Grant) -> None:
    conn.execute(grants.insert().values(**grant.model_dump()))


def get_grant(conn: Connection, grant_id: str) -> Grant:
    row = conn.execute(select(grants).where(grants.c.id == grant_id)).mappings().first()
    if row is None:
        raise NotFound(f"no grant {grant_id!r}", {"fix": "list them with `meshops access grants`"})
    return Grant.model_validate(dict(row))


def list_grants(
    conn: Connection,
    product: str | None = None,
    grantee: str | None = None,
    active_at: datetime | None = None,
) -> list[Grant]:
    query = select(grants).order_by(grants.c.granted_at)
    if product:
        query = query.where(grants.c.product == product)
    if grantee:
        query = query.where(grants.c.grantee == grantee)
    if active_at is not None:
        query = query.where(
            grants.c.revoked_at.is_(None),
            or_(grants.c.expires_at.is_(None), grants.c.expires_at > active_at),
        )
    return [Grant.model_validate(dict(r)) for r in conn.execute(query).mappings()]


def active_grant(
    conn: Connection, product: str, port: str, grantee: str, now: datetime
) -> Grant | None:
    """The most recent active grant of `grantee` on the port."""
    query = (
        select(grants)
        .where(
            grants.c.product == product,
            grants.c.port == port,
            grants.c.grantee == grantee,
            grants.c.revoked_at.is_(None),
            or_(grants.c.expires_at.is_(None), grants.c.expires_at > now),
        )
        .order_by(grants.c.granted_at.desc())
        .limit(1)
    )
    row = conn.execute(query).mappings().first()
    return Grant.model_validate(dict(row)) if row else None


def revoke_grant(conn: Connection, grant_id: str, by: str, at: datetime) -> None:
    conn.execute(update(grants).where(grants.c.id == grant_id).values(revoked_at=at, revoked_by=by))


def _request(row: Any) -> AccessRequest:
    data = dict(row)
    data.pop("classification", None)
    return AccessRequest.model_validate(data)
