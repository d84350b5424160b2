"""Re-running the contract test of a published version (`Mesh.test_version`, #21) on a
Parquet port: the same verdicts as at publish, against the contract stored with the
version; a rule that no longer holds (its end of life passed, its stored rows changed)
fails; errors name the unknown product, version or port; only publishers may run it; an
audit event records each run. Embedded, over HTTP and on PostgreSQL, and from the CLI."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from meshops.client import Platform
from meshops.kernel.auth import Actor
from meshops.kernel.errors import Forbidden, InvalidInput, NotFound
from meshops.kernel.home import Home
from meshops.mesh import contracts
from meshops.mesh.retest_models import VersionTestReport
from meshops.mesh.service import MeshService
from tests.conftest import LiveServer, make_settings
from tests.support.cli import run_cli
from tests.support.products import data_contract, data_product

PORT = "events"
END_OF_LIFE = (date.today() + timedelta(days=30)).isoformat()
END_OF_LIFE_RULE = f"sla.{PORT}.endOfLife"


def events(start: int, stop: int) -> pa.Table:
    ids = range(start, stop)
    return pa.table(
        {
            "event_id": pa.array(ids, pa.int64()),
            "region": [None if i % 4 == 0 else "EU" for i in ids],
            "amount": [None if i % 5 == 0 else i * 1.5 for i in ids],
        }
    )


def events_contract(
    contract_id: str = "shop-events", sla: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """Null, uniqueness, range, row count, percent and sql rules, an end of life (and `sla`)."""
    properties: list[dict[str, Any]] = [
        {
            "name": "event_id",
            "logicalType": "integer",
            "required": True,
            "unique": True,
            "logicalTypeOptions": {"minimum": 0, "maximum": 10**6},
        },
        {
            "name": "region",
            "logicalType": "string",
            "quality": [
                {"metric": "nullValues", "mustBeLessThan": 40, "unit": "percent"},
            ],
        },
        {"name": "amount", "logicalType": "number", "logicalTypeOptions": {"minimum": 0}},
    ]
    quality = [
        {"metric": "rowCount", "mustBeGreaterThan": 0},
        {"type": "sql", "query": "SELECT max(amount) FROM {object}", "mustBeLessThan": 10**9},
    ]
    sla = [{"property": "endOfLife", "value": END_OF_LIFE}, *(sla or [])]
    return data_contract(contract_id, PORT, properties, quality=quality, sla=sla)


def publish(
    mesh: Any,
    version: str,
    table: pa.Table,
    *,
    product: str = "shop.events",
    sla: list[dict[str, Any]] | None = None,
    port: dict[str, Any] | None = None,
) -> Any:
    """Publish `table` as `version` of `product`; `port` adds to the descriptor's port."""
    contract_id = product.replace(".", "-")
    descriptor = data_product(product, contract_id, port=PORT, version=version)
    descriptor["outputPorts"][0].update(port or {})
    contract = events_contract(contract_id, sla)
    return mesh.publish_arrow(descriptor, {PORT: contract}, {PORT: table})


def verdicts(report: VersionTestReport) -> dict[str, tuple[bool, Any]]:
    [port] = report.ports
    return {r.rule: (r.passed, r.observed) for r in port.results}


def move_clock_past_end_of_life(monkeypatch: pytest.MonkeyPatch) -> None:
    """The contract test's clock 60 days on: the contract's end of life (in 30) has passed.
    A live server runs in this process: its tests see the same clock."""

    class Later(datetime):
        @classmethod
        def now(cls, tz: Any = None) -> Later:
            moment = datetime.now(tz or UTC) + timedelta(days=60)
            return cls.fromtimestamp(moment.timestamp(), moment.tzinfo)

    monkeypatch.setattr(contracts, "datetime", Later)


