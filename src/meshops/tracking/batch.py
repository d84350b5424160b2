"""Batch run creation (`Tracking.create_runs`): many whole runs in one transaction.

Every run is checked before anything is written, and an error names the run's index and
field (`runs[3].params.lr`), so a request is all or nothing. The rows of each table are then
written in bulk (`store.bulk_insert`: executemany on SQLite, COPY on PostgreSQL). Run ids
are new, so params, tags and latest metrics are plain inserts (nothing to conflict with);
each metric key of a run becomes one chunk of `tracking_metric_chunks` and its latest value
is the one `store.insert_metric_columns` keeps: highest step, then newest timestamp, then
the last logged.
"""

from __future__ import annotations

import math
import secrets
import struct
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection

from meshops.kernel.bounds import (
    MAX_METRIC_VALUES_PER_BATCH,
    MAX_METRIC_VALUES_PER_RUN,
    MAX_PARAMS_PER_RUN,
    MAX_RUNS_PER_BATCH,
)
from meshops.kernel.errors import InvalidInput
from meshops.tracking import store
from meshops.tracking.models import (
    ERROR_MAX,
    PARAM_VALUE_MAX,
    TAG_VALUE_MAX,
    Metric,
    RunSpec,
    RunStatus,
    as_text,
    check_key,
    check_name,
    check_value,
)

MIN_STEP, MAX_STEP = -(2**63), 2**63 - 1  # a step is a BIGINT
KEY_VALUE_COLUMNS = ("run_id", "key", "value")
CHUNK_COLUMNS = ("run_id", "key", "count", "min_step", "max_step", "values", "steps", "timestamps")
LATEST_COLUMNS = ("run_id", "key", "value", "step", "timestamp")
# SQLite's page cache while a batch is written: 10,000 runs touch tens of thousands of index
# pages (run ids are random), which the default 2 MB cache would spill to disk mid-write.
BATCH_CACHE_KIB = 256 * 1024


# A batch's run ids: a random prefix shared by the batch, the run's position in it, then
# random digits. The rows of one batch then land side by side in every index that starts
# with the run id (an insert into one place of the B-tree instead of 10,000 random places,
# which at 1M runs made each request rewrite most of those indexes' pages), while the
# short forms that tables print stay distinct within a batch (8 characters: prefix and
# position) and in practice across batches (12: plus 4 random digits).
PREFIX_DIGITS, POSITION_DIGITS, ID_DIGITS = 4, 4, 32  # 16**4 > MAX_RUNS_PER_BATCH
TAIL_DIGITS = ID_DIGITS - PREFIX_DIGITS - POSITION_DIGITS


