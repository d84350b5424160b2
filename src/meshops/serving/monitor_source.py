"""The `prediction_log` monitor source: scheduled monitor runs read an endpoint's served
predictions (with their feedback labels) through `ServingService.prediction_window`.

    source: {type: prediction_log, options: {endpoint: churn-api, include_shadow: false}}

`endpoint` defaults to the monitor's `endpoint`. The window has one column per input and
added feature (what drift and quality monitors compare), `prediction`, `latency_ms` and
`label` (null until feedback arrives), so performance monitors need no separate labels
table. The monitoring area loads this class by name (it imports no area).
"""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from meshops.kernel.errors import InvalidInput

if TYPE_CHECKING:
    from meshops.kernel.home import Context
    from meshops.monitoring.models import MonitorSpec
    from meshops.monitoring.sources import WindowData

OPTIONS = {"endpoint", "include_shadow", "with_labels"}


class PredictionLogSource:
    def __init__(self, options: dict[str, Any]) -> None:
        unknown = sorted(set(options) - OPTIONS)
        if unknown:
            raise InvalidInput(
                f"unknown prediction_log source option(s) {unknown}",
                {"field": "source.options", "expected": sorted(OPTIONS)},
            )
        endpoint = options.get("endpoint")
        self.endpoint = str(endpoint) if endpoint else None
        self.include_shadow = bool(options.get("include_shadow", False))
        self.with_labels = bool(options.get("with_labels", True))

    def read(self, ctx: Context, spec: MonitorSpec, start: datetime, end: datetime) -> WindowData:
        from meshops.monitoring.sources import WindowData
        from meshops.serving.service import ServingService

        endpoint = self.endpoint or spec.endpoint
        if not endpoint:
            raise InvalidInput(
                f"monitor {spec.name!r} reads a prediction log but names no endpoint",
                {"field": "source.options.endpoint", "fix": "set endpoint on the monitor"},
            )
        table = ServingService(ctx).prediction_window(
            endpoint,
            start,
            end,
            with_labels=self.with_labels,
            include_shadow=self.include_shadow,
        )
        # Labels are joined per (request id, record) already: no separate labels table.
        return WindowData(table, None)
