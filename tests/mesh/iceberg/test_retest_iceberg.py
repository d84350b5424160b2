"""Re-running the contract test of a version stored in an Iceberg port (#21): the version's
tagged snapshot is tested (time travel), its manifests answer the row count, null counts and
the ranges their bounds prove, and the report marks exactly those rules; the verdicts equal
the Parquet path's for the same rows. On the local folder warehouse with SQLite and on S3
(moto) with PostgreSQL, embedded and over a live server."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest

from meshops.client import Platform
from meshops.kernel.errors import NotFound
from meshops.kernel.home import Home
from meshops.kernel.http import HttpTransport
from meshops.mesh import iceberg_stats
from meshops.mesh.contract_scan import StoredStatistics
from meshops.mesh.retest_models import PortTestReport
from tests.conftest import LiveServer
from tests.mesh.test_retest_version import (
    END_OF_LIFE_RULE,
    PORT,
    events,
    move_clock_past_end_of_life,
    publish,
)

ICEBERG = {"customProperties": [{"property": "meshops.format", "value": "iceberg"}]}
# The rules whose one measure the snapshot's manifests answer for the contract of
# tests/mesh/test_retest_version.py: the row count, the null counts, the integer range
# (event_id's bounds lie inside [0, 10**6]). Not the float range (pyiceberg writes no NaN
# counts, so a float column has no bounds), uniqueness, sql rules nor types.
FROM_METADATA = {
    f"quality.{PORT}.*.rowCount.0",
    f"schema.{PORT}.event_id.required",
    f"quality.{PORT}.region.nullValues.0",
    f"schema.{PORT}.event_id.range",
}


@pytest.fixture(params=["embedded", "http"])
def platform(request: pytest.FixtureRequest, home: Home) -> Iterator[Platform]:
    """The Iceberg homes' platform, embedded or over a live server on the same home."""
    if request.param == "embedded":
        p = Platform(home.settings, home=home)
        yield p
        p.close()
        return
    with LiveServer(home) as server:
        remote = replace(home.settings, uri=server.url, token=server.token)
        p = Platform(remote, http=HttpTransport(server.url, server.token))
        yield p
        p.close()


def observations(port: PortTestReport) -> dict[str, tuple[bool, Any]]:
    return {r.rule: (r.passed, r.observed) for r in port.results if r.kind != "sla"}


def test_iceberg_versions_are_tested_from_their_snapshots(platform: Platform) -> None:
    mesh = platform.mesh
    publish(mesh, "1.0.0", events(1, 41), port=ICEBERG)
    publish(mesh, "1.1.0", events(1, 61), port=ICEBERG)  # appends to the same table
    publish(mesh, "1.0.0", events(1, 41), product="shop.flat")  # the same rows, in Parquet

    first = mesh.test_version("shop.events", "1.0.0")
    [port] = first.ports
    assert (port.format, port.rows, port.passed, first.passed) == ("iceberg", 40, True, True)
    assert {r.rule for r in port.results if r.from_metadata} == FROM_METADATA
    assert all(r.passed == r.passed_at_publish for r in port.results)
    # the same verdicts and figures as the Parquet path over the same rows
    [flat] = mesh.test_version("shop.flat").ports
    assert flat.format == "parquet" and not any(r.from_metadata for r in flat.results)
    assert observations(port) == observations(flat)
    # time travel: each version's own snapshot
    [latest] = mesh.test_version("shop.events").ports
    assert latest.rows == 60
    assert dict(observations(latest))[f"quality.{PORT}.*.rowCount.0"] == (True, 60)


def test_the_rules_marked_from_metadata_are_answered_by_the_manifests(
    home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Statistics that disagree with the rows (which real ones never do) show where each
    figure comes from: every rule marked from_metadata observes the statistics' figure."""
    platform = Platform(home.settings, home=home)
    publish(platform.mesh, "1.0.0", events(1, 41), port=ICEBERG)
    honest = platform.mesh.test_version("shop.events").ports[0]
    real = iceberg_stats.snapshot_statistics

    def inflated(table: Any, snapshot_id: int) -> StoredStatistics | None:
        stats = real(table, snapshot_id)
        assert stats is not None
        nulls = {c: n + 4 for c, n in stats.nulls.items()}
        return StoredStatistics(stats.rows * 2, nulls, stats.bounds)

    monkeypatch.setattr(iceberg_stats, "snapshot_statistics", inflated)
    lied_to = observations(platform.mesh.test_version("shop.events").ports[0])
    was = observations(honest)
    assert lied_to[f"quality.{PORT}.*.rowCount.0"] == (True, 80)  # 40 rows counted twice
    assert lied_to[f"schema.{PORT}.event_id.required"] == (False, 4)  # 0 nulls, plus 4
    assert lied_to[f"quality.{PORT}.region.nullValues.0"] == (True, 17.5)  # (10 + 4) / 80
    assert was[f"quality.{PORT}.region.nullValues.0"] == (True, 25)  # 10 / 40
    # the range its bounds prove empty: the same bounds, the same proof
    assert lied_to[f"schema.{PORT}.event_id.range"] == was[f"schema.{PORT}.event_id.range"]
    # a rule counted from the values does not move with a null count it does not use
    assert lied_to[f"schema.{PORT}.amount.range"] == was[f"schema.{PORT}.amount.range"]
    platform.close()


def test_an_iceberg_version_past_its_end_of_life_fails(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    publish(platform.mesh, "1.0.0", events(1, 41), port=ICEBERG)
    move_clock_past_end_of_life(monkeypatch)
    report = platform.mesh.test_version("shop.events", port=PORT)
    assert not report.passed
    assert [r.rule for r in report.ports[0].failures] == [END_OF_LIFE_RULE]


def test_a_version_expired_by_compaction_is_not_found(home: Home) -> None:
    platform = Platform(home.settings, home=home)
    retention = [{"property": "retention", "value": 0, "unit": "d"}]
    publish(platform.mesh, "1.0.0", events(1, 11), sla=retention, port=ICEBERG)
    publish(platform.mesh, "1.1.0", events(1, 21), sla=retention, port=ICEBERG)
    assert platform.mesh.compact("shop.events").tables[0].expired_versions == ["1.0.0"]
    with pytest.raises(NotFound, match="no longer readable"):
        platform.mesh.test_version("shop.events", "1.0.0")
    assert platform.mesh.test_version("shop.events").passed
    platform.close()
