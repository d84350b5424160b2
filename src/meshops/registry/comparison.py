"""Champion/challenger comparisons: the records and the metric table (pure logic, no I/O).

A comparison scores a challenger version and the current holder of an alias on the same
evaluation data, in the caller's process (`registry.evaluation`: loading a model means
unpickling or reading skops, which never happens in the API server), and records the two
scores through the declared `record_comparison` operation. The server decides the verdict
from its own metric table and its `[promotion] tolerance`, checks the references (the exact
challenger version, the alias's current holder), creates the tracking run and the lineage
edges; the promotion gate trusts only what that operation recorded.
"""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from meshops.kernel.errors import InvalidInput
from meshops.tracking.metrics_direction import DEFAULT_DIRECTIONS, Direction

# The metrics a comparison may use (what `registry.evaluation` computes), with their
# direction from the one table of metric directions.
METRICS: dict[str, Direction] = {
    name: DEFAULT_DIRECTIONS[name]
    for name in (
        "accuracy",
        "balanced_accuracy",
        "f1_macro",
        "roc_auc",
        "r2",
        "log_loss",
        "rmse",
        "mae",
    )
}
CLASSIFICATION_METRICS = ("accuracy", "balanced_accuracy", "f1_macro", "roc_auc", "log_loss")
REGRESSION_METRICS = ("rmse", "mae", "r2")
# Tags (on the version, else on the registered model) that declare the primary metric and
# the task; `[promotion] metric` of meshops.toml is the home-wide declaration.
METRIC_TAG = "meshops.metric"
TASK_TAG = "meshops.task"
MAX_EVALUATION_ROWS = 10_000_000
MAX_TOLERANCE = 1e6


def direction_of(metric: str) -> Direction:
    try:
        return METRICS[metric]
    except KeyError:
        raise InvalidInput(
            f"unknown comparison metric {metric!r}",
            {
                "field": "metric",
                "known": sorted(METRICS),
                "fix": "pick one of the known metrics (its direction is known)",
            },
        ) from None


def worse_by(metric: str, challenger: float, champion: float) -> float:
    """How much worse the challenger is than the champion (negative: better)."""
    delta = champion - challenger
    return delta if direction_of(metric) == "max" else -delta


def promotion_tolerance(settings: Any) -> float:
    """`[promotion] tolerance`: how much worse than the holder a challenger may be (in the
    primary metric's units) and still be promoted; 0.0 by default."""
    raw = settings.section("promotion").get("tolerance", 0.0)
    try:
        value = float(raw)
    except (TypeError, ValueError):
        value = -1.0
    if not 0 <= value <= MAX_TOLERANCE or not math.isfinite(value):
        raise InvalidInput(
            f"[promotion] tolerance must be a non-negative number, got {raw!r}",
            {"field": "promotion.tolerance", "fix": "e.g. tolerance = 0.01"},
        )
    return value


class ComparisonScores(BaseModel):
    """What the caller measured and asks the registry to record (the body of
    `POST /v1/models/{name}/versions/{version}/comparisons`)."""

    alias: str = "champion"
    champion_version: int | None = Field(default=None, ge=1)
    metric: str
    challenger_score: float
    champion_score: float | None = None
    # Every metric of both models on the same rows, e.g. {"accuracy": 0.9, ...}.
    challenger_metrics: dict[str, float] = Field(default_factory=dict)
    champion_metrics: dict[str, float] = Field(default_factory=dict)
    task: Literal["classification", "regression"]
    label: str = Field(min_length=1, max_length=256)
    evaluated_rows: int = Field(ge=1, le=MAX_EVALUATION_ROWS)
    holdout_rows: int = Field(default=0, ge=0, le=MAX_EVALUATION_ROWS)
    feedback_rows: int = Field(default=0, ge=0, le=MAX_EVALUATION_ROWS)
    data_digest: str = Field(pattern=r"^[0-9a-f]{64}$")
    data_urn: str | None = Field(default=None, max_length=1000)

    @field_validator("challenger_score", "champion_score")
    @classmethod
    def _finite(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError("scores must be finite numbers")
        return value

    @field_validator("challenger_metrics", "champion_metrics")
    @classmethod
    def _finite_metrics(cls, value: dict[str, float]) -> dict[str, float]:
        if len(value) > 50:
            raise ValueError("at most 50 metrics per model")
        return {k: v for k, v in value.items() if math.isfinite(v)}


class ModelComparison(BaseModel):
    """A recorded comparison of `name` v`challenger_version` with the holder of `alias`."""

    id: int
    name: str
    challenger_version: int
    alias: str
    champion_version: int | None = None
    metric: str
    direction: Direction
    challenger_score: float
    champion_score: float | None = None
    challenger_metrics: dict[str, float] = Field(default_factory=dict)
    champion_metrics: dict[str, float] = Field(default_factory=dict)
    tolerance: float
    allowed: bool
    reasons: list[str] = Field(default_factory=list)
    run_id: str
    task: str
    label: str
    evaluated_rows: int
    holdout_rows: int = 0
    feedback_rows: int = 0
    data_digest: str
    data_urn: str
    recorded_by: str
    recorded_at: datetime

    @property
    def run_urn(self) -> str:
        return f"meshops:run:{self.run_id}"

    @property
    def verdict(self) -> str:
        if self.champion_version is None:
            return "first version: no holder to compare with"
        return "not worse" if self.allowed else "worse"
