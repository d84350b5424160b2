"""What monitoring announces on the outbox (`meshops.kernel.outbox`)."""

from __future__ import annotations

from meshops.kernel import outbox


class MonitorAlert(outbox.EventPayload):
    """A rule of a monitor opened an alert."""

    topic = outbox.MONITOR_ALERT
    alert_id: int
    alert_urn: str
    monitor_id: str
    monitor: str
    kind: str
    domain: str | None
    endpoint: str | None
    model: str | None
    rule: str
    metric: str
    value: float
    severity: str
    summary: str
    result_id: int
    opened_at: str  # ISO 8601
