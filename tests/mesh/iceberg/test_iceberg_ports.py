"""Iceberg output ports end to end, on a local folder warehouse with the SQLite catalog and
on a moto S3 server with the PostgreSQL catalog: appends store only new files, every
version reads back by its tag, a breaking change leaves the table untouched, governed reads
mask and count, a training set equals the one from the Parquet port."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from meshops.client import Platform
from meshops.kernel.errors import Conflict, InvalidInput
from meshops.kernel.home import Home
from meshops.mesh import iceberg
from meshops.mesh.service import MeshService
from tests.governance.conftest import (
    admin,
    customers_contract,
    customers_descriptor,
    customers_table,
)
from tests.mesh.iceberg.conftest import events_contract, events_descriptor, iceberg_port

PORT = "events"


def rows(start: int, stop: int, note: bool = False) -> pa.Table:
    columns: dict[str, Any] = {
        "event_id": pa.array(range(start, stop), pa.int64()),
        "region": ["EU" if i % 3 else "US" for i in range(start, stop)],
        "amount": [i * 1.5 for i in range(start, stop)],
    }
    if note:
        columns["note"] = [f"n{i}" for i in range(start, stop)]
    return pa.table(columns)


def publish(
    home: Home,
    version: str,
    table: pa.Table,
    contract: dict[str, Any] | None = None,
    *,
    as_iceberg: bool = True,
    **props: Any,
) -> Any:
    descriptor = events_descriptor(version, iceberg=as_iceberg, **props)
    return MeshService(home.context()).publish_arrow(
        descriptor, {PORT: contract or events_contract()}, {PORT: table}
    )


def files_of(home: Home, version: str) -> set[str]:
    table = iceberg.load_table(
        home.settings, iceberg.table_identifier("shop.events", PORT, version)
    )
    snapshot = table.snapshot_by_name(version)
    assert snapshot is not None
    return {path for path, _ in iceberg.data_files(table, snapshot.snapshot_id)}


def test_appends_store_only_new_files_and_every_version_reads_back(home: Home) -> None:
    note = [{"name": "note", "logicalType": "string"}]
    v1 = rows(0, 100)
    v2 = pa.concat_tables([v1, rows(100, 130)])
    # 1.2.0 adds an optional column (a minor change): old rows have no note.
    old = v2.append_column("note", pa.array([None] * v2.num_rows, pa.string()))
    v3 = pa.concat_tables([old, rows(130, 140, note=True)])
    published = [
        publish(home, "1.0.0", v1),
        publish(home, "1.1.0", v2),
        publish(home, "1.2.0", v3, events_contract(note)),
    ]
    assert all(iceberg.is_iceberg_ref(p.ports[0].snapshot_digest) for p in published)
    first, second, third = (files_of(home, v) for v in ("1.0.0", "1.1.0", "1.2.0"))
    assert len(first) == 1
    assert first < second and len(second - first) == 1  # only the 30 new rows were written
    assert second < third and len(third - second) == 1
    service = MeshService(home.context())
    for version, expected in (("1.0.0", v1), ("1.1.0", v2), ("1.2.0", v3)):
        got = service.read("shop.events", version)  # time travel by the version's tag
        assert got.column_names == expected.column_names
        assert got.to_pylist() == expected.to_pylist()
    # A rewrite of old rows is not an append: the table is overwritten, history stays.
    changed = v3.set_column(2, "amount", pa.array([0.0] * v3.num_rows))
    publish(home, "1.3.0", changed, events_contract(note))
    assert files_of(home, "1.3.0").isdisjoint(third)
    assert service.read("shop.events", "1.2.0").to_pylist() == v3.to_pylist()
    assert service.read("shop.events", "1.3.0").to_pylist() == changed.to_pylist()
    # Republishing the same content is recognised, and nothing new is committed.
    again = publish(home, "1.3.0", changed, events_contract(note))
    assert again.reused
    # A major version with a breaking change goes to a new table.
    dropped = changed.drop_columns(["amount"])
    contract = events_contract(note)
    contract["schema"][0]["properties"] = [
        p for p in contract["schema"][0]["properties"] if p["name"] != "amount"
    ]
    major = publish(home, "2.0.0", dropped, contract)
    assert major.ports[0].row_count == dropped.num_rows
    assert iceberg.find_table(home.settings, "shop.events__events__v2") is not None
    assert service.read("shop.events", "2.0.0").to_pylist() == dropped.to_pylist()
    assert service.read("shop.events", "1.0.0").to_pylist() == v1.to_pylist()


def test_a_breaking_change_is_refused_without_touching_the_table(home: Home) -> None:
    publish(home, "1.0.0", rows(0, 10))
    identifier = iceberg.table_identifier("shop.events", PORT, "1.0.0")
    before = iceberg.load_table(home.settings, identifier)
    contract = events_contract()
    contract["schema"][0]["properties"][2]["logicalType"] = "string"  # a type change
    changed = rows(0, 10).set_column(2, "amount", pa.array([str(i) for i in range(10)]))
    with pytest.raises(Conflict, match="breaking"):
        publish(home, "1.1.0", changed, contract)
    after = iceberg.load_table(home.settings, identifier)
    assert after.metadata_location == before.metadata_location
    assert [s.snapshot_id for s in after.snapshots()] == [s.snapshot_id for s in before.snapshots()]
    assert set(after.refs()) == {"main", "1.0.0"}


def test_partitioning_and_sort_order_come_from_the_descriptor(home: Home) -> None:
    data = rows(0, 60)
    publish(home, "1.0.0", data, partitionBy=["region"], sortBy=["amount"])
    table = iceberg.load_table(home.settings, "shop.events__events__v1")
    assert [f.name for f in table.spec().fields] == ["region"]
    assert [table.schema().find_column_name(f.source_id) for f in table.sort_order().fields] == [
        "amount"
    ]
    import pyarrow.parquet as pq

    snapshot = table.current_snapshot()
    assert snapshot is not None
    paths = [p for p, _ in iceberg.data_files(table, snapshot.snapshot_id)]
    assert len(paths) == 2  # one file per region
    for path in paths:
        with table.io.new_input(path).open() as fh:
            part = pq.read_table(fh)
        assert len(set(part.column("region").to_pylist())) == 1
        amounts = part.column("amount").to_pylist()
        assert amounts == sorted(amounts)
    read = MeshService(home.context()).read("shop.events")
    assert sorted(read.to_pylist(), key=lambda r: r["event_id"]) == data.to_pylist()
    # Stored order differs from the build's, yet an append is still recognised.
    more = pa.concat_tables([data, rows(60, 90)])
    publish(home, "1.1.0", more, partitionBy=["region"], sortBy=["amount"])
    first, second = files_of(home, "1.0.0"), files_of(home, "1.1.0")
    assert first < second and len(second - first) == 2  # the new rows, one file per region
    with pytest.raises(InvalidInput, match="not a column"):
        publish(home, "1.2.0", data, partitionBy=["nope"])


def test_masking_row_filters_and_usage_on_iceberg_reads(home: Home) -> None:
    from meshops.kernel.auth import Actor

    MeshService(home.context()).publish_arrow(
        iceberg_port(customers_descriptor()),
        {"customers": customers_contract()},
        {"customers": customers_table(6)},
    )
    gov = admin(home)
    gov.grant_access("crm.customers", "customers", "bob", row_filter="region = 'EU'")
    bob = MeshService(home.context(Actor("bob")))
    table = bob.read("crm.customers")
    assert table.column("region").to_pylist() == ["EU", "EU", "EU"]
    emails = table.column("email").to_pylist()
    assert all(len(e) == 64 and "@" not in e for e in emails)  # hashed
    assert table.column("income").null_count == 3
    by_sql = bob.sql("SELECT count(*) AS n, max(email) AS e FROM crm.customers")
    assert by_sql.column("n").to_pylist() == [3] and "@" not in by_sql.column("e")[0].as_py()
    events = gov.usage_events("crm.customers")
    assert [e.actor for e in events[:2]] == ["bob", "bob"]
    assert sorted(events[0].masked) == ["email", "income"]
    assert {e.rows for e in events[:2]} == {3, 1}


def test_a_training_set_from_an_iceberg_port_equals_the_parquet_one(platform: Platform) -> None:
    from datetime import UTC, datetime, timedelta

    from meshops.features.models import Entity, Feature, FeatureRepo, FeatureView, SourceRef
    from tests.features.helpers import contract_for

    t0 = datetime(2024, 1, 1, tzinfo=UTC)
    ts = pa.timestamp("us", tz="UTC")
    stats = pa.table(
        {
            "customer_id": [1, 1, 1, 2, 2],
            "event_time": pa.array([t0 + timedelta(hours=h) for h in (0, 5, 10, 1, 2)], ts),
            "orders": [1, 2, 3, 10, 11],
        }
    )
    views = []
    for name, as_iceberg in (("stats_parquet", False), ("stats_iceberg", True)):
        descriptor = events_descriptor("1.0.0", iceberg=as_iceberg)
        descriptor.update(id=f"sales.{name}", name=name, domain="sales")
        descriptor["outputPorts"][0].update(name="main", contractId="main-contract")
        platform.mesh.publish_arrow(
            descriptor, {"main": contract_for("main", stats)}, {"main": stats}
        )
        views.append(
            FeatureView(
                name=name,
                entities=["customer"],
                source=SourceRef(product=f"sales.{name}"),
                event_time="event_time",
                features=[Feature(name="orders", type="int64")],
            )
        )
    platform.features.apply(
        FeatureRepo(entities=[Entity(name="customer", join_keys=["customer_id"])],
                    feature_views=views)
    )  # fmt: skip
    entities = pa.table(
        {
            "customer_id": [1, 1, 2, 2],
            "event_timestamp": pa.array([t0 + timedelta(hours=h) for h in (4, 11, 0, 3)], ts),
        }
    )
    parquet = platform.features.training_set(entities, ["stats_parquet:orders"]).to_arrow()
    ice = platform.features.training_set(entities, ["stats_iceberg:orders"]).to_arrow()
    assert parquet.num_rows == 4
    assert parquet.column_names[-1].endswith("orders")
    assert parquet.column(-1).to_pylist() == [1, 3, None, 11]
    assert ice.rename_columns(parquet.column_names).equals(parquet)


def test_the_exported_descriptor_names_the_table_and_its_location(home: Home) -> None:
    import yaml

    publish(home, "1.0.0", rows(0, 5))
    files = MeshService(home.context()).export("shop.events")
    exported = yaml.safe_load(files["dataproduct.yaml"])
    custom = {p["property"]: p["value"] for p in exported["outputPorts"][0]["customProperties"]}
    assert custom["meshops.format"] == "iceberg"
    assert custom["meshops.icebergTable"] == "shop.events__events__v1"
    assert custom["meshops.icebergTag"] == "1.0.0"
    table = iceberg.load_table(home.settings, "shop.events__events__v1")
    assert custom["meshops.tableLocation"] == table.location()
    assert custom["meshops.metadataLocation"] == table.metadata_location
    scheme = "s3://" if home.settings.blob_url.startswith("s3://") else "file://"
    assert table.location().startswith(scheme)


def test_a_port_changes_format_only_in_a_major_version(home: Home) -> None:
    publish(home, "1.0.0", rows(0, 5), as_iceberg=False)
    with pytest.raises(Conflict, match="only in a major version") as info:
        publish(home, "1.1.0", rows(0, 6))
    assert info.value.detail["fix"].startswith("publish as 2.0.0")
    moved = publish(home, "2.0.0", rows(0, 6))
    assert iceberg.is_iceberg_ref(moved.ports[0].snapshot_digest)
    service = MeshService(home.context())
    assert service.read("shop.events", "1.0.0").num_rows == 5
    assert service.read("shop.events", "2.0.0").to_pylist() == rows(0, 6).to_pylist()


def test_validate_checks_the_port_storage_settings(home: Home, tmp_path: Path) -> None:
    import yaml

    folder = tmp_path / "events"
    folder.mkdir()
    descriptor = events_descriptor("1.0.0")
    descriptor["outputPorts"][0]["customProperties"][0]["value"] = "delta"
    (folder / "dataproduct.yaml").write_text(yaml.safe_dump(descriptor))
    (folder / "events.odcs.yaml").write_text(yaml.safe_dump(events_contract()))
    with pytest.raises(InvalidInput, match=r"meshops\.format") as info:
        MeshService(home.context()).validate(folder)
    assert "iceberg" in info.value.detail["fix"]


def test_a_tag_left_by_an_interrupted_publish_is_not_taken_for_the_version(home: Home) -> None:
    publish(home, "1.0.0", rows(0, 10))
    table = iceberg.load_table(home.settings, "shop.events__events__v1")
    snapshot = table.snapshot_by_name("1.0.0")
    assert snapshot is not None
    # A publish killed after its Iceberg commit, before its record: the tag stays behind.
    table.manage_snapshots().create_tag(snapshot.snapshot_id, "1.1.0").commit()
    published = publish(home, "1.1.0", rows(0, 12))
    assert iceberg.snapshot_id_of(published.ports[0].snapshot_digest) != snapshot.snapshot_id
    assert MeshService(home.context()).read("shop.events", "1.1.0").num_rows == 12


def test_a_retired_product_takes_no_version_and_its_table_is_untouched(home: Home) -> None:
    publish(home, "1.0.0", rows(0, 10))
    service = MeshService(home.context())
    service.deprecate("shop.events", "2030-01-01", reason="replaced")
    service.retire("shop.events")
    before = iceberg.load_table(home.settings, "shop.events__events__v1")
    with pytest.raises(Conflict, match="retired"):
        publish(home, "1.1.0", rows(0, 12))
    after = iceberg.load_table(home.settings, "shop.events__events__v1")
    assert after.metadata_location == before.metadata_location
    assert set(after.refs()) == {"main", "1.0.0"}
