"""Monitoring types: monitor definitions, results, alert rules and alerts (no I/O)."""

from __future__ import annotations

import re
from datetime import datetime, timedelta
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator, model_validator

Method = Literal["ks", "chisquare", "z", "psi", "jensenshannon", "wasserstein"]
METHODS: tuple[Method, ...] = ("ks", "chisquare", "z", "psi", "jensenshannon", "wasserstein")
MonitorKind = Literal["data_drift", "prediction_drift", "performance", "data_quality", "slo"]
MONITOR_KINDS: tuple[str, ...] = (
    "data_drift",
    "prediction_drift",
    "performance",
    "data_quality",
    "slo",
)
Task = Literal["classification", "regression"]
LogicalType = Literal["integer", "number", "string", "boolean", "timestamp"]
Severity = Literal["info", "warning", "critical"]
AlertState = Literal["open", "acknowledged", "resolved"]
Comparison = Literal[">", ">=", "<", "<=", "==", "!="]

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]{0,199}$")
_DURATION = re.compile(r"^(\d+)\s*([smhdw])$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '1h', '7d', '2w' -> timedelta."""
    match = _DURATION.match(text.strip())
    if not match or int(match.group(1)) == 0:
        raise ValueError(f"invalid duration {text!r}: use a positive number and s, m, h, d or w")
    return timedelta(seconds=int(match.group(1)) * _UNIT_SECONDS[match.group(2)])


class FeatureDriftSetting(BaseModel):
    """Per-feature override of the drift test and/or its threshold."""

    method: Method | None = None
    threshold: float | None = Field(default=None, gt=0)


class ColumnSpec(BaseModel):
    """A contract-like expectation on one input column (for data-quality monitors)."""

    name: str
    type: LogicalType | None = None
    required: bool = True
    max_null_share: float = Field(default=0.0, ge=0, le=1)
    minimum: float | None = None
    maximum: float | None = None
    allowed_values: list[str] | None = None


class MonitorSource(BaseModel):
    """Where a scheduled run reads its data. `type` names a registered source (see
    `monitoring.sources`); the remaining keys are that source's options."""

    type: str = "explicit"
    options: dict[str, Any] = Field(default_factory=dict)


class MonitorSpec(BaseModel):
    """A monitor definition: what to watch, how, on which schedule and window."""

    name: str
    kind: MonitorKind
    domain: str | None = None
    endpoint: str | None = None
    model: str | None = None
    features: list[str] | None = None
    categorical: list[str] = Field(default_factory=list)
    numerical: list[str] = Field(default_factory=list)
    drift: dict[str, FeatureDriftSetting] = Field(default_factory=dict)
    default_method: Method | None = None
    default_threshold: float | None = Field(default=None, gt=0)
    # The dataset-level rule: alert when at least this share of the features drifted
    # (None: no dataset-level rule; `dataset_drift` then means "any feature drifted").
    drift_share: float | None = Field(default=None, gt=0, le=1)
    # Drift monitors without rules of their own alert by their built-in rules
    # (`builtin_rules`); False: no built-in rules, only the rules you add.
    builtin_rules: bool = True
    prediction_column: str = "prediction"
    reference_prediction_column: str | None = None
    label_column: str = "label"
    id_column: str = "request_id"
    task: Task = "classification"
    positive_label: str | None = None
    score_column: str | None = None
    columns: list[ColumnSpec] = Field(default_factory=list)
    latency_column: str = "latency_ms"
    latency_percentile: float = Field(default=99.0, gt=0, le=100)
    latency_ms_max: float | None = None
    error_column: str = "error"
    error_rate_max: float | None = Field(default=None, ge=0, le=1)
    schedule: str | None = None
    window: str = "1d"
    source: MonitorSource = Field(default_factory=MonitorSource)

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use letters, digits, '.', '_' and '-' (at most 200 characters)")
        return value

    @field_validator("window")
    @classmethod
    def _valid_window(cls, value: str) -> str:
        parse_duration(value)
        return value

    @field_validator("schedule")
    @classmethod
    def _valid_schedule(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if _DURATION.match(value.strip()):
            parse_duration(value)
            return value
        from croniter import croniter

        if not croniter.is_valid(value):
            raise ValueError(
                f"invalid schedule {value!r}: use an interval like '1h' or a cron expression"
            )
        return value

    @model_validator(mode="after")
    def _kind_needs(self) -> MonitorSpec:
        if self.kind == "data_quality" and not self.columns:
            raise ValueError("a data_quality monitor needs `columns` (the expected column specs)")
        if self.kind == "slo" and self.latency_ms_max is None and self.error_rate_max is None:
            raise ValueError("an slo monitor needs latency_ms_max and/or error_rate_max")
        for name, setting in self.drift.items():
            if setting.method is not None and setting.method not in METHODS:
                raise ValueError(f"drift.{name}.method must be one of {', '.join(METHODS)}")
        return self

    @property
    def window_delta(self) -> timedelta:
        return parse_duration(self.window)

    @property
    def uses_reference(self) -> bool:
        return self.kind in ("data_drift", "prediction_drift")


class Monitor(BaseModel):
    id: str
    name: str
    kind: MonitorKind
    domain: str | None
    endpoint: str | None
    model: str | None
    spec: MonitorSpec
    reference_blob: str | None
    reference_rows: int | None
    enabled: bool
    next_run_at: datetime | None
    last_run_at: datetime | None
    created_at: datetime
    created_by: str

    @property
    def urn(self) -> str:
        return f"meshops:monitor:{self.id}"


class FeatureResult(BaseModel):
    """One feature of one run: the test, score, verdict and the histogram the report draws."""

    result_id: int
    monitor_id: str
    feature: str
    kind: str
    method: str
    score: float
    threshold: float
    drifted: bool
    reference_rows: int
    current_rows: int
    histogram: dict[str, Any] = Field(default_factory=dict)
    at: datetime


class MonitorResult(BaseModel):
    id: int
    monitor_id: str
    monitor_name: str
    kind: MonitorKind
    status: Literal["ok", "alert", "error"]
    summary: str
    metrics: dict[str, float]
    details: dict[str, Any] = Field(default_factory=dict)
    window_start: datetime | None
    window_end: datetime | None
    reference_rows: int
    current_rows: int
    started_at: datetime
    finished_at: datetime
    alerts: list[int] = Field(default_factory=list)
    features: list[FeatureResult] = Field(default_factory=list)

    @property
    def urn(self) -> str:
        return f"meshops:monitorresult:{self.id}"


class AlertRuleSpec(BaseModel):
    """Raise an alert when `metric op value` holds for a run's metrics.

    Metrics are the names a result carries (e.g. `dataset_drift`, `share_drifted`,
    `drift.<feature>.score`, `accuracy`, `latency_p99_ms`, `quality.failed_checks`).
    """

    name: str
    metric: str
    op: Comparison = ">="
    value: float
    severity: Severity = "warning"
    webhook_url: str | None = None
    auto_resolve: bool = True

    @field_validator("name")
    @classmethod
    def _valid_name(cls, value: str) -> str:
        if not _NAME.match(value):
            raise ValueError("use letters, digits, '.', '_' and '-' (at most 200 characters)")
        return value

    @field_validator("webhook_url")
    @classmethod
    def _valid_url(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("http://", "https://")):
            raise ValueError("webhook_url must be an http:// or https:// URL")
        return value

    def fires(self, metrics: dict[str, float]) -> bool:
        if self.metric not in metrics:
            return False
        actual = metrics[self.metric]
        return {
            ">": actual > self.value,
            ">=": actual >= self.value,
            "<": actual < self.value,
            "<=": actual <= self.value,
            "==": actual == self.value,
            "!=": actual != self.value,
        }[self.op]


class AlertRule(AlertRuleSpec):
    id: int
    monitor_id: str
    created_at: datetime
    # A rule the monitor has by default (negative id, not stored): see `builtin_rules`.
    builtin: bool = False


# Ids of the built-in rules (alerts keep the id of the rule that opened them).
FEATURE_DRIFT_RULE_ID = -1
DATASET_DRIFT_RULE_ID = -2


def builtin_rules(monitor_id: str, spec: MonitorSpec, created_at: datetime) -> list[AlertRule]:
    """The rules a drift monitor alerts by while it has none of its own: any drifted
    feature (`feature-drift`, or `prediction-drift` for a prediction_drift monitor), and,
    when `drift_share` is set, the dataset-level rule beside it (`dataset-drift`)."""
    if not spec.builtin_rules or not spec.uses_reference:
        return []
    common = {"monitor_id": monitor_id, "created_at": created_at, "builtin": True}
    if spec.kind == "prediction_drift":
        return [
            AlertRule(
                id=FEATURE_DRIFT_RULE_ID, name="prediction-drift", metric="prediction_drift",
                op=">=", value=1, **common,
            )
        ]  # fmt: skip
    rules = [
        AlertRule(
            id=FEATURE_DRIFT_RULE_ID, name="feature-drift", metric="drifted_columns",
            op=">=", value=1, **common,
        )
    ]  # fmt: skip
    if spec.drift_share is not None:
        rules.append(
            AlertRule(
                id=DATASET_DRIFT_RULE_ID, name="dataset-drift", metric="share_drifted",
                op=">=", value=spec.drift_share, **common,
            )
        )  # fmt: skip
    return rules


class Alert(BaseModel):
    id: int
    monitor_id: str
    monitor_name: str
    rule_id: int
    rule_name: str
    state: AlertState
    severity: Severity
    summary: str
    metric: str
    value: float
    endpoint: str | None
    model: str | None
    first_result_id: int
    last_result_id: int
    occurrences: int
    opened_at: datetime
    last_seen_at: datetime
    acknowledged_at: datetime | None
    acknowledged_by: str | None
    resolved_at: datetime | None
    resolved_by: str | None
    note: str
    webhook_status: str | None

    @property
    def urn(self) -> str:
        return f"meshops:alert:{self.id}"
