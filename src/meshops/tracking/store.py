"""Tracking tables and the queries behind them (SQLAlchemy Core).

Metric values are append-only columnar chunks in `metric_chunks`; the latest value per
(run, key) is kept in `latest_metrics`, which search filters and sorts on.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import numpy as np
from sqlalchemy import (
    BigInteger,
    Column,
    Connection,
    Float,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    and_,
    bindparam,
    or_,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.sql import Select

from meshops.kernel.db import BigId, JsonColumn, UtcDateTime, metadata

experiments = Table(
    "tracking_experiments",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("name", String(256), nullable=False, unique=True),
    Column("description", Text, nullable=False),
    Column("tags", JsonColumn, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    # "active" or "deleted" (a deleted experiment can be restored; tracking_0004)
    Column("lifecycle_stage", String(16), nullable=False, server_default="active"),
    Column("deleted_at", UtcDateTime, nullable=True),
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
    Column("lifecycle_stage", String(16), nullable=False, server_default="active"),
    Column("deleted_at", UtcDateTime, nullable=True),
    Index("ix_tracking_runs_experiment_start", "experiment_id", "start_time"),
    Index("ix_tracking_runs_parent", "parent_run_id"),
)

SHORT_PARAM_VALUE = 1000  # characters: the PostgreSQL (key, value) index covers shorter ones

params = Table(
    "tracking_params",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_tracking_params_key_run", "key", "run_id"),
    # Search by value (params.model = 'rf'). PostgreSQL b-tree entries are limited to
    # ~2.7 kB, so there the index covers the (usual) short values only.
    Index(
        "ix_tracking_params_key_value",
        "key",
        "value",
        "run_id",
        postgresql_where=text("length(value) < 1000"),
    ),
)

tags = Table(
    "tracking_tags",
    metadata,
    Column("run_id", String(32), primary_key=True),
    Column("key", String(250), primary_key=True),
    Column("value", Text, nullable=False),
    Index("ix_tracking_tags_key_run", "key", "run_id"),
)

# Metric values are stored as columnar chunks: one row per (run, key) and flushed batch,
# holding little-endian float64 values, int64 steps and float64 timestamps. Appending 100k
# values is then one small INSERT instead of 100k index updates (see docs/tracking.md).
metric_chunks = Table(
    "tracking_metric_chunks",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("run_id", String(32), nullable=False),
    Column("key", String(250), nullable=False),
    Column("count", Integer, nullable=False),
    Column("min_step", BigInteger, nullable=False),
    Column("max_step", BigInteger, nullable=False),
    Column("values", LargeBinary, nullable=False),
    Column("steps", LargeBinary, nullable=False),
    Column("timestamps", LargeBinary, nullable=False),
    Index("ix_tracking_metric_chunks_run_key", "run_id", "key", "id"),
)

# SQLite stores NaN as NULL, so `value` is nullable and NULL reads back as NaN.
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

# Models logged by a run or on their own (MLflow 3 "logged models", `m-<hex>` ids): their
# files are a tree of their own, like a run's artifacts.
logged_models = Table(
    "tracking_logged_models",
    metadata,
    Column("id", String(40), primary_key=True),
    Column("experiment_id", String(32), nullable=False),
    Column("run_id", String(32), nullable=True),
    Column("name", String(256), nullable=False),
    Column("model_type", String(256), nullable=True),
    Column("status", String(16), nullable=False),  # PENDING | READY | FAILED
    Column("status_message", Text, nullable=True),
    Column("params", JsonColumn, nullable=False),
    Column("tags", JsonColumn, nullable=False),
    Column("user", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("lifecycle_stage", String(16), nullable=False, server_default="active"),
    Index("ix_tracking_logged_models_experiment", "experiment_id", "created_at"),
    Index("ix_tracking_logged_models_run", "run_id"),
)

model_artifacts = Table(
    "tracking_model_artifacts",
    metadata,
    Column("model_id", String(40), primary_key=True),
    Column("path", String(1000), primary_key=True),
    Column("digest", String(64), nullable=False),
    Column("size", BigInteger, nullable=False),
)

MetricRow = tuple[str, str, float, int, float]  # run_id, key, value, step, timestamp


@dataclass(frozen=True)
class MetricColumns:
    """A checked batch of metric values, as columns grouped by (run, key)."""

    groups: dict[tuple[str, str], np.ndarray[Any, Any]]  # (run, key) -> row positions
    values: np.ndarray[Any, Any]
    steps: np.ndarray[Any, Any]
    timestamps: np.ndarray[Any, Any]

    @property
    def run_ids(self) -> set[str]:
        return {run_id for run_id, _ in self.groups}

    @property
    def keys(self) -> set[str]:
        return {key for _, key in self.groups}


def to_columns(rows: Sequence[Sequence[Any]]) -> MetricColumns:
    """Rows (run_id, key, value, step, timestamp) to typed columns; raises ValueError or
    TypeError on anything that is not numbers where numbers belong.

    Columns are pulled out with list comprehensions (no `zip(*rows)` and no per-row pair
    tuples: building 50k small tuples per flush set off the garbage collector and cost
    more than the SQL)."""
    if set(map(len, rows)) != {5}:
        raise ValueError("every row has 5 fields: run_id, key, value, step, timestamp")
    run_ids = [row[0] for row in rows]
    keys = [row[1] for row in rows]
    value_col = np.asarray([row[2] for row in rows], dtype=np.float64)
    step_col = np.asarray([row[3] for row in rows], dtype=np.int64)
    stamp_col = np.asarray([row[4] for row in rows], dtype=np.float64)
    if value_col.ndim != 1 or step_col.ndim != 1 or stamp_col.ndim != 1:
        raise ValueError("value, step and timestamp are single numbers")
    distinct_runs = dict.fromkeys(run_ids)
    distinct_keys = dict.fromkeys(keys)
    if len(distinct_runs) == 1 and len(distinct_keys) == 1:
        groups = {(run_ids[0], keys[0]): np.arange(len(rows))}
    else:
        pairs = list(zip(run_ids, keys, strict=True))
        distinct = dict.fromkeys(pairs)
        code_of = {pair: code for code, pair in enumerate(distinct)}
        codes = np.fromiter((code_of[p] for p in pairs), dtype=np.int64, count=len(pairs))
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(distinct) + 1))
        groups = {pair: order[bounds[code] : bounds[code + 1]] for pair, code in code_of.items()}
    return MetricColumns(groups, value_col, step_col, stamp_col)


def insert_metric_columns(conn: Connection, batch: MetricColumns) -> None:
    """Append one chunk per (run, key) and move each latest value forward."""
    chunks, latest = [], []
    for (run_id, key), positions in batch.groups.items():
        values = batch.values[positions]
        steps = batch.steps[positions]
        stamps = batch.timestamps[positions]
        chunks.append(
            {
                "run_id": run_id,
                "key": key,
                "count": len(positions),
                "min_step": int(steps.min()),
                "max_step": int(steps.max()),
                "values": values.astype("<f8").tobytes(),
                "steps": steps.astype("<i8").tobytes(),
                "timestamps": stamps.astype("<f8").tobytes(),
            }
        )
        last = int(np.lexsort((stamps, steps))[-1])  # highest step, then newest timestamp
        value = float(values[last])
        latest.append(
            {
                "run_id": run_id,
                "key": key,
                "value": None if math.isnan(value) else value,
                "step": int(steps[last]),
                "timestamp": float(stamps[last]),
            }
        )
    conn.execute(_CHUNK_INSERT, chunks)
    conn.execute(_latest_upsert(conn.dialect.name), latest)


# Built once: constructing the upsert's expression tree cost a third of a one-value write
# (MLflow clients send one value per request; B12).
_CHUNK_INSERT = metric_chunks.insert()
_LATEST_UPSERTS: dict[str, Any] = {}


def _latest_upsert(dialect: str) -> Any:
    """INSERT ... ON CONFLICT DO UPDATE of latest values: a value moves forward only
    (a higher step, or the same step logged at the same time or later)."""
    statement = _LATEST_UPSERTS.get(dialect)
    if statement is None:
        insert = pg_insert if dialect == "postgresql" else sqlite_insert
        new = insert(latest_metrics)
        statement = new.on_conflict_do_update(
            index_elements=["run_id", "key"],
            set_={c: new.excluded[c] for c in ("value", "step", "timestamp")},
            where=or_(
                new.excluded.step > latest_metrics.c.step,
                and_(
                    new.excluded.step == latest_metrics.c.step,
                    new.excluded.timestamp >= latest_metrics.c.timestamp,
                ),
            ),
        )
        _LATEST_UPSERTS[dialect] = statement
    return statement


def metric_history(
    conn: Connection, run_id: str, key: str
) -> tuple[np.ndarray[Any, Any], np.ndarray[Any, Any], np.ndarray[Any, Any]]:
    """(values, steps, timestamps) of one metric, ordered by step then logging order."""
    c = metric_chunks.c
    query = (
        select(c["values"], c.steps, c.timestamps)
        .where(c.run_id == run_id, c.key == key)
        .order_by(c.id)
    )
    parts = list(conn.execute(query))
    if not parts:
        empty = np.empty(0)
        return empty, np.empty(0, dtype=np.int64), empty
    values = np.concatenate([np.frombuffer(p[0], dtype="<f8") for p in parts])
    steps = np.concatenate([np.frombuffer(p[1], dtype="<i8") for p in parts])
    stamps = np.concatenate([np.frombuffer(p[2], dtype="<f8") for p in parts])
    order = np.argsort(steps, kind="stable")
    return values[order], steps[order], stamps[order]


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


def key_values(conn: Connection, table: Table, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    """{run_id: {key: value}} of a key/value table for some runs (one query per 1,000)."""
    out: dict[str, dict[str, Any]] = {run_id: {} for run_id in run_ids}
    query = _by_runs(table, ("run_id", "key", "value"))
    for chunk in _chunks(run_ids, RUNS_PER_QUERY):
        for run_id, key, value in conn.execute(query, {"run_ids": chunk}):
            out[run_id][key] = value
    return out


def latest_metric_details(
    conn: Connection, run_ids: list[str]
) -> dict[str, dict[str, tuple[int, float]]]:
    """{run_id: {key: (step, timestamp)}} of each metric's latest value."""
    out: dict[str, dict[str, tuple[int, float]]] = {run_id: {} for run_id in run_ids}
    query = _by_runs(latest_metrics, ("run_id", "key", "step", "timestamp"))
    for chunk in _chunks(run_ids, RUNS_PER_QUERY):
        for run_id, key, step, stamp in conn.execute(query, {"run_ids": chunk}):
            out[run_id][key] = (int(step), float(stamp))
    return out


