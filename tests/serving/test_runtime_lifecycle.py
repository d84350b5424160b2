"""A serving runtime's threads stop with its home, and a failing watcher does not flood the
log (its traceback once, then a line a minute, then a line when it recovers)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from meshops.client import Platform
from meshops.kernel.home import Home
from meshops.serving import runtime as runtime_module
from meshops.serving.runtime import _Failures, existing_runtime, runtime_for
from tests.conftest import make_settings
from tests.serving.helpers import record, register_churn


def test_closing_the_home_stops_its_serving_threads(tmp_path: Path) -> None:
    home = Home(make_settings(tmp_path / "home"))
    platform = Platform(home.settings, home=home)
    register_churn(platform)
    platform.serving.create_endpoint("churn-api", "churn@champion")
    platform.serving.predict("churn-api", [record(0)])
    runtime = runtime_for(home)
    watcher = runtime._watcher
    assert watcher is not None and watcher.is_alive()
    home.close()
    assert existing_runtime(home) is None
    watcher.join(5)
    assert not watcher.is_alive()
    # What it had buffered was written before the database closed.
    reopened = Home(home.settings)
    try:
        window = Platform(reopened.settings, home=reopened).serving.prediction_window(
            "churn-api", with_labels=False
        )
        assert window.num_rows == 1
    finally:
        reopened.close()


def test_a_failing_watcher_logs_once_then_a_line_a_minute_then_its_recovery(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [1000.0]
    monkeypatch.setattr(runtime_module.time, "monotonic", lambda: clock[0])
    failures = _Failures()
    with caplog.at_level(logging.WARNING, logger=runtime_module.__name__):
        for _ in range(30):  # a minute of polls every two seconds
            failures.failed(ConnectionError("database is down"))
            clock[0] += 2.0
        failures.failed(ConnectionError("database is down"))  # 62 s after the first
        failures.succeeded()
        failures.succeeded()
    messages = [(r.levelname, r.getMessage(), r.exc_info is not None) for r in caplog.records]
    assert messages == [
        ("ERROR", "endpoint watcher failed; serving what is loaded, polling on", True),
        ("WARNING", "endpoint watcher still failing (31 polls): database is down", False),
        ("WARNING", "endpoint watcher recovered after 31 failed polls", False),
    ]


def test_a_connected_platform_stops_its_serving_threads_when_closed(tmp_path: Path) -> None:
    """`with meshops.connect() as platform:` opens a home of its own: leaving the block
    closes it, so an SDK loop of connect-and-predict leaves no thread behind."""
    import meshops

    with meshops.connect(home=tmp_path / "home") as platform:
        register_churn(platform)
        platform.serving.create_endpoint("churn-api", "churn@champion")
        platform.serving.predict("churn-api", [record(0)])
        home = platform.home
        assert home is not None
        watcher = runtime_for(home)._watcher
        assert watcher is not None and watcher.is_alive()
    assert existing_runtime(home) is None
    watcher.join(5)
    assert not watcher.is_alive()
    with meshops.connect(home=tmp_path / "home") as again:  # the log was written on close
        window = again.serving.prediction_window("churn-api", with_labels=False)
        assert window.num_rows == 1
