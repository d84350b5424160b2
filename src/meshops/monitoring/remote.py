"""The monitoring API over HTTP: tables travel as Parquet files in multipart requests."""

from __future__ import annotations

from datetime import datetime
from typing import Any

import httpx
import pyarrow as pa

from meshops.kernel.http import HttpTransport
from meshops.monitoring import arrowio
from meshops.monitoring.models import (
    Alert,
    AlertRule,
    AlertRuleSpec,
    FeatureResult,
    Monitor,
    MonitorResult,
    MonitorSpec,
)

PARQUET = "application/vnd.apache.parquet"


def _multipart(
    fields: dict[str, str], tables: dict[str, pa.Table | None]
) -> tuple[bytes, dict[str, str]]:
    """Encode form fields and Parquet files with httpx's multipart encoder, so the shared
    transport (and its error mapping) sends the request."""
    files = {
        name: (f"{name}.parquet", arrowio.to_parquet(table), PARQUET)
        for name, table in tables.items()
        if table is not None
    }
    request = httpx.Request("POST", "http://meshops/", data=fields, files=files or None)
    return request.read(), {"content-type": request.headers["content-type"]}


class RemoteMonitoring:
    def __init__(self, http: HttpTransport) -> None:
        self.http = http

    def _post_multipart(
        self, path: str, fields: dict[str, str], tables: dict[str, pa.Table | None]
    ) -> Any:
        if not any(t is not None for t in tables.values()) and not fields:
            return self.http.post(path)
        body, headers = _multipart(fields, tables)
        return self.http.request("POST", path, content=body, headers=headers)

    def create_monitor(self, spec: MonitorSpec, reference: pa.Table | None = None) -> Monitor:
        body = self._post_multipart(
            "/v1/monitors", {"spec": spec.model_dump_json()}, {"reference": reference}
        )
        return Monitor.model_validate(body)

    def get_monitor(self, name_or_id: str) -> Monitor:
        return Monitor.model_validate(self.http.get(f"/v1/monitors/{name_or_id}"))

    def list_monitors(self, endpoint: str | None = None) -> list[Monitor]:
        return [Monitor.model_validate(m) for m in self.http.get("/v1/monitors", endpoint=endpoint)]

    def set_reference(self, monitor: str, reference: pa.Table) -> Monitor:
        body = self.http.request(
            "PUT",
            f"/v1/monitors/{monitor}/reference",
            content=arrowio.to_parquet(reference),
            headers={"content-type": PARQUET},
        )
        return Monitor.model_validate(body)

    def set_enabled(self, monitor: str, enabled: bool) -> Monitor:
        body = self.http.post(f"/v1/monitors/{monitor}/enabled", {"enabled": enabled})
        return Monitor.model_validate(body)

    def add_rule(self, monitor: str, rule: AlertRuleSpec) -> AlertRule:
        body = self.http.post(f"/v1/monitors/{monitor}/rules", rule.model_dump(mode="json"))
        return AlertRule.model_validate(body)

    def list_rules(self, monitor: str) -> list[AlertRule]:
        return [AlertRule.model_validate(r) for r in self.http.get(f"/v1/monitors/{monitor}/rules")]

    def run_monitor(
        self,
        monitor: str,
        current: pa.Table | None = None,
        reference: pa.Table | None = None,
        labels: pa.Table | None = None,
        now: datetime | None = None,
    ) -> MonitorResult:
        fields = {"now": now.isoformat()} if now else {}
        body = self._post_multipart(
            f"/v1/monitors/{monitor}/runs",
            fields,
            {"current": current, "reference": reference, "labels": labels},
        )
        return MonitorResult.model_validate(body)

    def due_monitors(self, now: datetime | None = None) -> list[Monitor]:
        body = self.http.get("/v1/monitoring/due", now=now.isoformat() if now else None)
        return [Monitor.model_validate(m) for m in body]

    def run_due(self, now: datetime | None = None) -> list[MonitorResult]:
        body = self.http.post("/v1/monitoring/run-due", {"now": now.isoformat() if now else None})
        return [MonitorResult.model_validate(r) for r in body]

    def list_results(self, monitor: str, limit: int = 50) -> list[MonitorResult]:
        body = self.http.get(f"/v1/monitors/{monitor}/results", limit=limit)
        return [MonitorResult.model_validate(r) for r in body]

    def get_result(self, result_id: int) -> MonitorResult:
        return MonitorResult.model_validate(self.http.get(f"/v1/monitor-results/{result_id}"))

    def feature_history(
        self, monitor: str, feature: str | None = None, limit: int = 100
    ) -> list[FeatureResult]:
        body = self.http.get(f"/v1/monitors/{monitor}/history", feature=feature, limit=limit)
        return [FeatureResult.model_validate(r) for r in body]

    def report(self, result_id: int) -> str:
        body = self.http.get(f"/v1/monitor-results/{result_id}/report")
        return body.decode() if isinstance(body, bytes) else str(body)

    def list_alerts(
        self, state: str | None = None, monitor: str | None = None, limit: int = 100
    ) -> list[Alert]:
        body = self.http.get("/v1/alerts", state=state, monitor=monitor, limit=limit)
        return [Alert.model_validate(a) for a in body]

    def get_alert(self, alert_id: int) -> Alert:
        return Alert.model_validate(self.http.get(f"/v1/alerts/{alert_id}"))

    def acknowledge_alert(self, alert_id: int, note: str = "") -> Alert:
        body = self.http.post(f"/v1/alerts/{alert_id}/acknowledge", {"note": note})
        return Alert.model_validate(body)

    def resolve_alert(self, alert_id: int, note: str = "") -> Alert:
        body = self.http.post(f"/v1/alerts/{alert_id}/resolve", {"note": note})
        return Alert.model_validate(body)