def test_a_published_version_passes_again_as_at_publish(platform: Platform) -> None:
    mesh = platform.mesh
    published = publish(mesh, "1.0.0", events(1, 41))
    publish(mesh, "1.1.0", events(1, 61))

    report = mesh.test_version("shop.events", "1.0.0")

    assert (report.product, report.version, report.urn) == ("shop.events", "1.0.0", published.urn)
    assert report.passed and report.tested_by == "alice"
    [port] = report.ports
    assert (port.port, port.format, port.rows, port.passed) == (PORT, "parquet", 40, True)
    stored = {r.rule: r for r in published.port(PORT).quality}
    assert {r.rule for r in port.results} == set(stored)
    for result in port.results:
        assert result.passed == result.passed_at_publish == stored[result.rule].passed
        if result.kind != "sla":  # an end of life observes the moment of the test
            assert result.observed == stored[result.rule].observed, result.rule
        assert not result.from_metadata  # a Parquet snapshot has no table metadata
    assert dict(verdicts(report))[f"quality.{PORT}.*.rowCount.0"] == (True, 40)
    # the latest version by default, and a range resolves like a read
    assert mesh.test_version("shop.events").version == "1.1.0"
    assert mesh.test_version("shop.events@^1", port=PORT).ports[0].rows == 60
    [event, *_] = platform.governance.audit_events(obj=published.urn)
    assert (event.action, event.actor) == ("dataproduct.test", "alice")
    assert event.detail["passed"] is True
    assert event.detail["ports"][PORT] == {
        "format": "parquet", "rows": 40, "passed": True, "rules": len(stored), "failed": [],
    }  # fmt: skip


def test_a_rule_that_no_longer_holds_fails(
    platform: Platform, monkeypatch: pytest.MonkeyPatch
) -> None:
    published = publish(platform.mesh, "1.0.0", events(1, 41))
    move_clock_past_end_of_life(monkeypatch)

    report = platform.mesh.test_version("shop.events")

    assert not report.passed and not report.ports[0].passed
    [failure] = report.ports[0].failures
    assert failure.rule == END_OF_LIFE_RULE and failure.status == "failed"
    assert failure.passed_at_publish is True
    assert "past its end of life" in failure.message
    others = [r for r in report.ports[0].results if r.rule != END_OF_LIFE_RULE]
    assert all(r.passed == r.passed_at_publish for r in others)
    # the version is unchanged: its quality results are still those of its publish
    after = platform.mesh.get_version("shop.events", "1.0.0")
    assert after.port(PORT).quality == published.port(PORT).quality
    [event, *_] = platform.governance.audit_events(obj=published.urn)
    assert event.detail["passed"] is False
    assert event.detail["ports"][PORT]["failed"] == [END_OF_LIFE_RULE]


def test_stored_rows_that_changed_fail_the_rules_they_break(sqlite_home: Home) -> None:
    """What a re-test proves: the bytes stored as the version's snapshot still satisfy its
    contract. Here they were replaced behind the platform's back (restored from a wrong
    backup, say) by rows with a null and a duplicate id."""
    mesh = MeshService(sqlite_home.context())
    published = publish(mesh, "1.0.0", events(1, 41))
    changed = events(1, 41).set_column(
        0, "event_id", pa.array([None, 1, *range(1, 39)], pa.int64())
    )
    with sqlite_home.context().blobs.local_path(published.port(PORT).snapshot_digest) as path:
        pq.write_table(changed, path)

    report = mesh.test_version("shop.events")

    failed = {r.rule: r.observed for r in report.ports[0].failures}
    assert failed == {
        f"schema.{PORT}.event_id.required": 1,
        f"schema.{PORT}.event_id.unique": 1,
    }
    assert all(r.passed_at_publish for r in report.ports[0].failures)


def test_unknown_product_version_or_port_is_named(sqlite_home: Home) -> None:
    mesh = MeshService(sqlite_home.context())
    with pytest.raises(NotFound, match=re.escape("shop.nothing does not exist")):
        mesh.test_version("shop.nothing")
    publish(mesh, "1.0.0", events(1, 11))
    with pytest.raises(NotFound, match=re.escape("no version of shop.events matches '2.0.0'")):
        mesh.test_version("shop.events", "2.0.0")
    with pytest.raises(InvalidInput, match="no output port 'other'"):
        mesh.test_version("shop.events", port="other")
    with pytest.raises(Forbidden):
        MeshService(sqlite_home.context(Actor("mallory"))).test_version("shop.events")
    # a refused or failed call records nothing
    assert not [e for e in _audit(sqlite_home) if e.action == "dataproduct.test"]


