"""Contract tests of an Iceberg snapshot take row counts, null counts and range proofs from
the snapshot's manifests (#21): the figures equal the rows', the report equals a scan's,
and what the manifests do not know exactly (a column added after the first files, a range
the bounds do not clear) is counted from the values."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from meshops.kernel.home import Home
from meshops.mesh import iceberg, specs
from meshops.mesh.contract_scan import OutOfRange, StoredStatistics
from meshops.mesh.contracts import run_contract_test
from meshops.mesh.iceberg_stats import contract_test_snapshot, snapshot_statistics
from meshops.mesh.service import MeshService
from meshops.mesh.specs import PortContract
from meshops.mesh.standards.documents import YamlDoc
from tests.mesh.iceberg.conftest import events_contract, events_descriptor

PORT = "events"
NOTE = {"name": "note", "logicalType": "string"}


def events(start: int, stop: int, note: bool = False) -> pa.Table:
    ids = range(start, stop)
    columns: dict[str, Any] = {
        "event_id": pa.array(ids, pa.int64()),
        "region": [None if i % 4 == 0 else "EU" for i in ids],
        "amount": [None if i % 5 == 0 else i * 1.5 for i in ids],
    }
    if note:
        columns["note"] = [None if i % 2 else f"n{i}" for i in ids]
    return pa.table(columns)


def checked_contract(extra: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    """The events contract with null, range and row count rules."""
    doc = events_contract(extra)
    by_name = {p["name"]: p for p in doc["schema"][0]["properties"]}
    by_name["event_id"]["logicalTypeOptions"] = {"minimum": 0, "maximum": 10**6}
    by_name["amount"]["logicalTypeOptions"] = {"minimum": 100.0}  # fails: 1.5, 3.0 ...
    by_name["region"]["quality"] = [
        {"type": "library", "metric": "nullValues", "mustBeLessThan": 30, "unit": "percent"}
    ]
    doc["schema"][0]["quality"] = [
        {"type": "library", "metric": "rowCount", "mustBeGreaterThan": 0}
    ]
    return doc


def publish(home: Home, version: str, table: pa.Table, contract: dict[str, Any]) -> None:
    MeshService(home.context()).publish_arrow(
        events_descriptor(version), {PORT: contract}, {PORT: table}
    )


def port_of(contract: dict[str, Any]) -> PortContract:
    return specs.load_contract_for_port(YamlDoc("contract", contract, None), PORT, contract["id"])


def snapshot(home: Home, version: str) -> tuple[Any, int]:
    table = iceberg.load_table(
        home.settings, iceberg.table_identifier("shop.events", PORT, version)
    )
    tagged = table.snapshot_by_name(version)
    assert tagged is not None
    return table, tagged.snapshot_id


def test_statistics_equal_the_rows_and_the_report_equals_a_scan(home: Home) -> None:
    first = events(0, 50)
    publish(home, "1.0.0", first, events_contract())
    # 1.1.0 appends rows with a new optional column: the first file records no note
    with_note = pa.concat_tables(
        [first.append_column("note", pa.nulls(50, pa.string())), events(50, 90, note=True)]
    )
    publish(home, "1.1.0", with_note, events_contract([NOTE]))
    table, snapshot_id = snapshot(home, "1.1.0")

    stats = snapshot_statistics(table, snapshot_id)
    assert stats is not None
    assert stats.rows == 90
    assert stats.nulls["region"] == with_note.column("region").null_count
    assert stats.nulls["amount"] == with_note.column("amount").null_count
    assert "note" not in stats.nulls  # not recorded in the 1.0.0 file: counted from values
    least, greatest = stats.bounds["event_id"]
    assert least <= 0 and greatest >= 89
    # pyiceberg records no NaN counts: a float column's bounds might leave out NaN
    assert "amount" not in stats.bounds

    # the snapshot tested against a stricter contract than it was published with
    port = port_of(checked_contract([NOTE]))
    with_stats = contract_test_snapshot(table, snapshot_id, port)
    scanned = run_contract_test(with_note, PORT, port.columns, port.schema_object, [])
    verdicts = {r.rule: (r.passed, r.observed) for r in scanned.results}
    assert {r.rule: (r.passed, r.observed) for r in with_stats.results} == verdicts
    assert with_stats.rows == 90
    # the amount range fails on the values, which the bounds cannot count: scanned
    assert not verdicts[f"schema.{PORT}.amount.range"][0]


def test_bounds_prove_an_empty_range_and_leave_the_rest_to_the_values() -> None:
    stats = StoredStatistics(rows=10, nulls={"a": 2, "b": 10}, bounds={"a": (1.0, 9.0)})
    assert stats.out_of_range(OutOfRange("a", low=1, high=9)) == 0
    assert stats.out_of_range(OutOfRange("a", low=1, high=9, open=True)) is None
    assert stats.out_of_range(OutOfRange("a", low=0, high=10, open=True)) == 0
    assert stats.out_of_range(OutOfRange("a", low=2)) is None
    assert stats.out_of_range(OutOfRange("b", high=-5)) == 0  # only nulls: nothing out
    assert stats.out_of_range(OutOfRange("c", low=0)) is None  # no bounds recorded


def test_statistics_answer_without_counting() -> None:
    """Statistics that differ from the rows (which real ones never do) show where the
    report's figures come from: rows, null counts and proven ranges from the statistics."""
    rows = events(0, 20)
    contract = checked_contract()
    port = port_of(contract)
    stated = StoredStatistics(
        rows=20, nulls={"region": 0, "event_id": 0}, bounds={"amount": (150.0, 200.0)}
    )
    report = run_contract_test(rows, PORT, port.columns, port.schema_object, [], statistics=stated)
    observed = {r.rule: r.observed for r in report.results}
    assert observed[f"quality.{PORT}.region.nullValues.0"] == 0  # the rows: 25 %
    assert observed[f"schema.{PORT}.amount.range"] == 0  # the rows hold 1.5 ... 28.5
