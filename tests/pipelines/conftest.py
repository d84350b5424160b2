from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meshops.client import Platform
from meshops.monitoring.events import MonitorAlert

FLOWS = str(Path(__file__).with_name("flows.py").resolve())


@pytest.fixture
def marks(tmp_path: Path) -> Path:
    path = tmp_path / "marks"
    path.mkdir()
    return path


def executions(marks: Path, name: str) -> int:
    """How many times a step really ran (each execution appends a line)."""
    log = marks / f"{name}.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


@pytest.fixture
def sqlite_platform(tmp_path: Path) -> Iterator[Platform]:
    """An embedded platform on SQLite, for tests about execution rather than transport."""
    from meshops.kernel.home import Home
    from tests.conftest import make_settings

    home = Home(make_settings(tmp_path / "home"))
    platform = Platform(home.settings, home=home)
    yield platform
    platform.close()
    home.close()


def alert(monitor: str = "m1", severity: str = "critical") -> MonitorAlert:
    """A `monitor.alert` event's payload, as monitoring emits it."""
    return MonitorAlert(
        alert_id=1,
        alert_urn="meshops:alert:1",
        monitor_id=f"id-{monitor}",
        monitor=monitor,
        kind="data_drift",
        domain="sales",
        endpoint=None,
        model=None,
        rule="drift",
        metric="psi",
        value=0.4,
        severity=severity,
        summary=f"{monitor}: psi = 0.4 (> 0.2)",
        result_id=1,
        opened_at="2026-01-01T00:00:00+00:00",
    )
