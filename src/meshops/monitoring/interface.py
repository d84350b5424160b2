"""The monitoring API, identical over both transports (`MonitoringService` in-process and
`RemoteMonitoring` over HTTP both satisfy this Protocol; mypy checks it in `client.py`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from meshops.monitoring.models import (
    Alert,
    AlertRule,
    AlertRuleSpec,
    FeatureResult,
    Monitor,
    MonitorResult,
    MonitorSpec,
)

if TYPE_CHECKING:
    import pyarrow as pa


class Monitoring(Protocol):
    def create_monitor(self, spec: MonitorSpec, reference: pa.Table | None = None) -> Monitor:
        """Define a monitor; `reference` (e.g. the training set) is stored with it."""
        ...

    def get_monitor(self, name_or_id: str) -> Monitor: ...

    def list_monitors(self, endpoint: str | None = None) -> list[Monitor]: ...

    def set_reference(self, monitor: str, reference: pa.Table) -> Monitor: ...

    def set_enabled(self, monitor: str, enabled: bool) -> Monitor: ...

    def add_rule(self, monitor: str, rule: AlertRuleSpec) -> AlertRule: ...

    def list_rules(self, monitor: str) -> list[AlertRule]: ...

    def run_monitor(
        self,
        monitor: str,
        current: pa.Table | None = None,
        reference: pa.Table | None = None,
        labels: pa.Table | None = None,
        now: datetime | None = None,
    ) -> MonitorResult:
        """Run once. Tables given here win; otherwise the stored reference and the
        monitor's source over its window ending `now` are used."""
        ...

    def due_monitors(self, now: datetime | None = None) -> list[Monitor]: ...

    def run_due(self, now: datetime | None = None) -> list[MonitorResult]:
        """Run every enabled monitor whose schedule is due (what the worker calls)."""
        ...

    def list_results(self, monitor: str, limit: int = 50) -> list[MonitorResult]: ...

    def get_result(self, result_id: int) -> MonitorResult: ...

    def feature_history(
        self, monitor: str, feature: str | None = None, limit: int = 100
    ) -> list[FeatureResult]: ...

    def report(self, result_id: int) -> str:
        """The run's self-contained HTML report."""
        ...

    def list_alerts(
        self, state: str | None = None, monitor: str | None = None, limit: int = 100
    ) -> list[Alert]: ...

    def get_alert(self, alert_id: int) -> Alert: ...

    def acknowledge_alert(self, alert_id: int, note: str = "") -> Alert: ...

    def resolve_alert(self, alert_id: int, note: str = "") -> Alert: ...
