"""MLflow's search syntax on meshops's own filter language (`tracking.search`).

MLflow's run filters (`metrics.rmse < 0.5 and params.model = 'rf' and tags.\\`team\\` LIKE
'ml%' and attributes.status = 'FINISHED'`) and order-by clauses (`metrics.rmse DESC`) are
the grammar of `meshops.tracking.search`; this module maps MLflow's field names onto
meshops's: the system tags `mlflow.runName`/`mlflow.user`/`mlflow.parentRunId` are the
run's name, user and parent, `attributes.run_name`/`user_id`/`created` are the name, user
and start time. Experiment filters (`name LIKE 'x%'`, `tags.k = 'v'`) are evaluated over
the experiments the caller may read.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from meshops.mlflow.common import MlflowApiError
from meshops.tracking.models import Experiment
from meshops.tracking.search import (
    BoolOp,
    Comparison,
    Expr,
    Field,
    OrderKey,
    parse_filter,
    parse_order_by,
)

# MLflow system tags that are run attributes in meshops.
SYSTEM_TAGS = {
    "mlflow.runName": "name",
    "mlflow.user": "user",
    "mlflow.parentRunId": "parent_run_id",
}
VIEW_TYPES = {"ACTIVE_ONLY": "active", "DELETED_ONLY": "deleted", "ALL": "all", "": "active"}


def run_view(value: object) -> str:
    if isinstance(value, int):  # the enum's number
        value = {1: "ACTIVE_ONLY", 2: "DELETED_ONLY", 3: "ALL"}.get(value, "?")
    view = VIEW_TYPES.get(str(value or "").upper())
    if view is None:
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE",
            f"Invalid view type {value!r}: use ACTIVE_ONLY, DELETED_ONLY or ALL",
        )
    return view


def _field(field: Field) -> Field:
    if field.kind == "tag" and field.key in SYSTEM_TAGS:
        return Field("attribute", SYSTEM_TAGS[field.key])
    return field


def _rewrite(expr: Expr) -> Expr:
    if isinstance(expr, BoolOp):
        return BoolOp(expr.op, tuple(_rewrite(item) for item in expr.items))
    return Comparison(_field(expr.field), expr.op, expr.value)


def run_filter(text: str) -> Expr | None:
    """An MLflow run filter, parsed (errors name the token and position)."""
    expr = parse_filter(text or "")
    return None if expr is None else _rewrite(expr)


def run_order(clauses: list[str]) -> list[OrderKey]:
    return [OrderKey(_field(k.field), k.descending) for k in parse_order_by(clauses)]


# experiments -----------------------------------------------------------------------------

EXPERIMENT_ATTRIBUTES = {"name", "experiment_id", "creation_time", "last_update_time"}


def _like(pattern: str, flags: int = 0) -> re.Pattern[str]:
    parts = (".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.compile("".join(parts), flags | re.DOTALL)


def _compare(op: str, left: Any, right: Any) -> bool:
    if left is None:
        return False
    if op in ("IN", "NOT IN"):
        inside = left in right
        return inside if op == "IN" else not inside
    if op == "LIKE":
        return bool(_like(str(right)).fullmatch(str(left)))
    if op == "ILIKE":
        return bool(_like(str(right), re.IGNORECASE).fullmatch(str(left)))
    try:
        checks: dict[str, Callable[[Any, Any], bool]] = {
            "=": lambda a, b: bool(a == b),
            "!=": lambda a, b: bool(a != b),
            "<": lambda a, b: bool(a < b),
            "<=": lambda a, b: bool(a <= b),
            ">": lambda a, b: bool(a > b),
            ">=": lambda a, b: bool(a >= b),
        }
        return checks[op](left, right)
    except TypeError:
        return False


def experiment_matcher(text: str) -> Callable[[Experiment, dict[str, Any]], bool]:
    """A predicate over (experiment, its MLflow JSON) for an MLflow experiment filter."""
    expr = parse_filter(text or "")

    def value_of(field: Field, shape: dict[str, Any], experiment: Experiment) -> Any:
        if field.kind == "tag":
            return experiment.tags.get(field.key)
        key = "name" if field.key == "name" else field.key
        if field.kind != "attribute" or key not in EXPERIMENT_ATTRIBUTES:
            raise MlflowApiError(
                "INVALID_PARAMETER_VALUE",
                f"Invalid experiment filter field {field.kind}.{field.key}: use name, "
                "tags.<key>, creation_time or last_update_time",
            )
        return shape.get(key)

    def check(node: Expr, experiment: Experiment, shape: dict[str, Any]) -> bool:
        if isinstance(node, BoolOp):
            results = (check(item, experiment, shape) for item in node.items)
            return all(results) if node.op == "and" else any(results)
        return _compare(node.op, value_of(node.field, shape, experiment), node.value)

    if expr is None:
        return lambda experiment, shape: True
    # Name the unsupported fields at once, not only when an experiment reaches them.
    _fields(expr)
    return lambda experiment, shape: check(expr, experiment, shape)


def _fields(expr: Expr) -> None:
    if isinstance(expr, BoolOp):
        for item in expr.items:
            _fields(item)
        return
    field = expr.field
    key = field.key
    if field.kind == "tag" or (field.kind == "attribute" and key in EXPERIMENT_ATTRIBUTES):
        return
    raise MlflowApiError(
        "INVALID_PARAMETER_VALUE",
        f"Invalid experiment filter field {field.kind}.{key}: use name, tags.<key>, "
        "creation_time or last_update_time",
    )


def experiment_sort_key(clauses: list[str]) -> Callable[[dict[str, Any]], Any]:
    """Sort MLflow experiment shapes by `name`, `creation_time`, `last_update_time` or
    `experiment_id` (ASC/DESC); default: newest first, like MLflow."""
    keys: list[tuple[str, bool]] = []
    for clause in clauses or ["creation_time DESC"]:
        parts = clause.strip().split()
        name = parts[0].removeprefix("attributes.") if parts else ""
        descending = len(parts) > 1 and parts[1].upper() == "DESC"
        if name not in EXPERIMENT_ATTRIBUTES or len(parts) > 2:
            raise MlflowApiError(
                "INVALID_PARAMETER_VALUE",
                f"Invalid order_by clause {clause!r}: use name, experiment_id, creation_time "
                "or last_update_time, optionally ASC or DESC",
            )
        keys.append((name, descending))

    def key(shape: dict[str, Any]) -> tuple[Any, ...]:
        out: list[Any] = []
        for name, descending in keys:
            value = shape.get(name)
            if isinstance(value, int | float):
                out.append(-value if descending else value)
            else:  # text: descending by the negated code points
                text = str(value or "")
                out.append(tuple(-ord(c) for c in text) if descending else text)
        return tuple(out)

    return key


# logged models ---------------------------------------------------------------------------


def logged_model_matcher(text: str) -> Callable[[dict[str, Any]], bool]:
    """A predicate over a logged model's MLflow JSON for a logged-model filter: `name`,
    `status`, `tags.<key>` and `params.<key>` with the run filters' operators."""
    expr = parse_filter(text or "")

    def value_of(field: Field, shape: dict[str, Any]) -> Any:
        info = shape["info"]
        if field.kind == "tag":
            return {t["key"]: t["value"] for t in info["tags"]}.get(field.key)
        if field.kind == "param":
            return {p["key"]: p["value"] for p in shape["data"]["params"]}.get(field.key)
        if field.kind == "attribute" and field.key in ("name", "status"):
            return info.get(field.key)
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE",
            f"Invalid logged model filter field {field.kind}.{field.key}: meshops filters "
            "logged models by name, status, tags.<key> and params.<key>",
        )

    def check(node: Expr, shape: dict[str, Any]) -> bool:
        if isinstance(node, BoolOp):
            results = (check(item, shape) for item in node.items)
            return all(results) if node.op == "and" else any(results)
        return _compare(node.op, value_of(node.field, shape), node.value)

    if expr is None:
        return lambda shape: True
    return lambda shape: check(expr, shape)