# Search pages load the rows of up to 1,000 runs per table in one statement, built once:
# an expanding IN parameter keeps SQLAlchemy's compiled form cached (a page of 1,000 runs
# read through fresh 500-id statements spent more time building SQL than running it).
RUNS_PER_QUERY = 1_000
_BY_RUNS: dict[tuple[str, tuple[str, ...]], Select[Any]] = {}


def _by_runs(table: Table, columns: tuple[str, ...]) -> Select[Any]:
    query = _BY_RUNS.get((table.name, columns))
    if query is None:
        query = select(*(table.c[name] for name in columns)).where(
            table.c.run_id.in_(bindparam("run_ids", expanding=True))
        )
        _BY_RUNS[(table.name, columns)] = query
    return query


def _chunks(items: list[str], size: int) -> Iterable[list[str]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def bulk_insert(
    conn: Connection, table: Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """New rows into `table` the fastest way each dialect has: COPY on PostgreSQL (its
    executemany is several times slower), one prepared INSERT run for every row on SQLite.
    Values go to the driver as they are (no SQLAlchemy type processing): text, numbers,
    bytes and None only. Runs in `conn`'s transaction (and unit of work)."""
    if not rows:
        return
    names = ", ".join(f'"{column}"' for column in columns)
    if conn.dialect.name == "postgresql":
        driver = conn.connection.driver_connection
        assert driver is not None  # a checked-out connection always has one
        with (
            driver.cursor() as cursor,
            cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy,
        ):
            for row in rows:
                copy.write_row(row)
        return
    marks = ", ".join("?" for _ in columns)
    conn.exec_driver_sql(f"INSERT INTO {table.name} ({names}) VALUES ({marks})", list(rows))


@contextmanager
def page_cache(conn: Connection, kib: int) -> Iterator[None]:
    """On SQLite, a page cache of `kib` KiB for `conn` inside the block, the connection's
    own size restored after it (which frees the pages); elsewhere nothing."""
    if conn.dialect.name != "sqlite":
        yield
        return
    before = conn.exec_driver_sql("PRAGMA cache_size").scalar_one()
    conn.exec_driver_sql(f"PRAGMA cache_size=-{int(kib)}")
    try:
        yield
    finally:
        conn.exec_driver_sql(f"PRAGMA cache_size={int(before)}")
