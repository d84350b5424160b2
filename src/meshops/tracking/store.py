"""Tracking tables and the queries behind them (SQLAlchemy Core).

Metric values are append-only rows in `metrics` (no secondary index: the hot insert path
stays a plain append; history reads use the (run_id, key, step) index). The latest value
per (run, key) is kept in `latest_metrics`, which search filters and sorts on.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Index,
    String,
    Table,
    Text,
    and_,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from meshops.kernel.db import BigId, JsonColumn, UtcDateTime, metadata

experiments = Table(
    "tracking_experiments",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("description", Text, nullable=False),
    Column("tags", JsonColumn, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
)

runs = Table(
    "tracking_runs",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("experiment_id", String(32), nullable=False),
    Column("name", String(256), nullable=False),
    Column("status", String(16), nullable=False),
    Column("user", String(200), nullable=False),
    Column("start_time", UtcDateTime, nullable=False),
    Column("end_time", UtcDateTime, nullable=True),
    Column("parent_run_id", String(32), nullable=True),
    Column("error", Text, nullable=True),
    Index("ix_tracking_runs_experiment_start", "experiment_id", "start_time"),
    Index("ix_tracking_runs_parent", "parent_run_id"),
)

params = Table(
    "tracking_params",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_tracking_params_key_run", "key", "run_id"),
)

tags = Table(
    "tracking_tags",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_tracking_tags_key_run", "key", "run_id"),
)

# SQLite stores NaN as NULL, so `value` is nullable and NULL reads back as NaN.
metrics = Table(
    "tracking_metrics",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("key", String(250), nullable=False),
    Column("value", Float, nullable=True),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", Float, nullable=False),
    Index("ix_tracking_metrics_run_key_step", "run_id", "key", "step"),
)

latest_metrics = Table(
    "tracking_latest_metrics",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Float, nullable=True),
    Column("step", BigInteger, nullable=False),
    Column("timestamp", Float, nullable=False),
    Index("ix_tracking_latest_metrics_key_value", "key", "value", "run_id"),
)

artifacts = Table(
    "tracking_artifacts",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("path", String(1000), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
)

inputs = Table(
    "tracking_inputs",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("urn", String(1000), primary_key=True),
    Column("digest", String(128), nullable=False),
    Column("name", String(256), nullable=False),
    Column("context", String(100), nullable=False),
)

MetricRow = tuple[str, str, float, int, float]  # run_id, key, value, step, timestamp

_SQLITE_INSERT_METRIC = (
    "INSERT INTO tracking_metrics (run_id, key, value, step, timestamp) VALUES (?, ?, ?, ?, ?)"
)


def upsert(
    conn: Connection,
    table: Table,
    rows: list[dict[str, Any]],
    index_elements: list[str],
    update_columns: list[str],
    *,
    where: Any = None,
) -> None:
    """INSERT ... ON CONFLICT DO UPDATE on both dialects."""
    if not rows:
        return
    insert = pg_insert if conn.dialect.name == "postgresql" else sqlite_insert
    stmt = insert(table)
    stmt = stmt.on_conflict_do_update(
        index_elements=index_elements,
        set_={c: stmt.excluded[c] for c in update_columns},
        where=where(stmt.excluded) if where is not None else None,
    )
    conn.execute(stmt, rows)


def insert_metric_rows(conn: Connection, rows: Sequence[MetricRow]) -> None:
    """Append metric values; on SQLite through the driver's executemany (the fast path)."""
    if not rows:
        return
    if conn.dialect.name == "sqlite":
        conn.exec_driver_sql(_SQLITE_INSERT_METRIC, rows)
        return
    names = ("run_id", "key", "value", "step", "timestamp")
    conn.execute(metrics.insert(), [dict(zip(names, row, strict=True)) for row in rows])


def latest_of(rows: Iterable[MetricRow]) -> list[dict[str, Any]]:
    """The latest value per (run, key) of a batch: highest step, then newest timestamp."""
    best: dict[tuple[str, str], MetricRow] = {}
    for row in rows:
        ident = (row[0], row[1])
        seen = best.get(ident)
        if seen is None or (row[3], row[4]) >= (seen[3], seen[4]):
            best[ident] = row
    return [
        {"run_id": r[0], "key": r[1], "value": r[2], "step": r[3], "timestamp": r[4]}
        for r in best.values()
    ]


def update_latest_metrics(conn: Connection, rows: Iterable[MetricRow]) -> None:
    upsert(
        conn,
        latest_metrics,
        latest_of(rows),
        ["run_id", "key"],
        ["value", "step", "timestamp"],
        where=lambda new: or_(
            new.step > latest_metrics.c.step,
            and_(new.step == latest_metrics.c.step, new.timestamp >= latest_metrics.c.timestamp),
        ),
    )


def key_values(conn: Connection, table: Table, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """{run_id: {key: value}} of a key/value table for some runs."""
    out: dict[str, dict[str, Any]] = {run_id: {} for run_id in run_ids}
    for chunk in _chunks(run_ids, 500):
        query = select(table.c.run_id, table.c.key, table.c.value).where(table.c.run_id.in_(chunk))
        for run_id, key, value in conn.execute(query):
            out[run_id][key] = value
    return out


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
