"""Compaction and snapshot expiry of Iceberg ports: tagged versions stay readable, the
contract's SLA retention lets old versions go and their files be deleted; the operation
over HTTP and from the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from meshops.kernel.errors import InvalidInput, NotFound
from meshops.kernel.home import Home
from meshops.mesh import iceberg
from meshops.mesh.service import MeshService
from tests.conftest import open_platform
from tests.mesh.iceberg.conftest import events_contract, events_descriptor
from tests.mesh.iceberg.test_iceberg_ports import PORT, files_of, rows

RETENTION = [{"property": "retention", "value": 0, "unit": "d"}]


def publish(mesh: Any, version: str, table: pa.Table, retention: bool = False) -> Any:
    contract = events_contract()
    if retention:
        contract["slaProperties"] = RETENTION
    return mesh.publish_arrow(events_descriptor(version), {PORT: contract}, {PORT: table})


def _table(home: Home) -> Any:
    return iceberg.load_table(home.settings, "shop.events__events__v1")


def test_compaction_keeps_every_tagged_version_readable(home: Home) -> None:
    mesh = MeshService(home.context())
    versions = {f"1.{i}.0": rows(0, 10 * (i + 1)) for i in range(3)}
    for version, table in versions.items():
        publish(mesh, version, table)
    assert len(files_of(home, "1.2.0")) == 3
    report = mesh.compact("shop.events")
    assert report.retention_seconds is None and report.kept_versions == list(versions)
    [done] = report.tables
    assert done.compacted_files == 3 and done.expired_versions == []
    assert done.removed_files == 0  # every file is still held by a version's tag
    current = _table(home).current_snapshot()
    assert current is not None
    assert len(iceberg.data_files(_table(home), current.snapshot_id)) == 1
    for version, table in versions.items():
        assert mesh.read("shop.events", version).to_pylist() == table.to_pylist()
    # The next version still appends to the compacted table: one new file.
    publish(mesh, "1.3.0", rows(0, 45))
    assert len(files_of(home, "1.3.0")) == 2
    assert mesh.read("shop.events", "1.3.0").num_rows == 45


def test_retention_expires_old_versions_and_deletes_their_files(home: Home) -> None:
    mesh = MeshService(home.context())
    for i in range(3):
        publish(mesh, f"1.{i}.0", rows(0, 10 * (i + 1)), retention=True)
    first = mesh.compact("shop.events")
    assert first.retention_seconds == 0 and first.kept_versions == ["1.2.0"]
    assert sorted(first.tables[0].expired_versions) == ["1.0.0", "1.1.0"]
    publish(mesh, "1.3.0", rows(0, 40), retention=True)
    second = mesh.compact("shop.events")
    # 1.2.0's three files are now held by nothing: deleted from the warehouse.
    assert second.tables[0].expired_versions == ["1.2.0"]
    assert second.tables[0].removed_files == 3 and second.tables[0].removed_bytes > 0
    with pytest.raises(NotFound, match="no longer readable"):
        mesh.read("shop.events", "1.0.0")
    assert mesh.read("shop.events", "1.3.0").to_pylist() == rows(0, 40).to_pylist()
    assert set(_table(home).refs()) == {"main", "1.3.0"}


def test_compact_over_http_and_from_the_cli(tmp_path: Path) -> None:
    from typer.testing import CliRunner

    from meshops.cli.main import app

    with open_platform("http", tmp_path / "home") as platform:
        publish(platform.mesh, "1.0.0", rows(0, 5))
        publish(platform.mesh, "1.1.0", rows(0, 8))
        report = platform.mesh.compact("shop.events", port=PORT)
        assert report.tables[0].compacted_files == 2
        assert platform.mesh.read("shop.events", "1.0.0").num_rows == 5
        with pytest.raises(InvalidInput, match="no Iceberg port"):
            platform.mesh.compact("shop.events", port="other")
    env = {"MESHOPS_HOME": str(tmp_path / "home"), "MESHOPS_USER": "alice"}
    result = CliRunner().invoke(app, ["product", "compact", "shop.events", "--json"], env=env)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["tables"][0]["table"] == "shop.events__events__v1"
