"""The `meshops monitors` and `meshops alerts` commands against an embedded home."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from tests.monitoring.test_service import features
from tests.support.cli import run_cli


def test_create_run_report_and_alert_lifecycle(tmp_path: Path) -> None:
    home = tmp_path / "home"
    pq.write_table(features(1), tmp_path / "train.parquet")
    pq.write_table(features(3, shift=1.0), tmp_path / "window.parquet")
    (tmp_path / "monitor.yaml").write_text(
        "name: churn-drift\nkind: data_drift\nendpoint: churn\n"
        "rules:\n  - {name: drift, metric: dataset_drift, op: '>=', value: 1}\n"
    )
    created = run_cli(
        "monitors",
        "create",
        str(tmp_path / "monitor.yaml"),
        "--reference",
        str(tmp_path / "train.parquet"),
        home=home,
    )
    assert created.returncode == 0, created.stderr
    run = run_cli(
        "monitors",
        "run",
        "churn-drift",
        "--current",
        str(tmp_path / "window.parquet"),
        "--json",
        home=home,
    )
    assert run.returncode == 0, run.stderr
    [result] = json.loads(run.stdout)
    assert result["status"] == "alert"
    assert {f["feature"] for f in result["features"] if f["drifted"]} == {"age", "color"}

    alerts = json.loads(run_cli("alerts", "list", "--json", home=home).stdout)
    assert [a["state"] for a in alerts] == ["open"]
    acked = run_cli("alerts", "ack", str(alerts[0]["id"]), "-m", "on it", "--json", home=home)
    assert json.loads(acked.stdout)[0]["state"] == "acknowledged"

    report = run_cli(
        "monitors", "report", str(result["id"]), "-o", str(tmp_path / "r.html"), home=home
    )
    assert report.returncode == 0, report.stderr
    assert "<svg" in (tmp_path / "r.html").read_text()

    missing = run_cli("monitors", "show", "nope", home=home)
    assert missing.returncode == 3
    assert "meshops monitors list" in missing.stderr
