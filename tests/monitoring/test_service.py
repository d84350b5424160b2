"""Monitors, runs, history, reports and alerts over the embedded and HTTP transports."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from sklearn import metrics as skm

from meshops.client import Platform
from meshops.kernel import outbox
from meshops.kernel.errors import Conflict, InvalidInput, NotFound
from meshops.kernel.home import Home
from meshops.monitoring.models import AlertRuleSpec, ColumnSpec, MonitorSource, MonitorSpec
from tests.conftest import free_port

ROWS = 3000


def features(seed: int, shift: float = 0.0, rows: int = ROWS) -> pa.Table:
    rng = np.random.default_rng(seed)
    colors = np.array(["red", "green", "blue"])
    probs = [0.6, 0.3, 0.1] if shift == 0 else [0.1, 0.3, 0.6]
    return pa.table(
        {
            "request_id": [f"r{seed}-{i}" for i in range(rows)],
            "age": rng.normal(40 + 10 * shift, 10, rows),
            "income": rng.lognormal(10, 0.5, rows),
            "color": colors[rng.choice(3, rows, p=probs)],
            "prediction": rng.integers(0, 2, rows),
        }
    )


class Hook:
    """A real loopback HTTP server that records the JSON bodies POSTed to it."""

    def __init__(self) -> None:
        self.bodies: list[dict[str, Any]] = []
        received = self.bodies

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers["content-length"])
                received.append(json.loads(self.rfile.read(length)))
                self.send_response(204)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = HTTPServer(("127.0.0.1", free_port()), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}/alerts"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def hook() -> Iterator[Hook]:
    server = Hook()
    yield server
    server.close()


def drift_monitor(platform: Platform, name: str = "churn-drift") -> None:
    spec = MonitorSpec(
        name=name,
        kind="data_drift",
        domain="sales",
        endpoint="churn",
        model="churn",
        drift={"income": {"method": "psi", "threshold": 0.2}},
    )
    platform.monitoring.create_monitor(spec, reference=features(1))


def test_drift_run_stores_history_and_alerts_once_while_open(
    platform: Platform, hook: Hook
) -> None:
    drift_monitor(platform)
    rule = AlertRuleSpec(
        name="dataset-drift",
        metric="dataset_drift",
        op=">=",
        value=1,
        severity="critical",
        webhook_url=hook.url,
    )
    platform.monitoring.add_rule("churn-drift", rule)

    stable = platform.monitoring.run_monitor("churn-drift", current=features(2))
    assert stable.status == "ok"
    assert {f.feature: f.method for f in stable.features} == {
        "age": "wasserstein",
        "income": "psi",
        "color": "jensenshannon",
    }
    assert not any(f.drifted for f in stable.features)
    assert stable.metrics["dataset_drift"] == 0
    assert stable.features[0].histogram["reference"]

    drifted = platform.monitoring.run_monitor("churn-drift", current=features(3, shift=1.0))
    assert drifted.status == "alert"
    assert {f.feature for f in drifted.features if f.drifted} == {"age", "color"}
    assert drifted.metrics["share_drifted"] == pytest.approx(2 / 3)
    again = platform.monitoring.run_monitor("churn-drift", current=features(4, shift=1.0))

    alerts = platform.monitoring.list_alerts(state="active")
    assert len(alerts) == 1, "an open alert is not raised twice"
    alert = alerts[0]
    assert (alert.state, alert.occurrences, alert.severity) == ("open", 2, "critical")
    assert (alert.first_result_id, alert.last_result_id) == (drifted.id, again.id)
    assert alert.webhook_status == "delivered: HTTP 204"
    assert len(hook.bodies) == 1
    assert hook.bodies[0]["alert_id"] == alert.id
    assert hook.bodies[0]["endpoint"] == "churn"
    assert hook.bodies[0]["model"] == "churn"
    assert hook.bodies[0]["event"] == "monitor.alert"

    history = platform.monitoring.feature_history("churn-drift", feature="age")
    assert [h.result_id for h in history] == [stable.id, drifted.id, again.id]
    assert [h.drifted for h in history] == [False, True, True]

    acked = platform.monitoring.acknowledge_alert(alert.id, note="looking into it")
    assert (acked.state, acked.acknowledged_by) == ("acknowledged", "alice")
    with pytest.raises(Conflict):
        platform.monitoring.acknowledge_alert(alert.id)

    recovered = platform.monitoring.run_monitor("churn-drift", current=features(5))
    assert recovered.status == "ok"
    resolved = platform.monitoring.get_alert(alert.id)
    assert resolved.state == "resolved"
    assert "auto-resolved" in resolved.note
    with pytest.raises(Conflict):
        platform.monitoring.resolve_alert(alert.id)

    platform.monitoring.run_monitor("churn-drift", current=features(6, shift=1.0))
    assert len(platform.monitoring.list_alerts(state="open")) == 1, "a new episode, a new alert"
    assert len(hook.bodies) == 2


def test_alert_event_lineage_and_audit_are_in_the_run_transaction(home: Home) -> None:
    platform = Platform(home.settings, home=home)
    drift_monitor(platform)
    platform.monitoring.add_rule(
        "churn-drift", AlertRuleSpec(name="age", metric="drift.age.drifted", op="==", value=1)
    )
    result = platform.monitoring.run_monitor("churn-drift", current=features(3, shift=1.0))
    [alert] = platform.monitoring.list_alerts()
    with home.db.read() as conn:
        [event] = outbox.recent(conn, topic=outbox.MONITOR_ALERT)
    assert event.subject == f"meshops:alert:{alert.id}"
    assert event.payload["monitor"] == "churn-drift"
    assert event.payload["severity"] == "warning"
    assert event.payload["summary"] == alert.summary
    assert event.payload["result_id"] == result.id
    monitor = platform.monitoring.get_monitor("churn-drift")
    upstream = {e.upstream for e in platform.lineage.upstream(f"meshops:alert:{alert.id}", 3)}
    assert {result.urn, monitor.urn, "meshops:endpoint:churn"} <= upstream
    assert alert.webhook_status == "no webhook"
    platform.close()


def test_webhook_failure_is_recorded_not_raised(platform: Platform) -> None:
    drift_monitor(platform)
    dead = f"http://127.0.0.1:{free_port()}/nobody"
    platform.monitoring.add_rule(
        "churn-drift",
        AlertRuleSpec(name="any", metric="drifted_columns", op=">", value=0, webhook_url=dead),
    )
    platform.monitoring.run_monitor("churn-drift", current=features(3, shift=1.0))
    [alert] = platform.monitoring.list_alerts()
    assert alert.webhook_status is not None and alert.webhook_status.startswith("failed")


def test_performance_with_labels_joined_by_request_id(platform: Platform) -> None:
    rng = np.random.default_rng(11)
    n = 400
    ids = [f"q{i}" for i in range(n)]
    truth = rng.integers(0, 2, n)
    score = np.clip(truth * 0.4 + rng.uniform(0, 0.6, n), 0, 1)
    predicted = (score > 0.5).astype(int)
    window = pa.table({"request_id": ids, "prediction": predicted, "score": score})
    # Labels arrive for a subset, out of order, one corrected twice (the last one wins).
    labelled = rng.permutation(n)[:300]
    label_ids = [ids[i] for i in labelled] + [ids[labelled[0]]]
    label_values = [int(truth[i]) for i in labelled] + [int(truth[labelled[0]])]
    labels = pa.table({"request_id": label_ids, "label": label_values})
    spec = MonitorSpec(name="churn-perf", kind="performance", score_column="score")
    platform.monitoring.create_monitor(spec)
    result = platform.monitoring.run_monitor("churn-perf", current=window, labels=labels)
    y_true, y_pred, y_score = truth[labelled], predicted[labelled], score[labelled]
    assert result.metrics["labelled_rows"] == 300
    assert result.metrics["accuracy"] == pytest.approx(skm.accuracy_score(y_true, y_pred))
    assert result.metrics["f1"] == pytest.approx(skm.f1_score(y_true, y_pred))
    assert result.metrics["precision"] == pytest.approx(skm.precision_score(y_true, y_pred))
    assert result.metrics["recall"] == pytest.approx(skm.recall_score(y_true, y_pred))
    assert result.metrics["roc_auc"] == pytest.approx(skm.roc_auc_score(y_true, y_score))

    regression = MonitorSpec(name="price-perf", kind="performance", task="regression")
    platform.monitoring.create_monitor(regression)
    table = pa.table({"prediction": [1.0, 2.0, 4.0], "label": [1.0, 3.0, 2.0]})
    reg = platform.monitoring.run_monitor("price-perf", current=table)
    assert reg.metrics["mae"] == pytest.approx(1.0)
    assert reg.metrics["rmse"] == pytest.approx(np.sqrt(5 / 3))


def test_quality_and_slo_monitors(platform: Platform) -> None:
    quality = MonitorSpec(
        name="inputs-quality",
        kind="data_quality",
        columns=[
            ColumnSpec(name="age", type="number", minimum=0, maximum=120),
            ColumnSpec(name="color", type="string", allowed_values=["red", "green", "blue"]),
            ColumnSpec(name="zip", type="string"),
        ],
    )
    platform.monitoring.create_monitor(quality)
    window = pa.table({"age": [30.0, None, 150.0, 20.0], "color": ["red", "pink", "blue", None]})
    result = platform.monitoring.run_monitor("inputs-quality", current=window)
    failed = {(c["column"], c["check"]) for c in result.details["checks"] if not c["passed"]}
    assert failed == {
        ("age", "null_share"),
        ("age", "range"),
        ("color", "null_share"),
        ("color", "allowed_values"),
        ("zip", "present"),
    }
    assert result.metrics["quality.failed_checks"] == 5

    slo = MonitorSpec(name="churn-slo", kind="slo", latency_ms_max=50, error_rate_max=0.01)
    platform.monitoring.create_monitor(slo)
    latency = np.arange(1, 101, dtype=float)  # p99 = 99.01 ms
    errors = [None] * 98 + ["timeout", "boom"]
    log = pa.table({"latency_ms": latency, "error": pa.array(errors, pa.string())})
    out = platform.monitoring.run_monitor("churn-slo", current=log)
    assert out.metrics["latency_p99_ms"] == pytest.approx(np.percentile(latency, 99))
    assert out.metrics["error_rate"] == pytest.approx(0.02)
    assert out.metrics["slo.violations"] == 2


def test_schedule_due_monitors_and_parquet_source_window(
    platform: Platform, tmp_path: Path
) -> None:
    start = datetime(2030, 1, 1, tzinfo=UTC)
    times = [start + timedelta(minutes=i) for i in range(120)]
    log = features(9, shift=1.0, rows=120).append_column(
        "ts", pa.array(times, pa.timestamp("us", "UTC"))
    )
    pq.write_table(log, tmp_path / "log.parquet")
    spec = MonitorSpec(
        name="scheduled",
        kind="data_drift",
        schedule="1h",
        window="30m",
        features=["age", "color"],
        source=MonitorSource(type="parquet", options={"path": str(tmp_path / "log.parquet")}),
    )
    created = platform.monitoring.create_monitor(spec, reference=features(1))
    assert created.next_run_at is not None
    assert platform.monitoring.due_monitors(created.next_run_at - timedelta(seconds=1)) == []
    now = start + timedelta(minutes=90)
    assert [m.name for m in platform.monitoring.due_monitors(now)] == ["scheduled"]
    [result] = platform.monitoring.run_due(now)
    assert result.current_rows == 30  # minutes 60..89
    assert result.window_end == now
    assert platform.monitoring.get_monitor("scheduled").next_run_at == now + timedelta(hours=1)
    assert platform.monitoring.due_monitors(now) == []


def test_scheduled_run_without_source_records_an_error_result(platform: Platform) -> None:
    spec = MonitorSpec(name="no-source", kind="data_drift", schedule="1h")
    created = platform.monitoring.create_monitor(spec, reference=features(1))
    assert created.next_run_at is not None
    [result] = platform.monitoring.run_due(created.next_run_at)
    assert result.status == "error"
    assert "no data source" in result.summary


def test_report_is_self_contained_html_with_plots(platform: Platform) -> None:
    drift_monitor(platform)
    platform.monitoring.run_monitor("churn-drift", current=features(2))
    result = platform.monitoring.run_monitor("churn-drift", current=features(3, shift=1.0))
    html = platform.monitoring.report(result.id)
    assert html.startswith("<!doctype html>")
    assert html.count("<svg") == 4  # three histograms and the drift-over-time plot
    assert "Drift scores over time" in html
    assert "<script" not in html and "cdn" not in html.lower()
    assert "color" in html and "wasserstein" in html
    assert platform.monitoring.report(result.id) == html  # cached


def test_errors_name_the_problem_and_fix(platform: Platform) -> None:
    with pytest.raises(NotFound, match="does not exist"):
        platform.monitoring.get_monitor("nope")
    platform.monitoring.create_monitor(MonitorSpec(name="bare", kind="data_drift"))
    with pytest.raises(InvalidInput) as info:
        platform.monitoring.run_monitor("bare", current=features(1))
    assert "reference" in info.value.message
    assert "fix" in info.value.detail
    with pytest.raises(Conflict):
        platform.monitoring.create_monitor(MonitorSpec(name="bare", kind="data_drift"))
    platform.monitoring.set_reference("bare", features(1))
    platform.monitoring.create_monitor(
        MonitorSpec(name="ages", kind="data_drift", features=["age"]), reference=features(1)
    )
    with pytest.raises(InvalidInput, match="no column"):
        platform.monitoring.run_monitor("ages", current=features(2).drop_columns(["age"]))
    with pytest.raises(NotFound):
        platform.monitoring.get_alert(12345)
    with pytest.raises(InvalidInput, match="unknown alert state"):
        platform.monitoring.list_alerts(state="sleeping")
