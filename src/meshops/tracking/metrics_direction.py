"""Which way is better for a metric: higher ("max"), lower ("min"), or unknown (None).

The one table of metric directions: the champion/challenger comparison
(`registry.comparison`), the training-pipeline template and the UI (the "best" mark of the
run comparison) all read it. A home adds or overrides directions in its config:

    [metrics]
    directions = { my_metric = "max", latency_ms = "min" }

A metric whose direction is not known has no "best": guessing from its name would mark the
wrong run for half of the metrics nobody listed.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from meshops.kernel.errors import InvalidInput

Direction = Literal["max", "min"]

HIGHER_IS_BETTER = (
    "accuracy",
    "balanced_accuracy",
    "roc_auc",
    "auc",
    "f1",
    "f1_macro",
    "f1_micro",
    "f1_weighted",
    "precision",
    "recall",
    "ap",
    "average_precision",
    "r2",
)
LOWER_IS_BETTER = (
    "rmse",
    "mse",
    "mae",
    "log_loss",
    "brier",
    "brier_score",
    "mape",
    "loss",
    "error",
)
DEFAULT_DIRECTIONS: Mapping[str, Direction] = {
    **dict.fromkeys(HIGHER_IS_BETTER, "max"),
    **dict.fromkeys(LOWER_IS_BETTER, "min"),
}
# `val_loss`, `test/accuracy`, `holdout.rmse`: the split a metric was measured on does not
# change its direction.
SPLIT_PREFIXES = ("train", "training", "val", "valid", "validation", "test", "eval", "holdout")
SEPARATORS = ("_", "/", ".", "-")
MAX_CONFIGURED = 1000
ALIASES: Mapping[str, Direction] = {
    "max": "max",
    "higher": "max",
    "maximize": "max",
    "min": "min",
    "lower": "min",
    "minimize": "min",
}


def direction_of(
    metric: str, configured: Mapping[str, Direction] | None = None
) -> Direction | None:
    """The direction of `metric`: the home's configured one, else the default, also for a
    split-prefixed name (`val_loss` -> loss); None when unknown."""
    table = {**DEFAULT_DIRECTIONS, **(configured or {})}
    if metric in table:
        return table[metric]
    lowered = metric.lower()
    if lowered in table:
        return table[lowered]
    for prefix in SPLIT_PREFIXES:
        for sep in SEPARATORS:
            if lowered.startswith(prefix + sep) and lowered[len(prefix) + 1 :] in table:
                return table[lowered[len(prefix) + 1 :]]
    return None


def configured_directions(settings: Any) -> dict[str, Direction]:
    """`[metrics] directions` of the home's config, checked: {metric: "max" | "min"}."""
    raw = settings.section("metrics").get("directions", {})
    if not isinstance(raw, Mapping) or len(raw) > MAX_CONFIGURED:
        raise InvalidInput(
            "[metrics] directions must be a table of at most "
            f"{MAX_CONFIGURED} metrics, got {type(raw).__name__}",
            {"field": "metrics.directions", "fix": 'e.g. directions = { my_metric = "max" }'},
        )
    out: dict[str, Direction] = {}
    for name, value in raw.items():
        direction = ALIASES.get(str(value).lower()) if isinstance(value, str) else None
        if direction is None:
            raise InvalidInput(
                f"[metrics] directions: {name!r} = {value!r} is not a direction",
                {
                    "field": f"metrics.directions.{name}",
                    "fix": 'use "max" (higher is better) or "min" (lower is better)',
                },
            )
        out[str(name)] = direction
    return out


def best_index(values: list[float], direction: Direction | None) -> int | None:
    """Position of the best finite value (the first on ties); None when the direction is
    unknown or there is nothing to choose between (fewer than two values, all equal)."""
    finite = [(v, i) for i, v in enumerate(values) if math.isfinite(v)]
    if direction is None or len(finite) < 2 or min(finite)[0] == max(finite)[0]:
        return None  # all equal: no run is better than another
    pick = max if direction == "max" else min
    best = pick(v for v, _ in finite)
    return next(i for v, i in finite if v == best)


# The metrics tables lead with, the ones runs are judged by: the metric a run declares (tag
# `meshops.primary_metric` or `meshops.metric`, or the training template's `<metric>_lift`
# beside `<metric>`), else the first of these usual yardsticks (classification before
# regression), else alphabetical order. The CLI's run list uses the same order.
PRIMARY_METRICS = (
    "roc_auc",
    "accuracy",
    "f1",
    "f1_macro",
    "balanced_accuracy",
    "auc",
    "r2",
    "rmse",
    "mae",
    "log_loss",
    "brier",
    "mse",
    "loss",
)
PRIMARY_METRIC_TAGS = ("meshops.primary_metric", "meshops.metric")


def declared_metric(tags: Mapping[str, str], metrics: Mapping[str, float]) -> str | None:
    """The metric a run (or model version) says it is judged by, if it says so."""
    for tag in PRIMARY_METRIC_TAGS:
        if tags.get(tag) in metrics:
            return tags[tag]
    lifts = sorted(k[: -len("_lift")] for k in metrics if k.endswith("_lift"))
    return next((k for k in lifts if k in metrics), None)


def rank_metrics(keys: Iterable[str], declared: Sequence[str] = ()) -> list[str]:
    """`keys` in the order tables show them: the most often `declared` metric first, then
    the usual yardsticks (PRIMARY_METRICS), then the rest alphabetically."""

    def rank(key: str) -> tuple[int, str]:
        usual = PRIMARY_METRICS.index(key) if key in PRIMARY_METRICS else len(PRIMARY_METRICS)
        return usual, key

    ranked = sorted(set(keys), key=rank)
    present = [d for d in declared if d in ranked]
    if present:
        primary = max(sorted(set(present)), key=present.count)
        ranked.remove(primary)
        ranked.insert(0, primary)
    return ranked