def new_ids(count: int) -> list[str]:
    """`count` new run ids, in ascending order, grouped as described above; as unique as a
    uuid4 (96 random bits per id, 16 more per batch)."""
    if count > 16**POSITION_DIGITS:
        raise ValueError(f"at most {16**POSITION_DIGITS:,} ids per batch")
    prefix = secrets.token_hex(PREFIX_DIGITS // 2)
    tails = secrets.token_hex(count * TAIL_DIGITS // 2)  # one read of the OS's randomness
    return [
        f"{prefix}{position:0{POSITION_DIGITS}x}"
        f"{tails[position * TAIL_DIGITS : (position + 1) * TAIL_DIGITS]}"
        for position in range(count)
    ]


@dataclass
class PreparedRuns:
    """The checked rows of a batch, per table, ready to insert."""

    runs: list[dict[str, Any]] = field(default_factory=list)  # experiment_id not yet set
    experiments: list[str] = field(default_factory=list)  # per run, as the caller named it
    params: list[tuple[str, str, str]] = field(default_factory=list)
    tags: list[tuple[str, str, str]] = field(default_factory=list)
    chunks: list[tuple[Any, ...]] = field(default_factory=list)
    latest: list[tuple[Any, ...]] = field(default_factory=list)

    @property
    def ids(self) -> list[str]:
        return [row["id"] for row in self.runs]


def prepare(
    specs: Sequence[RunSpec], ids: Sequence[str], user: str, extra_tags: dict[str, str]
) -> PreparedRuns:
    """Check every run of the batch and turn it into rows; raises InvalidInput naming the
    first bad run (`runs[i]`) and field before anything is written."""
    _check_batch_size(specs)
    now = datetime.now(UTC)
    known_keys: set[tuple[str, str]] = set()  # (kind, key) pairs already checked
    prepared = PreparedRuns()
    for index, (spec, run_id) in enumerate(zip(specs, ids, strict=True)):
        with _at(index):
            prepared.runs.append(_run_row(spec, run_id, user, now))
            prepared.experiments.append(check_name(spec.experiment, "experiment"))
            tags = {**_clean(spec.tags, "tag", TAG_VALUE_MAX, known_keys), **extra_tags}
            prepared.tags += [(run_id, key, value) for key, value in tags.items()]
            params = _clean(spec.params, "param", PARAM_VALUE_MAX, known_keys)
            prepared.params += [(run_id, key, value) for key, value in params.items()]
            _add_metrics(prepared, run_id, spec.metrics, known_keys)
    return prepared


def write(conn: Connection, prepared: PreparedRuns, experiment_ids: dict[str, str]) -> None:
    """Insert the batch's rows in `conn`'s transaction; `experiment_ids` maps each name the
    runs gave to its experiment id."""
    for row, experiment in zip(prepared.runs, prepared.experiments, strict=True):
        row["experiment_id"] = experiment_ids[experiment]
    with store.page_cache(conn, BATCH_CACHE_KIB):
        conn.execute(store.runs.insert(), prepared.runs)
        store.bulk_insert(conn, store.params, KEY_VALUE_COLUMNS, prepared.params)
        store.bulk_insert(conn, store.tags, KEY_VALUE_COLUMNS, prepared.tags)
        store.bulk_insert(conn, store.metric_chunks, CHUNK_COLUMNS, prepared.chunks)
        store.bulk_insert(conn, store.latest_metrics, LATEST_COLUMNS, prepared.latest)


@contextmanager
def _at(index: int) -> Iterator[None]:
    """Re-raise a check's InvalidInput with the run's index in its message and field."""
    try:
        yield
    except InvalidInput as exc:
        where = f"runs[{index}]"
        inner = exc.detail.get("field")
        detail = {**exc.detail, "field": f"{where}.{inner}" if inner else where, "index": index}
        raise InvalidInput(f"{where}: {exc.message}", detail) from exc


def _check_batch_size(specs: Sequence[RunSpec]) -> None:
    if len(specs) > MAX_RUNS_PER_BATCH:
        raise InvalidInput(
            f"{len(specs)} runs in one request; the limit is {MAX_RUNS_PER_BATCH}",
            {"field": "runs", "fix": f"send at most {MAX_RUNS_PER_BATCH} runs per request"},
        )
    values = sum(len(spec.metrics) for spec in specs)
    if values > MAX_METRIC_VALUES_PER_BATCH:
        raise InvalidInput(
            f"{values} metric values in one request; the limit is {MAX_METRIC_VALUES_PER_BATCH}",
            {"field": "runs", "fix": "send the runs in smaller requests"},
        )


def _run_row(spec: RunSpec, run_id: str, user: str, now: datetime) -> dict[str, Any]:
    status = RunStatus(spec.status)
    start = _utc(spec.start_time) if spec.start_time is not None else now
    end = _utc(spec.end_time) if spec.end_time is not None else None
    if status is RunStatus.RUNNING and end is not None:
        raise InvalidInput(
            "a RUNNING run has no end_time",
            {"field": "end_time", "fix": "leave end_time out, or give a terminal status"},
        )
    if status is not RunStatus.RUNNING and end is None:
        end = max(now, start)  # ended now, as end_run would
    if end is not None and end < start:
        raise InvalidInput(
            f"end_time {end.isoformat()} is before start_time {start.isoformat()}",
            {"field": "end_time", "fix": "give an end_time at or after start_time"},
        )
    if spec.name is not None:
        check_name(spec.name, "name")
    error = spec.error
    if error is not None and len(error) > ERROR_MAX:
        error = error[: ERROR_MAX - 20] + "\n... (truncated)"  # as end_run keeps it
    return {
        "id": run_id,
        "experiment_id": None,
        "name": spec.name or f"run-{run_id[:8]}",
        "status": status.value,
        "user": user,
        "start_time": start,
        "end_time": end,
        "parent_run_id": None,
        "error": error,
    }


def _utc(moment: datetime) -> datetime:
    """Aware in UTC; a naive time is taken as UTC (as the tables store it)."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _clean(
    values: dict[str, Any], kind: str, limit: int, known_keys: set[tuple[str, str]]
) -> dict[str, str]:
    """Checked keys and text values of a run's params or tags."""
    if len(values) > MAX_PARAMS_PER_RUN:
        raise InvalidInput(
            f"{len(values)} {kind}s; the limit is {MAX_PARAMS_PER_RUN} per run",
            {"field": f"{kind}s", "fix": "log the rest as an artifact"},
        )
    clean: dict[str, str] = {}
    for key, value in values.items():
        _check_key_once(key, kind, known_keys)
        clean[key] = check_value(as_text(value), f"{kind}s", key, limit)
    return clean


def _check_key_once(key: str, kind: str, known_keys: set[tuple[str, str]]) -> None:
    # Runs of a batch mostly share their keys: each is matched against the rule once.
    if (kind, key) not in known_keys:
        try:
            check_key(key, kind)
        except InvalidInput as exc:
            raise InvalidInput(exc.message, {**exc.detail, "field": f"{kind}s.{key}"}) from exc
        known_keys.add((kind, key))


def _add_metrics(
    prepared: PreparedRuns,
    run_id: str,
    metrics: Sequence[Metric],
    known_keys: set[tuple[str, str]],
) -> None:
    """One chunk and one latest value per metric key of the run."""
    if len(metrics) > MAX_METRIC_VALUES_PER_RUN:
        raise InvalidInput(
            f"{len(metrics)} metric values; the limit is {MAX_METRIC_VALUES_PER_RUN} per run",
            {"field": "metrics", "fix": "log long histories through log_metric_rows"},
        )
    by_key: dict[str, list[Metric]] = {}
    for position, metric in enumerate(metrics):
        _check_metric(metric, position, known_keys)
        by_key.setdefault(metric.key, []).append(metric)
    for key, values in by_key.items():
        prepared.chunks.append(_chunk(run_id, key, values))
        prepared.latest.append(_latest(run_id, key, values))


def _check_metric(metric: Metric, position: int, known_keys: set[tuple[str, str]]) -> None:
    field_name = f"metrics[{position}]"
    try:
        _check_key_once(metric.key, "metric", known_keys)
    except InvalidInput as exc:
        raise InvalidInput(exc.message, {**exc.detail, "field": f"{field_name}.key"}) from exc
    if not MIN_STEP <= metric.step <= MAX_STEP:
        raise InvalidInput(
            f"metric {metric.key!r} has step {metric.step}, outside a 64-bit integer",
            {"field": f"{field_name}.step", "fix": f"use a step in {MIN_STEP}..{MAX_STEP}"},
        )
    if not math.isfinite(metric.timestamp):
        raise InvalidInput(
            f"metric {metric.key!r} has timestamp {metric.timestamp}",
            {"field": f"{field_name}.timestamp", "fix": "give epoch seconds as a finite number"},
        )


PACK_FLOAT = struct.Struct("<d").pack
PACK_INT = struct.Struct("<q").pack


def _chunk(run_id: str, key: str, values: list[Metric]) -> tuple[Any, ...]:
    count = len(values)
    if count == 1:  # the usual case of an import: one final value per key, packed cheaply
        only = values[0]
        packed = PACK_FLOAT(only.value), PACK_INT(only.step), PACK_FLOAT(only.timestamp)
        return (run_id, key, 1, only.step, only.step, *packed)
    steps = [m.step for m in values]
    return (
        run_id,
        key,
        count,
        min(steps),
        max(steps),
        struct.pack(f"<{count}d", *(m.value for m in values)),
        struct.pack(f"<{count}q", *steps),
        struct.pack(f"<{count}d", *(m.timestamp for m in values)),
    )


def _latest(run_id: str, key: str, values: list[Metric]) -> tuple[Any, ...]:
    last = values[0]
    for metric in values[1:]:
        if (metric.step, metric.timestamp) >= (last.step, last.timestamp):
            last = metric  # ties go to the later one, as the stable sort of the per-call path
    value = None if math.isnan(last.value) else last.value  # SQLite stores NaN as NULL
    return (run_id, key, value, last.step, last.timestamp)
