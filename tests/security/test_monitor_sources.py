"""A monitor's Parquet source is a file path the platform reads: it must be no way round the
read guard. The home (metadata database, snapshots, secret key) is never a source; the API
server reads sources only under the folders its admin lists in `[monitoring] source_paths`
(the test homes allow the test's own folder, see tests/conftest.py make_settings)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from meshops.client import Platform
from meshops.kernel.errors import Forbidden
from meshops.monitoring.models import MonitorSource, MonitorSpec
from tests.conftest import open_platform
from tests.monitoring.test_service import features

START = datetime(2030, 1, 1, tzinfo=UTC)


def _window_file(path: Path) -> None:
    times = [START + timedelta(minutes=i) for i in range(60)]
    table = features(3, rows=60).append_column("ts", pa.array(times, pa.timestamp("us", "UTC")))
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(table, path)


def _monitor(platform: Platform, name: str, path: Path) -> None:
    spec = MonitorSpec(
        name=name,
        kind="data_drift",
        window="30m",
        features=["age"],
        source=MonitorSource(type="parquet", options={"path": str(path)}),
    )
    platform.monitoring.create_monitor(spec, reference=features(1))


@pytest.fixture(params=["embedded", "http"])
def platform(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Platform]:
    with open_platform(request.param, tmp_path / "home") as p:
        yield p


def test_a_file_inside_the_home_is_never_a_source(platform: Platform, tmp_path: Path) -> None:
    inside = tmp_path / "home" / "blobs" / "planted.parquet"
    _window_file(inside)
    _monitor(platform, "inside-home", inside)
    with pytest.raises(Forbidden, match="platform's own storage"):
        platform.monitoring.run_monitor("inside-home", now=START + timedelta(minutes=45))


def test_the_server_reads_only_under_the_admins_source_paths(tmp_path: Path) -> None:
    outside = tmp_path.parent / f"{tmp_path.name}-elsewhere" / "window.parquet"
    _window_file(outside)
    allowed = tmp_path / "data" / "window.parquet"
    _window_file(allowed)
    with open_platform("http", tmp_path / "home") as remote:
        _monitor(remote, "elsewhere", outside)
        with pytest.raises(Forbidden, match=r"\[monitoring\] source_paths"):
            remote.monitoring.run_monitor("elsewhere", now=START + timedelta(minutes=45))
        _monitor(remote, "allowed", allowed)
        result = remote.monitoring.run_monitor("allowed", now=START + timedelta(minutes=45))
        assert result.current_rows == 30
    with open_platform("embedded", tmp_path / "home2") as local:
        # The embedded SDK is the user's own process reading the user's own files.
        _monitor(local, "elsewhere", outside)
        assert local.monitoring.run_monitor("elsewhere", now=START + timedelta(minutes=45))
