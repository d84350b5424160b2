"""The data plane in one process: shadows scored off the request path (still logged, every
one), and `meshops endpoints roll-log`."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest

from meshops.client import Platform
from meshops.kernel.home import Home
from meshops.serving import store
from meshops.serving.predlog import LogBackpressure, PredictionLogWriter, now
from meshops.serving.runtime import ShadowScorer, runtime_for
from tests.conftest import make_settings
from tests.serving.helpers import record, register_churn

SHADOW_SECONDS = 0.4


class SlowShadow:
    """A python-flavor model that takes SHADOW_SECONDS per call."""

    def predict(self, frame: pd.DataFrame) -> list[int]:
        time.sleep(SHADOW_SECONDS)
        return [7] * len(frame)


def _slow_shadow_endpoint(platform: Platform) -> None:
    register_churn(platform)
    platform.registry.create_model("slow", domain="sales")
    example = pd.DataFrame([record(0)])
    platform.registry.log_model("slow", SlowShadow(), flavor="python", input_example=example)
    platform.serving.create_endpoint(
        "churn-api", "churn@champion", shadows=["slow/1"], trust_model_code=True
    )


def test_shadows_are_scored_off_the_request_path_and_all_logged(sqlite_home: Home) -> None:
    platform = Platform(sqlite_home.settings, home=sqlite_home)
    _slow_shadow_endpoint(platform)
    platform.serving.predict("churn-api", [record(0)], request_id="warm")  # loads both models
    started = time.perf_counter()
    for i in range(4):
        answer = platform.serving.predict("churn-api", [record(i)], request_id=f"s-{i}")
        assert answer.model_version == 1 and answer.model == "churn"
    # Scored inline, four requests would take >= 4 x SHADOW_SECONDS.
    assert time.perf_counter() - started < 2 * SHADOW_SECONDS
    window = platform.serving.prediction_window("churn-api", include_shadow=True).to_pylist()
    shadows = [r for r in window if r["role"] == "shadow"]
    assert sorted(r["request_id"] for r in shadows) == ["s-0", "s-1", "s-2", "s-3", "warm"]
    assert {r["prediction"] for r in shadows} == {7}
    assert min(r["latency_ms"] for r in shadows) >= SHADOW_SECONDS * 1000
    platform.close()


def test_a_full_shadow_queue_scores_inline_and_drops_nothing(sqlite_home: Home) -> None:
    platform = Platform(sqlite_home.settings, home=sqlite_home)
    _slow_shadow_endpoint(platform)
    runtime = runtime_for(sqlite_home)
    runtime.shadows = ShadowScorer(runtime.log, max_pending=1)
    for i in range(4):
        platform.serving.predict("churn-api", [record(i)], request_id=f"q-{i}")
    assert runtime.shadows.inline >= 1  # the queue was full: scored on the request thread
    window = platform.serving.prediction_window("churn-api", include_shadow=True)
    roles = window.column("role").to_pylist()
    assert roles.count("shadow") == 4 and roles.count("primary") == 4
    platform.close()


def _log_row(i: int) -> tuple[Any, ...]:
    return (f"bp-{i}", 0, "churn-api", "churn", 1, "primary", "{}", "{}", "1", 0.5, now())


def test_a_full_prediction_log_pushes_back_and_loses_nothing(sqlite_home: Home) -> None:
    writer = PredictionLogWriter(
        sqlite_home, batch_rows=10, flush_seconds=0.05, max_rows=20, block_seconds=0.3
    )
    with sqlite_home.db.begin():  # holds the write lock: the writer's chunk insert waits
        writer.append([_log_row(i) for i in range(20)])
        with pytest.raises(LogBackpressure) as info:
            writer.append([_log_row(20)])
        assert info.value.http_status == 503
        assert writer.buffered == 20  # bounded: the refused row was not taken
    writer.append([_log_row(i) for i in range(20, 25)])  # room again once the writer ran
    writer.flush()
    writer.close()
    with sqlite_home.db.read() as conn:
        chunks = store.chunks_in_window(conn, "churn-api", None, None)
    assert sum(c.rows for c in chunks) == writer.rows_written == 25


def test_cli_roll_log_and_trusted_endpoint(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from meshops.cli.main import app

    home_dir = tmp_path / "home"
    settings = make_settings(home_dir)
    home = Home(settings)
    with Platform(settings, home=home) as platform:
        _slow_shadow_endpoint(platform)
        platform.serving.predict("churn-api", [record(0), record(1)], request_id="cli-1")
    # Platform.close wrote the buffered log; the CLI opens the home on its own.
    runner = CliRunner()
    env = {"MESHOPS_HOME": str(home_dir), "MESHOPS_USER": "alice"}

    def run(*args: str) -> Any:
        result = runner.invoke(app, list(args), env=env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result

    rolled = json.loads(run("endpoints", "roll-log", "churn-api", "--json").stdout)
    assert rolled["product"] == "sales.churn_api_predictions"
    assert (rolled["version"], rolled["rows"]) == ("1.0.0", 4)  # 2 primary + 2 shadow rows
    assert "(nothing new)" in run("endpoints", "roll-log", "churn-api").stdout
    shown = json.loads(run("endpoints", "show", "churn-api", "--json").stdout)
    assert shown["trust_model_code"] is True
    refused = runner.invoke(app, ["endpoints", "create", "slow-api", "--model", "slow/1"], env=env)
    assert refused.exit_code != 0
    run("endpoints", "create", "slow-api", "--model", "slow/1", "--trust-model-code")
    with Platform(settings, home=home) as platform:
        assert platform.mesh.read(rolled["product"], "1.0.0").num_rows == 4
        events = platform.governance.audit_events(obj="meshops:endpoint:slow-api")
        assert "serving.trust_model_code" in [e.action for e in events]
    home.close()


@pytest.fixture(autouse=True)
def _fast_poll(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MESHOPS_SERVING_POLL_SECONDS", "0.2")
