"""The monitoring API, declared once for both transports (`meshops.kernel.rpc`):
`MonitoringService` implements it in-process, the HTTP client and the routes are derived
from the declarations. Tables travel in the kernel's wire codec."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Protocol

from meshops.kernel import rpc
from meshops.kernel.bounds import Limit, RowId
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
    @rpc.post("/v1/monitors", status=201)
    def create_monitor(self, spec: MonitorSpec, reference: pa.Table | None = None) -> Monitor:
        """Define a monitor; `reference` (e.g. the training set) is stored with it."""
        ...

    @rpc.get("/v1/monitors/{name_or_id}")
    def get_monitor(self, name_or_id: str) -> Monitor: ...

    @rpc.get("/v1/monitors")
    def list_monitors(self, endpoint: str | None = None) -> list[Monitor]: ...

    @rpc.put("/v1/monitors/{monitor}/reference")
    def set_reference(self, monitor: str, reference: pa.Table) -> Monitor: ...

    @rpc.post("/v1/monitors/{monitor}/enabled")
    def set_enabled(self, monitor: str, enabled: bool) -> Monitor: ...

    @rpc.post("/v1/monitors/{monitor}/rules", status=201)
    def add_rule(self, monitor: str, rule: AlertRuleSpec) -> AlertRule: ...

    @rpc.get("/v1/monitors/{monitor}/rules")
    def list_rules(self, monitor: str) -> list[AlertRule]: ...

    @rpc.post("/v1/monitors/{monitor}/runs", status=201)
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

    @rpc.get("/v1/monitoring/due")
    def due_monitors(self, now: datetime | None = None) -> list[Monitor]: ...

    @rpc.post("/v1/monitoring/run-due")
    def run_due(self, now: datetime | None = None) -> list[MonitorResult]:
        """Run every enabled monitor whose schedule is due (what the worker calls)."""
        ...

    @rpc.get("/v1/monitors/{monitor}/results")
    def list_results(self, monitor: str, limit: Limit = 50) -> list[MonitorResult]: ...

    @rpc.get("/v1/monitor-results/{result_id}")
    def get_result(self, result_id: RowId) -> MonitorResult: ...

    @rpc.get("/v1/monitors/{monitor}/history")
    def feature_history(
        self, monitor: str, feature: str | None = None, limit: Limit = 100
    ) -> list[FeatureResult]: ...

    @rpc.get("/v1/monitor-results/{result_id}/report", media_type="text/html")
    def report(self, result_id: RowId) -> str:
        """The run's self-contained HTML report."""
        ...

    @rpc.get("/v1/alerts")
    def list_alerts(
        self, state: str | None = None, monitor: str | None = None, limit: Limit = 100
    ) -> list[Alert]: ...

    @rpc.get("/v1/alerts/{alert_id}")
    def get_alert(self, alert_id: RowId) -> Alert: ...

    @rpc.post("/v1/alerts/{alert_id}/acknowledge")
    def acknowledge_alert(self, alert_id: RowId, note: str = "") -> Alert: ...

    @rpc.post("/v1/alerts/{alert_id}/resolve")
    def resolve_alert(self, alert_id: RowId, note: str = "") -> Alert: ...
