"""`meshops demo` at the small scale: the final state of the organisation it builds."""

from __future__ import annotations

import io
import itertools
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from rich.console import Console

import meshops
from meshops.demo.run import run_demo
from tests.conftest import free_port


def test_demo_small_scale_end_state(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    for name in ("MESHOPS_HOME", "MESHOPS_USER"):  # the demo sets them for its steps
        monkeypatch.setenv(name, "unset")
    out = io.StringIO()
    result = run_demo(
        tmp_path / "demo", seed=3, scale="small", console=Console(file=out, width=120)
    )
    assert result.products["sales.orders"] == ["1.0.0", "2.0.0"]
    assert result.products["sales.customer_activity"] == ["1.0.0", "2.0.0"]
    assert result.products["customers.profiles"] == ["1.0.0"]
    assert sorted(result.model_versions) == [1, 2]
    assert result.alias_moves == [(None, 1), (1, 2)]
    assert result.served_after == 2
    assert result.alert_id is not None and result.retrain_run
    text = out.getvalue()
    assert "churn-api now serves v2" in text and "lineage:" in text
    # The demo's server stopped with it: no URL or token printed for it, nothing answers.
    assert "http://" not in text and result.token not in text and "server has stopped" in text
    with pytest.raises(httpx.TransportError):
        httpx.get(f"{result.url}/healthz", timeout=2)

    with meshops.connect(home=result.home) as p:
        grants = p.governance.list_grants(product="customers.profiles", grantee="dana")
        assert [g.id for g in grants] == result.grants
        (request,) = p.governance.list_requests(product="customers.profiles")
        assert request.status == "approved"
        alert = p.monitoring.get_alert(result.alert_id)
        assert alert.monitor_name == "churn-drift" and alert.endpoint == "churn-api"
        run = p.pipelines.get_run(result.retrain_run).run
        assert run.status.value == "succeeded"
        assert run.origin["trigger"] == "retrain-on-drift"
        assert run.origin["subject"] == f"meshops:alert:{result.alert_id}"
        v2 = p.registry.get_version("churn", 2)
        assert v2.metrics["roc_auc_lift"] > 0
        # the move was justified on the same rows for both models, recorded and linked
        (comparison,) = p.registry.list_comparisons("churn", version=2)
        assert comparison.id == result.comparison["id"] and comparison.allowed
        assert (comparison.champion_version, comparison.metric) == (1, "roc_auc")
        assert comparison.challenger_score > (comparison.champion_score or 1.0)
        run = p.tracking.get_run(comparison.run_id)
        assert run.metrics["champion_roc_auc"] == comparison.champion_score
        upstream = {e.upstream for e in p.lineage.upstream(comparison.run_urn, depth=1)}
        assert {v2.urn, "meshops:model:churn:1", comparison.data_urn} <= upstream
        # the showcase online lookup, after the last ingest: every feature fresh
        assert result.online["status"] == "ok"
        assert all(v is not None for v in result.online["values"].values())
        assert "champion/challenger: v2 vs v1 on the same" in text
        # every hop of the printed path is a real path in the lineage graph
        path = result.lineage_path
        for upstream, downstream in itertools.pairwise(path):
            reachable = {e.downstream for e in p.lineage.downstream(upstream, depth=12)}
            assert downstream in reachable, (upstream, downstream)


def test_demo_serve_prints_the_urls_of_the_running_server(tmp_path: Path) -> None:
    """`meshops demo --serve`: the UI and docs URLs and a token are printed once the demo is
    done, while its server answers; SIGTERM stops it like Ctrl-C."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHOPS_")}
    env["COLUMNS"] = "200"
    argv = [sys.executable, "-m", "meshops.cli.main", "demo", "--serve", "--scale", "small"]
    argv += ["--seed", "3", "--home", str(tmp_path / "demo"), "--port", str(port)]
    log_path = tmp_path / "demo.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            argv, cwd=tmp_path, env=env, stdout=log, stderr=subprocess.STDOUT
        )
    try:
        text = _wait_for(log_path, "sign in with the admin token", process)
        url = f"http://127.0.0.1:{port}"
        assert f"UI: {url}/ui   API docs: {url}/docs" in text, text
        token = text.split("sign in with the admin token ", 1)[1].split()[0]
        page = httpx.get(f"{url}/v1/models", headers={"authorization": f"Bearer {token}"})
        assert page.status_code == 200 and "churn" in page.text
        assert httpx.get(f"{url}/docs").status_code == 200
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=60)
    assert process.returncode == 0 and "stopping" in log_path.read_text()


def _wait_for(log_path: Path, marker: str, process: subprocess.Popen[bytes]) -> str:
    deadline = time.monotonic() + 300  # the whole small demo first, on a shared machine
    while time.monotonic() < deadline:
        text = log_path.read_text(errors="replace")
        if marker in text:
            return text
        if process.poll() is not None:
            raise AssertionError(f"meshops demo --serve exited:\n{text[-3000:]}")
        time.sleep(0.2)
    raise AssertionError(f"meshops demo --serve did not serve:\n{log_path.read_text()[-3000:]}")
