"""Monitoring tables and their queries (SQLAlchemy Core on the shared metadata)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Column,
    Connection,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
    select,
    update,
)

from meshops.kernel.db import BigId, JsonColumn, UtcDateTime, metadata

monitors = Table(
    "monitors",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(200), nullable=False, unique=True),
    Column("kind", String(40), nullable=False),
    Column("domain", String(200), nullable=True),
    Column("endpoint", String(200), nullable=True),
    Column("model", String(200), nullable=True),
    Column("spec", JsonColumn, nullable=False),
    Column("reference_blob", String(64), nullable=True),
    Column("reference_rows", BigInteger, nullable=True),
    Column("enabled", Boolean, nullable=False),
    Column("next_run_at", UtcDateTime, nullable=True),
    Column("last_run_at", UtcDateTime, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    Index("ix_monitors_next_run_at", "next_run_at"),
    Index("ix_monitors_endpoint", "endpoint"),
)

monitor_rules = Table(
    "monitor_rules",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("monitor_id", String(32), ForeignKey("monitors.id"), nullable=False),
    Column("name", String(200), nullable=False),
    Column("metric", String(300), nullable=False),
    Column("op", String(4), nullable=False),
    Column("value", Float, nullable=False),
    Column("severity", String(20), nullable=False),
    Column("webhook_url", Text, nullable=True),
    Column("auto_resolve", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("monitor_id", "name", name="uq_monitor_rules_monitor_name"),
)

monitor_results = Table(
    "monitor_results",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("monitor_id", String(32), ForeignKey("monitors.id"), nullable=False),
    Column("status", String(10), nullable=False),
    Column("summary", Text, nullable=False),
    Column("metrics", JsonColumn, nullable=False),
    Column("details", JsonColumn, nullable=False),
    Column("window_start", UtcDateTime, nullable=True),
    Column("window_end", UtcDateTime, nullable=True),
    Column("reference_rows", BigInteger, nullable=False),
    Column("current_rows", BigInteger, nullable=False),
    Column("started_at", UtcDateTime, nullable=False),
    Column("finished_at", UtcDateTime, nullable=False),
    Column("report_blob", String(64), nullable=True),
    Index("ix_monitor_results_monitor", "monitor_id", "id"),
)

monitor_feature_results = Table(
    "monitor_feature_results",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("result_id", BigId, ForeignKey("monitor_results.id"), nullable=False),
    Column("monitor_id", String(32), nullable=False),
    Column("feature", String(300), nullable=False),
    Column("kind", String(20), nullable=False),
    Column("method", String(30), nullable=False),
    Column("score", Float, nullable=False),
    Column("threshold", Float, nullable=False),
    Column("drifted", Boolean, nullable=False),
    Column("reference_rows", BigInteger, nullable=False),
    Column("current_rows", BigInteger, nullable=False),
    Column("histogram", JsonColumn, nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Index("ix_monitor_feature_results_history", "monitor_id", "feature", "result_id"),
    Index("ix_monitor_feature_results_result", "result_id"),
)

monitor_alerts = Table(
    "monitor_alerts",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("monitor_id", String(32), ForeignKey("monitors.id"), nullable=False),
    Column("rule_id", BigInteger, nullable=False),
    Column("rule_name", String(200), nullable=False),
    Column("state", String(20), nullable=False),
    Column("severity", String(20), nullable=False),
    Column("summary", Text, nullable=False),
    Column("metric", String(300), nullable=False),
    Column("value", Float, nullable=False),
    Column("first_result_id", BigInteger, nullable=False),
    Column("last_result_id", BigInteger, nullable=False),
    Column("occurrences", Integer, nullable=False),
    Column("opened_at", UtcDateTime, nullable=False),
    Column("last_seen_at", UtcDateTime, nullable=False),
    Column("acknowledged_at", UtcDateTime, nullable=True),
    Column("acknowledged_by", String(200), nullable=True),
    Column("resolved_at", UtcDateTime, nullable=True),
    Column("resolved_by", String(200), nullable=True),
    Column("note", Text, nullable=False),
    Column("webhook_status", Text, nullable=True),
    # "<monitor>:<rule>" while the alert is not resolved, NULL after: the unique index is
    # what deduplicates alerts (NULLs never collide on SQLite nor PostgreSQL).
    Column("open_key", String(300), nullable=True, unique=True),
    Index("ix_monitor_alerts_state", "state", "id"),
    Index("ix_monitor_alerts_monitor", "monitor_id", "id"),
)


def monitor_row(conn: Connection, name_or_id: str) -> dict[str, Any] | None:
    row = (
        conn.execute(
            select(monitors).where((monitors.c.id == name_or_id) | (monitors.c.name == name_or_id))
        )
        .mappings()
        .first()
    )
    return dict(row) if row else None


def list_monitor_rows(
    conn: Connection, endpoint: str | None = None, kind: str | None = None
) -> list[dict[str, Any]]:
    query = select(monitors).order_by(monitors.c.name)
    if endpoint:
        query = query.where(monitors.c.endpoint == endpoint)
    if kind:
        query = query.where(monitors.c.kind == kind)
    return [dict(r) for r in conn.execute(query).mappings()]


def due_monitor_rows(conn: Connection, now: datetime) -> list[dict[str, Any]]:
    query = (
        select(monitors)
        .where(monitors.c.enabled.is_(True), monitors.c.next_run_at <= now)
        .order_by(monitors.c.next_run_at, monitors.c.name)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def rule_rows(conn: Connection, monitor_id: str) -> list[dict[str, Any]]:
    query = select(monitor_rules).where(monitor_rules.c.monitor_id == monitor_id)
    return [dict(r) for r in conn.execute(query.order_by(monitor_rules.c.id)).mappings()]


def result_rows(conn: Connection, monitor_id: str, limit: int) -> list[dict[str, Any]]:
    query = (
        select(monitor_results)
        .where(monitor_results.c.monitor_id == monitor_id)
        .order_by(monitor_results.c.id.desc())
        .limit(limit)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def result_row(conn: Connection, result_id: int) -> dict[str, Any] | None:
    row = (
        conn.execute(select(monitor_results).where(monitor_results.c.id == result_id))
        .mappings()
        .first()
    )
    return dict(row) if row else None


def feature_rows_of_result(conn: Connection, result_id: int) -> list[dict[str, Any]]:
    query = (
        select(monitor_feature_results)
        .where(monitor_feature_results.c.result_id == result_id)
        .order_by(monitor_feature_results.c.id)
    )
    return [dict(r) for r in conn.execute(query).mappings()]


def feature_history_rows(
    conn: Connection, monitor_id: str, feature: str | None, limit: int
) -> list[dict[str, Any]]:
    """The last `limit` runs' feature results, oldest first (histograms left out)."""
    recent_ids = (
        select(monitor_results.c.id)
        .where(monitor_results.c.monitor_id == monitor_id)
        .order_by(monitor_results.c.id.desc())
        .limit(limit)
        .scalar_subquery()
    )
    columns = [c for c in monitor_feature_results.c if c.name != "histogram"]
    query = select(*columns).where(
        monitor_feature_results.c.monitor_id == monitor_id,
        monitor_feature_results.c.result_id.in_(recent_ids),
    )
    if feature:
        query = query.where(monitor_feature_results.c.feature == feature)
    query = query.order_by(monitor_feature_results.c.result_id, monitor_feature_results.c.id)
    return [dict(r) for r in conn.execute(query).mappings()]


def open_alert_row(conn: Connection, open_key: str) -> dict[str, Any] | None:
    row = (
        conn.execute(select(monitor_alerts).where(monitor_alerts.c.open_key == open_key))
        .mappings()
        .first()
    )
    return dict(row) if row else None


def alert_row(conn: Connection, alert_id: int) -> dict[str, Any] | None:
    row = (
        conn.execute(select(monitor_alerts).where(monitor_alerts.c.id == alert_id))
        .mappings()
        .first()
    )
    return dict(row) if row else None


def alert_rows(
    conn: Connection,
    states: Sequence[str] | None,
    monitor_id: str | None,
    limit: int,
) -> list[dict[str, Any]]:
    query = select(monitor_alerts).order_by(monitor_alerts.c.id.desc()).limit(limit)
    if states:
        query = query.where(monitor_alerts.c.state.in_(list(states)))
    if monitor_id:
        query = query.where(monitor_alerts.c.monitor_id == monitor_id)
    return [dict(r) for r in conn.execute(query).mappings()]


def update_alert(conn: Connection, alert_id: int, **values: Any) -> None:
    conn.execute(update(monitor_alerts).where(monitor_alerts.c.id == alert_id).values(**values))
