"""What the catalog and lineage know of an Iceberg port, on both homes of the conftest: the
same statistics (row counts, column profiles, quality results, SLO compliance) as for the
same rows in a Parquet port, lineage edges to and from Iceberg versions, and OpenLineage
events that name the Iceberg table (symlinks, storage and catalog facets), valid against
the OpenLineage schemas (the official ones when MESHOPS_OPENLINEAGE_SPEC names them)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from meshops.kernel.home import Home
from meshops.mesh import iceberg
from meshops.mesh.models import DataProductVersion
from meshops.mesh.service import MeshService
from tests.mesh.iceberg.conftest import events_contract, iceberg_port
from tests.openlineage.conftest import NAMESPACE, Events, write_config
from tests.openlineage.spec_check import assert_valid
from tests.support.products import data_product

QUALITY = [
    {"type": "library", "metric": "rowCount", "mustBeGreaterThan": 0},
    {
        "type": "library",
        "metric": "duplicateValues",
        "arguments": {"properties": ["event_id"]},
        "mustBe": 0,
    },
]


def events(n: int) -> pa.Table:
    return pa.table(
        {
            "event_id": pa.array(range(n), pa.int64()),
            "region": ["EU" if i % 3 else "US" for i in range(n)],
            "amount": [i * 1.5 if i % 7 else None for i in range(n)],
        }
    )


def publish(
    home: Home, name: str, table: pa.Table, *, as_iceberg: bool, inputs: list[str] | None = None
) -> DataProductVersion:
    descriptor = data_product(f"shop.{name}", f"shop-{name}")
    contract = events_contract()
    contract["id"] = f"shop-{name}"
    contract["schema"][0]["name"] = name
    contract["schema"][0]["quality"] = QUALITY
    return MeshService(home.context()).publish_arrow(
        iceberg_port(descriptor) if as_iceberg else descriptor,
        {name: contract},
        {name: table},
        inputs=inputs,
    )


def _stats(version: DataProductVersion) -> dict[str, Any]:
    port = version.ports[0]
    return {
        "rows": (version.row_count, port.row_count),
        "profile": [p.model_dump() for p in port.profile],
        # Rule names carry the port's name (schema.<port>.<column>...).
        "quality": [
            (q.rule.replace(f".{port.name}.", ".<port>."), q.passed, q.observed)
            for q in port.quality
        ],
    }


def test_catalog_statistics_of_an_iceberg_port_equal_the_parquet_ones(home: Home) -> None:
    rows = events(500)
    parquet = publish(home, "plain", rows, as_iceberg=False)
    ice = publish(home, "ice", rows, as_iceberg=True)
    assert iceberg.is_iceberg_ref(ice.ports[0].snapshot_digest)
    assert not iceberg.is_iceberg_ref(parquet.ports[0].snapshot_digest)
    mesh = MeshService(home.context())
    stored = mesh.get_version("shop.ice")  # as the catalog reads it back
    assert _stats(stored) == _stats(mesh.get_version("shop.plain"))
    assert stored.ports[0].bytes > 0  # the size of the version's data files
    assert mesh.slo("shop.ice").quality_compliance == mesh.slo("shop.plain").quality_compliance
    found = mesh.search("ice", domain="shop")
    assert "shop.ice" in [h.product for h in found.hits]


def test_lineage_edges_to_and_from_iceberg_versions(home: Home) -> None:
    upstream = publish(home, "ice_source", events(50), as_iceberg=True)
    downstream = publish(home, "ice_sink", events(20), as_iceberg=True, inputs=[upstream.urn])
    mesh = MeshService(home.context())
    up = mesh.lineage("shop.ice_sink", "1.0.0", "upstream", 1)
    assert [(e.upstream, e.downstream) for e in up] == [(upstream.urn, downstream.urn)]
    down = mesh.lineage("shop.ice_source", "1.0.0", "downstream", 1)
    assert [(e.upstream, e.downstream) for e in down] == [(upstream.urn, downstream.urn)]


@pytest.fixture
def ol_events(tmp_path: Path) -> Events:
    """OpenLineage events of the test's home (the conftest's `home` is made in
    tmp_path/home, after this fixture wrote its meshops.toml)."""
    path = tmp_path / "openlineage.jsonl"
    write_config(tmp_path / "home", path)
    return Events(path)


def _facets(event: dict[str, Any], side: str, name: str) -> dict[str, Any]:
    [dataset] = [d for d in event[side] if d["name"] == name]
    assert dataset["namespace"] == NAMESPACE
    facets: dict[str, Any] = dataset["facets"]
    return facets


def test_openlineage_events_name_the_iceberg_table(ol_events: Events, home: Home) -> None:
    source = publish(home, "ice_source", events(50), as_iceberg=True)
    publish(home, "plain_sink", events(20), as_iceberg=False, inputs=[source.urn])
    [*_, published] = ol_events.of_job("shop.ice_source.build")
    [*_, read] = ol_events.of_job("shop.plain_sink.build")
    for event in (published, read):
        assert_valid(event)

    table = iceberg.load_table(home.settings, "shop.ice_source__ice_source__v1")
    location = table.location()
    for facets in (
        _facets(published, "outputs", "shop.ice_source.ice_source"),
        _facets(read, "inputs", "shop.ice_source.ice_source"),
    ):
        assert facets["version"]["datasetVersion"] == "1.0.0"  # the snapshot's tag
        assert facets["storage"]["storageLayer"] == "iceberg"
        assert facets["storage"]["fileFormat"] == "parquet"
        assert (
            facets["catalog"]["framework"] == "iceberg" and facets["catalog"]["name"] == "meshops"
        )
        assert facets["catalog"]["warehouseUri"] == iceberg.warehouse_url(home.settings)
        assert "metadataUri" not in facets["catalog"]  # the database URL may hold a password
        identifiers = {i["type"]: i for i in facets["symlinks"]["identifiers"]}
        assert identifiers["TABLE"]["name"] == "shop.ice_source__ice_source__v1"
        located = identifiers["LOCATION"]
        if location.startswith("s3://"):
            bucket, _, key = location.removeprefix("s3://").partition("/")
            assert (located["namespace"], located["name"]) == (f"s3://{bucket}", key)
        else:
            path = str(Path(location.removeprefix("file://")).resolve())
            assert (located["namespace"], located["name"]) == ("file", path)
    # A Parquet port names no table.
    plain = _facets(read, "outputs", "shop.plain_sink.plain_sink")
    assert not {"symlinks", "storage", "catalog"} & set(plain)