def _audit(home: Home) -> list[Any]:
    from meshops.kernel import audit

    with home.db.read() as conn:
        return audit.events(conn)


@pytest.fixture
def served(sqlite_home: Home) -> Iterator[LiveServer]:
    publish(MeshService(sqlite_home.context()), "1.0.0", events(1, 11))
    with LiveServer(sqlite_home) as server:
        yield server


def _post_test(server: LiveServer, token: str, **body: Any) -> httpx.Response:
    return httpx.post(
        f"{server.url}/v1/mesh/products/shop.events/test",
        json=body,
        headers={"authorization": f"Bearer {token}"},
    )


def test_over_http_errors_are_json_and_only_publishers_may_test(
    served: LiveServer, sqlite_home: Home
) -> None:
    from meshops.governance.service import GovernanceService

    passed = _post_test(served, served.token, port=PORT)
    assert passed.status_code == 200, passed.text
    assert passed.json()["ports"][0]["results"][0]["status"] == "passed"

    unknown = _post_test(served, served.token, version="2.0.0")
    assert unknown.status_code == 404
    assert unknown.json()["error"] == "not_found"
    assert "no version of shop.events matches '2.0.0'" in unknown.json()["message"]
    no_port = _post_test(served, served.token, port="other")
    assert no_port.status_code == 422 and "no output port" in no_port.json()["message"]

    gov = GovernanceService(sqlite_home.context())
    gov.create_user("carol")  # a consumer: reads the catalog, publishes nothing
    carol = gov.create_token("carol", principal="carol").token
    refused = _post_test(served, carol)
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    gov.create_user("dave")
    gov.bind_role("dave", "data_engineer")  # may publish, hence re-test
    dave = gov.create_token("dave", principal="dave").token
    by_dave = _post_test(served, dave).json()
    assert by_dave["tested_by"] == "dave" and by_dave["passed"] is True
    # an sql rule observes what its query returns (here the max amount): shown only to a
    # caller who reads the port in clear (dave has no grant; alice is its owner)
    sql_rule = f"quality.{PORT}.*.sql.1"
    assert _observed(by_dave, sql_rule) is None
    assert _observed(passed.json(), sql_rule) == 13.5


def _observed(report: dict[str, Any], rule: str) -> Any:
    return next(r["observed"] for r in report["ports"][0]["results"] if r["rule"] == rule)


def test_cli_prints_the_verdicts_and_fails_on_a_failed_rule(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from meshops.cli.main import app

    home = Home(make_settings(tmp_path / "home"))
    try:
        publish(MeshService(home.context()), "1.0.0", events(1, 41))
    finally:
        home.close()
    env = {"MESHOPS_HOME": str(tmp_path / "home"), "MESHOPS_USER": "alice", "COLUMNS": "200"}
    runner = CliRunner()

    shown = runner.invoke(app, ["product", "test", "shop.events"], env=env)
    assert shown.exit_code == 0, shown.output
    assert "contract test passed" in shown.stdout
    assert f"quality.{PORT}.*.rowCount.0" in shown.stdout
    as_json = runner.invoke(app, ["product", "test", "shop.events", "--json"], env=env)
    assert json.loads(as_json.stdout)["ports"][0]["format"] == "parquet"

    move_clock_past_end_of_life(monkeypatch)
    failed = runner.invoke(app, ["product", "test", "shop.events", "--port", PORT], env=env)
    assert failed.exit_code == 1
    assert "contract test FAILED" in failed.stdout
    assert END_OF_LIFE_RULE in failed.stdout
    # The verdicts from --json: the table's layout follows the console's width, which a
    # CliRunner in a shared process does not always get from COLUMNS.
    failed_json = runner.invoke(
        app, ["product", "test", "shop.events", "--port", PORT, "--json"], env=env
    )
    assert failed_json.exit_code == 1
    [rule] = [
        r for r in json.loads(failed_json.stdout)["ports"][0]["results"]
        if r["rule"] == END_OF_LIFE_RULE
    ]  # fmt: skip
    assert rule["passed"] is False and rule["passed_at_publish"] is True

    unknown = run_cli(
        "product", "test", "shop.events", "--version", "9.0.0", home=tmp_path / "home"
    )
    assert unknown.returncode == 3 and "no version of shop.events" in unknown.stderr
