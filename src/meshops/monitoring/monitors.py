"""Evaluating a monitor on a reference and a current window (pure: data in, figures out).

Each side is a table in memory (an SDK call passing a DataFrame) or Parquet data left on
disk (`ParquetData`: a stored reference, a source's files). Drift monitors read Parquet
data column by column in batches, so memory stays bounded whatever its size, and the
figures are bit for bit those of the same data in memory. The service stores what
`evaluate` returns; `sources.py` decides where the data comes from.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, TypeAlias

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from meshops.monitoring import performance, quality
from meshops.monitoring.models import MonitorSpec
from meshops.monitoring.stats import ColumnDrift, ColumnKind, DatasetDrift, column_drift, infer_kind
from meshops.monitoring.streams import (
    PARQUET_BATCH_ROWS,
    ColumnStream,
    ParquetColumn,
    ParquetData,
)

# Columns are compared in parallel: numpy and Arrow release the GIL in their kernels.
DRIFT_WORKERS = max(1, min(os.cpu_count() or 1, 8))

# What a monitor compares: a table in memory, or Parquet data read in batches.
Data: TypeAlias = "pa.Table | ParquetData"

# Columns of a prediction log that are bookkeeping, not model inputs.
LOG_COLUMNS = frozenset({"request_id", "endpoint", "model_version", "latency_ms", "ts", "error"})


@dataclass
class Evaluation:
    metrics: dict[str, float]
    summary: str
    features: list[ColumnDrift] = field(default_factory=list)
    details: dict[str, Any] = field(default_factory=dict)


class EvaluationError(ValueError):
    """The data does not fit the monitor (missing column, no rows ...)."""


def evaluate(
    spec: MonitorSpec,
    current: Data,
    reference: Data | None = None,
    labels: pa.Table | None = None,
) -> Evaluation:
    if spec.uses_reference and reference is None:
        raise EvaluationError(
            f"monitor {spec.name!r} ({spec.kind}) needs a reference dataset: set one on the "
            "monitor or pass it with the run"
        )
    if spec.kind == "data_drift":
        assert reference is not None
        return _data_drift(spec, reference, current)
    if spec.kind == "prediction_drift":
        assert reference is not None
        return _prediction_drift(spec, reference, current)
    # The other monitors look at every row of the current window at once.
    window = as_table(current)
    if spec.kind == "performance":
        return _performance(spec, window, labels)
    if spec.kind == "data_quality":
        return _quality(spec, window)
    return _slo(spec, window)


def as_table(data: Data) -> pa.Table:
    return data.to_table() if isinstance(data, ParquetData) else data


def rows_of(data: Data) -> int:
    return data.num_rows


def column_of(data: Data, name: str) -> pa.ChunkedArray | ColumnStream:
    """A column to compare: in memory as it is, from Parquet as a batch stream."""
    return data.column(name)


def drift_features(spec: MonitorSpec, reference: Schemed, current: Schemed) -> list[str]:
    """The features to compare: the spec's list, else every column both tables (or
    schemas) share except prediction-log bookkeeping, predictions and labels."""
    if spec.features:
        for side, table in (("reference", reference), ("current", current)):
            missing = [f for f in spec.features if f not in _schema(table).names]
            if missing:
                raise EvaluationError(f"the {side} data has no column(s) {', '.join(missing)}")
        return list(spec.features)
    skip = LOG_COLUMNS | {spec.prediction_column, spec.label_column, spec.id_column}
    current_names = set(_schema(current).names)
    shared = [c for c in _schema(reference).names if c in current_names]
    return [c for c in shared if c not in skip and _kind(spec, reference, c) is not None]


Schemed: TypeAlias = "pa.Table | pa.Schema | ParquetData"


def _schema(table: Schemed) -> pa.Schema:
    return table if isinstance(table, pa.Schema) else table.schema


def _kind(spec: MonitorSpec, table: Schemed, column: str) -> ColumnKind | None:
    if column in spec.categorical:
        return "categorical"
    if column in spec.numerical:
        return "numeric"
    return infer_kind(_schema(table).field(column).type)


def _drift_one(
    spec: MonitorSpec,
    feature: str,
    reference: pa.ChunkedArray | ColumnStream,
    current: pa.ChunkedArray | ColumnStream,
    kind: ColumnKind,
) -> ColumnDrift:
    setting = spec.drift.get(feature)
    method = (setting.method if setting else None) or spec.default_method
    threshold = (setting.threshold if setting else None) or spec.default_threshold
    try:
        return column_drift(feature, reference, current, kind, method=method, threshold=threshold)
    except ValueError as exc:
        raise EvaluationError(str(exc)) from exc


def compare_tables(
    spec: MonitorSpec, reference: Data, current: Data, workers: int = DRIFT_WORKERS
) -> DatasetDrift:
    """Drift of each feature between two datasets (tables in memory or Parquet data read
    in batches), columns in parallel."""
    return _compare(
        spec,
        reference,
        current,
        lambda feature: (column_of(reference, feature), column_of(current, feature)),
        workers,
    )


def compare_parquet(
    spec: MonitorSpec,
    reference_path: str,
    current_path: str,
    *,
    batch_rows: int = PARQUET_BATCH_ROWS,
    workers: int = DRIFT_WORKERS,
) -> DatasetDrift:
    """Drift between two Parquet files read in batches of `batch_rows` rows, so memory
    stays bounded whatever their size; the result equals `compare_tables` on them."""
    reference, current = pq.read_schema(reference_path), pq.read_schema(current_path)
    return _compare(
        spec,
        reference,
        current,
        lambda feature: (
            ParquetColumn(reference_path, feature, batch_rows),
            ParquetColumn(current_path, feature, batch_rows),
        ),
        workers,
    )


ColumnPair = tuple[pa.ChunkedArray | ColumnStream, pa.ChunkedArray | ColumnStream]


def _compare(
    spec: MonitorSpec,
    reference: Schemed,
    current: Schemed,
    columns: Callable[[str], ColumnPair],
    workers: int,
) -> DatasetDrift:
    features = drift_features(spec, reference, current)
    kinds: dict[str, ColumnKind] = {}
    for feature in features:
        kind = _kind(spec, reference, feature)
        if kind is None:
            raise EvaluationError(f"column {feature!r} is neither numeric nor categorical")
        kinds[feature] = kind

    def one(feature: str) -> ColumnDrift:
        return _drift_one(spec, feature, *columns(feature), kinds[feature])

    if workers <= 1 or len(features) <= 1:
        return DatasetDrift([one(f) for f in features], spec.drift_share)
    with ThreadPoolExecutor(max_workers=min(workers, len(features))) as pool:
        return DatasetDrift(list(pool.map(one, features)), spec.drift_share)


def _data_drift(spec: MonitorSpec, reference: Data, current: Data) -> Evaluation:
    drift = compare_tables(spec, reference, current)
    metrics = {
        "dataset_drift": float(drift.dataset_drift),
        "share_drifted": drift.share_drifted,
        "drifted_columns": float(drift.drifted_columns),
        "columns": float(len(drift.columns)),
        "current_rows": float(rows_of(current)),
    }
    for column in drift.columns:
        metrics[f"drift.{column.feature}.score"] = column.score
        metrics[f"drift.{column.feature}.drifted"] = float(column.drifted)
    drifted = [c.feature for c in drift.columns if c.drifted]
    summary = (
        f"{len(drifted)} of {len(drift.columns)} features drifted"
        + (f" ({', '.join(drifted[:10])})" if drifted else "")
        + (
            f"; dataset drift (share {drift.share_drifted:.2g} >= {spec.drift_share:g})"
            if drift.dataset_drift and spec.drift_share is not None
            else ""
        )
    )
    return Evaluation(metrics, summary, drift.columns)


def _prediction_drift(spec: MonitorSpec, reference: Data, current: Data) -> Evaluation:
    ref_name = spec.reference_prediction_column or spec.prediction_column
    if ref_name not in reference.schema.names:
        raise EvaluationError(f"the reference data has no prediction column {ref_name!r}")
    if spec.prediction_column not in current.schema.names:
        raise EvaluationError(f"the current data has no column {spec.prediction_column!r}")
    ref_col = column_of(reference, ref_name)
    kind = _kind(spec, reference, ref_name) or "categorical"
    if spec.prediction_column in spec.categorical:
        kind = "categorical"
    cur_col = column_of(current, spec.prediction_column)
    result = _drift_one(spec, spec.prediction_column, ref_col, cur_col, kind)
    metrics = {
        "prediction_drift": float(result.drifted),
        "prediction_drift.score": result.score,
        f"drift.{result.feature}.score": result.score,
        f"drift.{result.feature}.drifted": float(result.drifted),
        "current_rows": float(rows_of(current)),
    }
    verdict = "drifted" if result.drifted else "stable"
    summary = (
        f"prediction {verdict} ({result.method} {result.score:.4g}, threshold {result.threshold})"
    )
    return Evaluation(metrics, summary, [result])


def _performance(spec: MonitorSpec, current: pa.Table, labels: pa.Table | None) -> Evaluation:
    if spec.prediction_column not in current.column_names:
        raise EvaluationError(f"the current data has no column {spec.prediction_column!r}")
    try:
        joined = performance.join_labels(current, labels, spec.id_column, spec.label_column)
        metrics, details = performance.performance_metrics(
            joined,
            spec.task,
            spec.prediction_column,
            spec.label_column,
            score_column=spec.score_column,
            positive_label=spec.positive_label,
        )
    except ValueError as exc:
        raise EvaluationError(str(exc)) from exc
    metrics["current_rows"] = float(current.num_rows)
    shown = ["accuracy", "f1", "roc_auc"] if spec.task == "classification" else ["rmse", "mae"]
    figures = ", ".join(f"{k} {metrics[k]:.4g}" for k in shown if k in metrics)
    summary = f"{int(metrics['labelled_rows'])} labelled rows" + (f": {figures}" if figures else "")
    return Evaluation(metrics, summary, details=details)


def _quality(spec: MonitorSpec, current: pa.Table) -> Evaluation:
    checks = quality.check_columns(current, spec.columns)
    metrics = quality.quality_metrics(current, checks)
    failed = [f"{c.column}.{c.check}" for c in checks if not c.passed]
    summary = f"{len(checks) - len(failed)} of {len(checks)} checks passed" + (
        f"; failed: {', '.join(failed[:10])}" if failed else ""
    )
    return Evaluation(metrics, summary, details={"checks": [c.to_json() for c in checks]})


def _slo(spec: MonitorSpec, current: pa.Table) -> Evaluation:
    requests = current.num_rows
    metrics: dict[str, float] = {"requests": float(requests)}
    violations = 0
    parts = [f"{requests} requests"]
    if spec.latency_column in current.column_names and requests:
        latency = np.asarray(
            pc.drop_null(current.column(spec.latency_column)).to_numpy(), dtype=np.float64
        )
        if len(latency):
            for p in (50.0, 95.0, 99.0, spec.latency_percentile):
                metrics[f"latency_p{p:g}_ms"] = float(np.percentile(latency, p))
            observed = metrics[f"latency_p{spec.latency_percentile:g}_ms"]
            parts.append(f"p{spec.latency_percentile:g} {observed:.1f} ms")
            if spec.latency_ms_max is not None:
                ok = observed <= spec.latency_ms_max
                metrics["slo.latency_ok"] = float(ok)
                violations += 0 if ok else 1
    elif spec.latency_ms_max is not None and requests:
        raise EvaluationError(f"the current data has no latency column {spec.latency_column!r}")
    errors = _error_count(current, spec.error_column)
    metrics["errors"] = float(errors)
    metrics["error_rate"] = errors / requests if requests else 0.0
    parts.append(f"error rate {metrics['error_rate']:.4%}")
    if spec.error_rate_max is not None:
        ok = metrics["error_rate"] <= spec.error_rate_max
        metrics["slo.error_rate_ok"] = float(ok)
        violations += 0 if ok else 1
    metrics["slo.violations"] = float(violations)
    return Evaluation(
        metrics, ", ".join(parts) + (f"; {violations} SLO violated" if violations else "")
    )


def _error_count(table: pa.Table, column: str) -> int:
    """Errors: true booleans, non-empty strings, non-zero numbers in the error column."""
    if column not in table.column_names:
        return 0
    values = table.column(column)
    if pa.types.is_boolean(values.type):
        flags = pc.fill_null(values, False)
    elif pa.types.is_string(values.type) or pa.types.is_large_string(values.type):
        flags = pc.fill_null(pc.greater(pc.utf8_length(values), 0), False)
    else:
        flags = pc.fill_null(pc.not_equal(values, 0), False)
    return int(pc.sum(pc.cast(flags, pa.int64())).as_py() or 0)
