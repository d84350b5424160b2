"""Alert rules over monitor results: raise (deduplicated while open), auto-resolve, notify.

Opening an alert writes the alert row, the `monitor.alert` outbox event, the audit event
and the lineage edge in the run's transaction; the webhook is called after the commit
(never hold a database transaction across a network call) and its outcome recorded.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import Connection

from meshops.kernel import lineage, outbox
from meshops.kernel.home import Context
from meshops.monitoring import store
from meshops.monitoring.events import MonitorAlert
from meshops.monitoring.models import AlertRule, Monitor

WEBHOOK_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True)
class OpenedAlert:
    alert_id: int
    webhook_url: str | None
    payload: dict[str, Any]


def open_key(monitor_id: str, rule_id: int) -> str:
    return f"{monitor_id}:{rule_id}"


def apply_rules(
    ctx: Context,
    conn: Connection,
    monitor: Monitor,
    *,
    rules: list[AlertRule],
    result_id: int,
    metrics: dict[str, float],
    now: datetime,
    retired: list[AlertRule] | None = None,
) -> list[OpenedAlert]:
    """Fire, refresh or auto-resolve each rule's alert; returns the newly opened ones.
    The alerts of `retired` rules (built-in rules replaced by added ones) resolve."""
    opened: list[OpenedAlert] = []
    in_effect = [(rule, True) for rule in rules] + [(rule, False) for rule in retired or []]
    for rule, applies in in_effect:
        key = open_key(monitor.id, rule.id)
        existing = store.open_alert_row(conn, key)
        if applies and rule.fires(metrics):
            if existing is None:
                opened.append(
                    _open(
                        ctx, conn, monitor, rule=rule, result_id=result_id, metrics=metrics, now=now
                    )
                )
            else:
                store.update_alert(
                    conn,
                    existing["id"],
                    last_seen_at=now,
                    last_result_id=result_id,
                    occurrences=existing["occurrences"] + 1,
                    value=metrics[rule.metric],
                )
        elif existing is not None and (rule.auto_resolve or not applies):
            store.update_alert(
                conn,
                existing["id"],
                state="resolved",
                resolved_at=now,
                resolved_by=ctx.actor.name,
                note=_append(existing["note"], f"auto-resolved by result {result_id}"),
                open_key=None,
            )
            ctx.audit(
                conn,
                "monitoring.alert_resolve",
                f"meshops:alert:{existing['id']}",
                detail={"auto": True, "result_id": result_id},
            )
    return opened


def _open(
    ctx: Context,
    conn: Connection,
    monitor: Monitor,
    *,
    rule: AlertRule,
    result_id: int,
    metrics: dict[str, float],
    now: datetime,
) -> OpenedAlert:
    value = metrics[rule.metric]
    summary = f"{monitor.name}: {rule.metric} = {value:.6g} ({rule.op} {rule.value:g})"
    inserted = (
        conn.execute(
            store.monitor_alerts.insert().values(
                monitor_id=monitor.id,
                rule_id=rule.id,
                rule_name=rule.name,
                state="open",
                severity=rule.severity,
                summary=summary,
                metric=rule.metric,
                value=value,
                first_result_id=result_id,
                last_result_id=result_id,
                occurrences=1,
                opened_at=now,
                last_seen_at=now,
                note="",
                webhook_status=None if rule.webhook_url else "no webhook",
                open_key=open_key(monitor.id, rule.id),
            )
        )
    ).inserted_primary_key
    assert inserted is not None
    alert_id = int(inserted[0])
    alert_urn = f"meshops:alert:{alert_id}"
    payload = {
        "alert_id": alert_id,
        "alert_urn": alert_urn,
        "monitor_id": monitor.id,
        "monitor": monitor.name,
        "kind": monitor.kind,
        "domain": monitor.domain,
        "endpoint": monitor.endpoint,
        "model": monitor.model,
        "rule": rule.name,
        "metric": rule.metric,
        "value": value,
        "severity": rule.severity,
        "summary": summary,
        "result_id": result_id,
        "opened_at": now.isoformat(),
    }
    outbox.emit(conn, alert_urn, MonitorAlert.model_validate(payload), ctx.actor.name)
    lineage.add_edge(conn, f"meshops:monitorresult:{result_id}", alert_urn, "raised")
    ctx.audit(conn, "monitoring.alert_open", alert_urn, after=payload)
    return OpenedAlert(alert_id, rule.webhook_url, payload)


def notify_webhook(url: str, payload: dict[str, Any]) -> str:
    """POST the alert as JSON; returns what happened, for the alert's webhook_status."""
    import httpx

    try:
        response = httpx.post(
            url,
            json={"event": outbox.MONITOR_ALERT, **payload},
            timeout=WEBHOOK_TIMEOUT_SECONDS,
            headers={"user-agent": "meshops-monitoring"},
        )
    except httpx.HTTPError as exc:
        return f"failed: {type(exc).__name__}: {exc}"[:500]
    if response.status_code >= 400:
        return f"failed: HTTP {response.status_code}"
    return f"delivered: HTTP {response.status_code}"


def _append(note: str, line: str) -> str:
    return f"{note}\n{line}".strip()
