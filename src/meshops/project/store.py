"""Project tables: applied objects (with the git commit they came from), approvals of model
versions, and webhook deliveries (replay protection)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Column,
    Connection,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    delete,
    select,
)
from sqlalchemy.exc import IntegrityError

from meshops.kernel.db import BigId, JsonColumn, UtcDateTime, metadata
from meshops.project.models import AppliedObject, Approval, WebhookDelivery

project_applied = Table(
    "project_applied",
    metadata,
    Column("project", String(200), primary_key=True),
    Column("urn", String(500), primary_key=True),
    Column("kind", String(50), nullable=False),
    Column("name", String(300), nullable=False),
    Column("digest", String(64), nullable=False),
    Column("git_commit", String(64), nullable=True),
    Column("applied_at", UtcDateTime, nullable=False),
    Column("applied_by", String(200), nullable=False),
    Column("detail", JsonColumn, nullable=False),
)

project_approvals = Table(
    "project_approvals",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("model", String(200), nullable=False),
    Column("version", Integer, nullable=False),
    Column("approver", String(200), nullable=False),
    Column("role", String(100), nullable=False),
    Column("comment", Text, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    UniqueConstraint("model", "version", "approver", name="uq_project_approvals"),
)

project_webhook_deliveries = Table(
    "project_webhook_deliveries",
    metadata,
    Column("delivery_id", String(200), primary_key=True),
    Column("source", String(200), nullable=False),
    Column("event", String(100), nullable=False),
    Column("received_at", UtcDateTime, nullable=False),
    Column("status", String(20), nullable=False),
    Column("detail", JsonColumn, nullable=False),
    Index("ix_project_webhook_deliveries_received", "received_at"),
)


def _applied(row: Any) -> AppliedObject:
    return AppliedObject(
        project=row["project"],
        urn=row["urn"],
        kind=row["kind"],
        name=row["name"],
        digest=row["digest"],
        commit=row["git_commit"],
        applied_at=row["applied_at"],
        applied_by=row["applied_by"],
        detail=dict(row["detail"]),
    )


def applied(conn: Connection, project: str | None = None) -> list[AppliedObject]:
    query = select(project_applied).order_by(project_applied.c.kind, project_applied.c.name)
    if project is not None:
        query = query.where(project_applied.c.project == project)
    return [_applied(r) for r in conn.execute(query).mappings()]


def get_applied(conn: Connection, project: str, urn: str) -> AppliedObject | None:
    row = (
        conn.execute(
            select(project_applied).where(
                project_applied.c.project == project, project_applied.c.urn == urn
            )
        )
        .mappings()
        .first()
    )
    return _applied(row) if row else None


def put_applied(conn: Connection, obj: AppliedObject) -> None:
    conn.execute(
        delete(project_applied).where(
            project_applied.c.project == obj.project, project_applied.c.urn == obj.urn
        )
    )
    conn.execute(
        project_applied.insert().values(
            project=obj.project,
            urn=obj.urn,
            kind=obj.kind,
            name=obj.name,
            digest=obj.digest,
            git_commit=obj.commit,
            applied_at=obj.applied_at,
            applied_by=obj.applied_by,
            detail=obj.detail,
        )
    )


def delete_applied(conn: Connection, project: str, urn: str) -> None:
    conn.execute(
        delete(project_applied).where(
            project_applied.c.project == project, project_applied.c.urn == urn
        )
    )


def add_approval(conn: Connection, approval: Approval) -> bool:
    """False when this approver already approved this version."""
    try:
        with conn.begin_nested():
            conn.execute(
                project_approvals.insert().values(
                    model=approval.model,
                    version=approval.version,
                    approver=approval.approver,
                    role=approval.role,
                    comment=approval.comment,
                    at=approval.at,
                )
            )
    except IntegrityError:
        return False
    return True


def approvals(conn: Connection, model: str, version: int) -> list[Approval]:
    rows = conn.execute(
        select(project_approvals)
        .where(project_approvals.c.model == model, project_approvals.c.version == version)
        .order_by(project_approvals.c.id)
    ).mappings()
    return [
        Approval(
            model=r["model"],
            version=r["version"],
            approver=r["approver"],
            role=r["role"],
            comment=r["comment"],
            at=r["at"],
        )
        for r in rows
    ]


def claim_delivery(
    conn: Connection, delivery_id: str, source: str, event: str, at: datetime
) -> bool:
    """Record a delivery id; False if it was seen before (a replay)."""
    try:
        with conn.begin_nested():
            conn.execute(
                project_webhook_deliveries.insert().values(
                    delivery_id=delivery_id,
                    source=source,
                    event=event,
                    received_at=at,
                    status="recorded",
                    detail={},
                )
            )
    except IntegrityError:
        return False
    return True


def finish_delivery(
    conn: Connection, delivery_id: str, status: str, detail: dict[str, Any]
) -> None:
    conn.execute(
        project_webhook_deliveries.update()
        .where(project_webhook_deliveries.c.delivery_id == delivery_id)
        .values(status=status, detail=detail)
    )


def deliveries(conn: Connection, limit: int = 100) -> list[WebhookDelivery]:
    rows = conn.execute(
        select(project_webhook_deliveries)
        .order_by(project_webhook_deliveries.c.received_at.desc())
        .limit(limit)
    ).mappings()
    return [
        WebhookDelivery(
            delivery_id=r["delivery_id"],
            source=r["source"],
            event=r["event"],
            received_at=r["received_at"],
            status=r["status"],
            detail=dict(r["detail"]),
        )
        for r in rows
    ]
