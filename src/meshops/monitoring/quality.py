"""Data quality of a window of inputs against contract-like column specs (Arrow compute)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from meshops.monitoring.models import ColumnSpec, LogicalType


@dataclass(frozen=True)
class Check:
    column: str
    check: str
    passed: bool
    observed: Any
    expected: Any

    def to_json(self) -> dict[str, Any]:
        return {
            "column": self.column,
            "check": self.check,
            "passed": self.passed,
            "observed": self.observed,
            "expected": self.expected,
        }


def _type_matches(data_type: pa.DataType, logical: LogicalType) -> bool:
    if logical == "integer":
        return bool(pa.types.is_integer(data_type))
    if logical == "number":
        return bool(
            pa.types.is_integer(data_type)
            or pa.types.is_floating(data_type)
            or pa.types.is_decimal(data_type)
        )
    if logical == "string":
        return bool(pa.types.is_string(data_type) or pa.types.is_large_string(data_type))
    if logical == "boolean":
        return bool(pa.types.is_boolean(data_type))
    return bool(pa.types.is_timestamp(data_type) or pa.types.is_date(data_type))


def check_columns(table: pa.Table, specs: list[ColumnSpec]) -> list[Check]:
    """Every expectation of every spec, each a pass/fail with what was observed."""
    checks: list[Check] = []
    for spec in specs:
        if spec.name not in table.column_names:
            if spec.required:
                checks.append(Check(spec.name, "present", False, "missing", "present"))
            continue
        checks.extend(_column_checks(table.column(spec.name), spec))
    return checks


def _column_checks(column: pa.ChunkedArray, spec: ColumnSpec) -> list[Check]:
    checks: list[Check] = []
    rows = len(column)
    if spec.type is not None:
        ok = _type_matches(column.type, spec.type)
        checks.append(Check(spec.name, "type", ok, str(column.type), spec.type))
    null_share = column.null_count / rows if rows else 0.0
    checks.append(
        Check(
            spec.name,
            "null_share",
            null_share <= spec.max_null_share,
            round(null_share, 6),
            spec.max_null_share,
        )
    )
    numeric = pa.types.is_integer(column.type) or pa.types.is_floating(column.type)
    if numeric and (spec.minimum is not None or spec.maximum is not None):
        checks.append(_range_check(column, spec))
    if spec.allowed_values is not None:
        values = column.cast(pa.string()) if not pa.types.is_string(column.type) else column
        allowed = pa.array(spec.allowed_values, pa.string())
        bad = pc.sum(pc.invert(pc.is_in(pc.drop_null(values), value_set=allowed))).as_py() or 0
        checks.append(
            Check(spec.name, "allowed_values", bad == 0, {"invalid_rows": bad}, spec.allowed_values)
        )
    return checks


def _range_check(column: pa.ChunkedArray, spec: ColumnSpec) -> Check:
    values = pc.drop_null(column)
    bad = 0
    if spec.minimum is not None:
        bad += int(pc.sum(pc.cast(pc.less(values, spec.minimum), pa.int64())).as_py() or 0)
    if spec.maximum is not None:
        bad += int(pc.sum(pc.cast(pc.greater(values, spec.maximum), pa.int64())).as_py() or 0)
    minmax = pc.min_max(values).as_py() if len(values) else {"min": None, "max": None}
    return Check(
        spec.name,
        "range",
        bad == 0,
        {"min": minmax["min"], "max": minmax["max"], "out_of_range_rows": bad},
        {"minimum": spec.minimum, "maximum": spec.maximum},
    )


def quality_metrics(table: pa.Table, checks: list[Check]) -> dict[str, float]:
    metrics: dict[str, float] = {
        "rows": float(table.num_rows),
        "quality.checks": float(len(checks)),
        "quality.failed_checks": float(sum(1 for c in checks if not c.passed)),
    }
    for check in checks:
        metrics[f"quality.{check.column}.{check.check}_ok"] = 1.0 if check.passed else 0.0
        if check.check == "null_share":
            metrics[f"quality.{check.column}.null_share"] = float(check.observed)
    return metrics
