"""ODPS descriptors as product folders and published products: identity from the repository
layout, port names, duplicate ports, explicit port -> schema object binding, lifecycle status
in exports; YAML scalars as written (hypothesis)."""

from __future__ import annotations

import datetime as dt
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshops.kernel.errors import InvalidInput
from meshops.kernel.home import Home
from meshops.mesh import odcs, odps, specs
from meshops.mesh.service import MeshService
from meshops.mesh.standards.documents import dump_yaml, load_yaml, parse_yaml

OWN = Path(__file__).resolve().parent / "standards"
MULTI = OWN / "odcs" / "v3.1.0" / "multi-object.odcs.yaml"
ODPS_09 = OWN / "odps" / "v0.9.0" / "orders-team-list.odps.yaml"
ODPS_10 = OWN / "odps" / "v1.0.0" / "shop-objects.odps.yaml"


def _folder(root: Path, descriptor: Path | str, *contracts: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    text = descriptor.read_text() if isinstance(descriptor, Path) else descriptor
    (root / specs.DESCRIPTOR_FILE).write_text(text)
    for contract in contracts:
        shutil.copy(contract, root / contract.name)
    return root


# --- identity: what ODPS leaves optional ---


def test_domain_version_and_name_from_the_project_layout(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "domains" / "shop" / "products" / "orders", ODPS_09, MULTI)
    spec = specs.load_product(folder)
    # domain from domains/<domain>/, name from the folder ("Shop orders" is a display name),
    # version from the port's contract
    assert (spec.domain, spec.name, spec.version) == ("shop", "orders", "2.1.0")
    (port,) = spec.ports
    assert port.port == "processed-data"
    assert port.schema_object["name"] == "processed-data"  # 0.9: the descriptor's mapping
    assert port.api_version == "v3.1.0"
    # what is published (and what the SDK sends a server, which has no folder): the
    # descriptor as written plus what was derived, still valid ODPS 0.9.0
    written = load_yaml(ODPS_09).data
    assert spec.descriptor == written | {
        "domain": "shop",
        "version": "2.1.0",
        "customProperties": [
            *written["customProperties"],
            {"property": "meshops.name", "value": "orders"},
        ],
    }
    assert odps.read_document(spec.descriptor).schema_version == "v0.9.0"
    again = specs.spec_from_documents(spec.descriptor, {port.port: port.document})
    assert (again.key, again.version, again.ports[0].schema_object["name"]) == (
        "shop.orders",
        "2.1.0",
        "processed-data",
    )


def test_a_display_name_with_an_explicit_identifier(tmp_path: Path) -> None:
    text = ODPS_10.read_text().replace("name: objects\ndomain", "name: Shop Objects\ndomain")
    text += "customProperties:\n  - property: meshops.name\n    value: shop_objects\n"
    spec = specs.load_product(_folder(tmp_path / "whatever-folder", text, MULTI))
    assert spec.key == "shop.shop_objects"
    assert spec.descriptor == load_yaml(tmp_path / "whatever-folder" / "dataproduct.yaml").data


def test_missing_domain_outside_a_project_names_the_field_and_fix(tmp_path: Path) -> None:
    folder = _folder(tmp_path / "orders", ODPS_09, MULTI)
    with pytest.raises(InvalidInput) as info:
        specs.load_product(folder)
    assert info.value.detail["field"] == "domain"
    assert "domain:" in info.value.detail["fix"] and "domains/<domain>" in info.value.detail["fix"]


def test_missing_version_with_contracts_of_several_versions_is_refused(tmp_path: Path) -> None:
    text = ODPS_10.read_text().replace("version: 2.1.0\nstatus", "status")
    other = tmp_path / "other.odcs.yaml"
    other.write_text(
        MULTI.read_text()
        .replace("id: shop-multi-object", "id: shop-other")
        .replace("version: 2.1.0", "version: 3.0.0")
    )
    text = text.replace(
        "  - name: processed-data\n    version: 2.1.0\n    contractId: shop-multi-object",
        "  - name: processed-data\n    version: 2.1.0\n    contractId: shop-other",
    )
    folder = _folder(tmp_path / "p", text, MULTI, other)
    with pytest.raises(InvalidInput) as info:
        specs.load_product(folder)
    assert info.value.detail["field"] == "version"
    assert "['2.1.0', '3.0.0']" in info.value.message
    assert "version: 1.0.0" in info.value.detail["fix"]


def test_display_name_without_a_usable_folder_name_is_refused(tmp_path: Path) -> None:
    text = ODPS_10.read_text().replace("name: objects\ndomain", "name: Shop Objects\ndomain")
    folder = _folder(tmp_path / "Shop Objects", text, MULTI)
    with pytest.raises(InvalidInput) as info:
        specs.load_product(folder)
    assert info.value.detail["field"] == "name" and info.value.detail["line"] == 6


# --- ports ---


def test_duplicate_port_names_are_refused_clearly(tmp_path: Path) -> None:
    text = ODPS_10.read_text().replace("  - name: processed-data\n", "  - name: Objects\n")
    folder = _folder(tmp_path / "p", text, MULTI)
    with pytest.raises(InvalidInput) as info:
        specs.load_product(folder)
    detail = info.value.detail
    assert detail["field"] == "outputPorts[1].name"
    assert "declared twice" in info.value.message and "outputPorts[0]" in info.value.message
    assert text.splitlines()[detail["line"] - 1].strip() == "- name: Objects"


@pytest.mark.parametrize("name", ["a/b", "../x", "has space", "-lead", "x" * 65, "a.b"])
def test_port_names_unsafe_as_identifiers_are_refused(tmp_path: Path, name: str) -> None:
    text = ODPS_10.read_text().replace("  - name: processed-data\n", f"  - name: '{name}'\n")
    with pytest.raises(InvalidInput) as info:
        specs.load_product(_folder(tmp_path / "p", text, MULTI))
    assert info.value.detail["field"] == "outputPorts[1].name"
    assert "processed-data" in info.value.detail["fix"]


def test_explicit_binding_of_ports_to_schema_objects(tmp_path: Path) -> None:
    spec = specs.load_product(_folder(tmp_path / "p", ODPS_10, MULTI))
    objects, processed = spec.ports
    assert (objects.port, objects.schema_object["name"]) == ("objects", "AnObject")
    assert [c.name for c in objects.columns] == ["id", "opened_at", "opens", "kind"]
    assert (processed.port, processed.schema_object["name"]) == ("processed-data", "processed-data")
    assert objects.document is processed.document  # one contract, two ports


def test_unbound_port_of_a_multi_object_contract_says_how_to_bind(tmp_path: Path) -> None:
    text = ODPS_10.read_text().replace("  - name: processed-data\n", "  - name: other\n")
    with pytest.raises(InvalidInput) as info:
        specs.load_product(_folder(tmp_path / "p", text, MULTI))
    assert "['AnObject', 'processed-data']" in info.value.message
    assert "meshops.schemaObject" in info.value.detail["fix"]


def test_binding_to_an_undeclared_object_lists_the_declared_ones(tmp_path: Path) -> None:
    text = ODPS_10.read_text().replace("value: AnObject", "value: NoSuchObject")
    with pytest.raises(InvalidInput) as info:
        specs.load_product(_folder(tmp_path / "p", text, MULTI))
    assert "NoSuchObject" in info.value.message
    assert "['AnObject', 'processed-data']" in info.value.detail["fix"]


# --- published: the binding, the port names and the lifecycle in the exports ---


def _tables() -> dict[str, pa.Table]:
    utc = pa.timestamp("us", tz="UTC")
    now = dt.datetime.now(dt.UTC)  # the contract's freshness SLA: 1 day
    an_object = pa.table(
        {
            "id": pa.array([1, 2, 3], pa.int64()),
            "opened_at": pa.array([now - dt.timedelta(hours=h) for h in (1, 2, 3)], utc),
            "opens": pa.array([dt.time(8), dt.time(9), dt.time(10)], pa.time64("us")),
            "kind": pa.array(["a", "b", None]),
        }
    )
    processed = pa.table(
        {
            "id": pa.array([1, 2], pa.int64()),
            "day": pa.array([dt.date(2024, 1, 1), dt.date(2024, 1, 2)], pa.date32()),
        }
    )
    return {"objects": an_object, "processed-data": processed}


def test_publish_export_and_lifecycle_with_standard_documents(home: Home) -> None:
    descriptor: dict[str, Any] = load_yaml(ODPS_10).data
    contract: dict[str, Any] = load_yaml(MULTI).data
    mesh = MeshService(home.context())
    version = mesh.publish_arrow(
        descriptor, {"objects": contract, "processed-data": contract}, _tables()
    )
    assert [p.name for p in version.ports] == ["objects", "processed-data"]
    assert version.port("objects").columns[0].name == "id"
    assert mesh.read("shop.objects", port="processed-data").num_rows == 2

    files = mesh.export("shop.objects")
    assert sorted(files) == ["dataproduct.yaml", "objects.odcs.yaml", "processed-data.odcs.yaml"]
    assert parse_yaml(files["dataproduct.yaml"], "d").data == descriptor
    assert parse_yaml(files["processed-data.odcs.yaml"], "c").data == contract

    mesh.deprecate("shop.objects", "2030-01-01", None, "moved")
    exported = parse_yaml(mesh.export("shop.objects")["dataproduct.yaml"], "d").data
    assert exported["status"] == "deprecated"
    assert {k: v for k, v in exported.items() if k != "status"} == {
        k: v for k, v in descriptor.items() if k != "status"
    }
    mesh.retire("shop.objects")
    exported = parse_yaml(mesh.export("shop.objects")["dataproduct.yaml"], "d").data
    assert exported["status"] == "retired"


# --- YAML scalars as written ---

_LOOKALIKES = st.one_of(
    st.dates().map(str),
    st.datetimes().map(lambda d: d.isoformat()),
    st.datetimes(timezones=st.just(dt.UTC)).map(lambda d: d.isoformat().replace("+00:00", "Z")),
    st.times().map(str),
    st.integers(0, 59).map(lambda m: f"12:{m:02d}"),
    st.sampled_from(
        ["yes", "no", "on", "off", "y", "n", "~", "null", "true", "False", "0o17", "0x1F"]
    ),
    st.sampled_from(["0755", "1_000", "1e5", ".5", "+1", "-.inf", ".NaN", "1:20", "=", "<<"]),
    st.text(max_size=12),
)
_SCALARS = st.one_of(
    _LOOKALIKES,
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=False),
)
_DOCS = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=20,
)


@settings(max_examples=150, deadline=None)
@given(st.dictionaries(_LOOKALIKES, _DOCS, max_size=5))
def test_yaml_documents_round_trip_unchanged(document: dict[str, Any]) -> None:
    assert parse_yaml(dump_yaml(document), "doc").data == document


@settings(max_examples=100, deadline=None)
@given(st.one_of(st.dates().map(str), st.times().map(str), st.datetimes().map(str)))
def test_unquoted_dates_and_times_stay_as_written(value: str) -> None:
    doc = parse_yaml(f"contractCreatedTs: {value}\nlist:\n  - {value}\n", "c.yaml")
    assert doc.data == {"contractCreatedTs": value, "list": [value]}
    assert doc.line_of(["list", 0]) == 3


def test_yaml_1_2_core_scalars() -> None:
    doc = parse_yaml("a: 0o17\nb: 0x1F\nc: 0755\nd: yes\ne: ~\nf: 1.5e3\ng: True\n", "x")
    assert doc.data == {"a": 15, "b": 31, "c": 755, "d": "yes", "e": None, "f": 1500.0, "g": True}


def test_publish_a_3_0_contract_and_export_it_as_written_or_as_3_1(home: Home) -> None:
    contract: dict[str, Any] = load_yaml(
        OWN / "odcs" / "v3.0.0" / "orders-3.0-forms.odcs.yaml"
    ).data
    descriptor: dict[str, Any] = load_yaml(ODPS_10).data | {
        "id": "sales.orders",
        "name": "orders",
        "domain": "sales",
        "version": "1.0.0",
        "outputPorts": [{"name": "orders", "version": "1.0.0", "contractId": contract["id"]}],
    }
    today = dt.datetime.now(dt.UTC).date()
    table = pa.table(
        {
            "order_id": pa.array([1, 2, 3], pa.int64()),
            "amount": pa.array(
                [Decimal("10.00"), Decimal("20.50"), Decimal("499.00")], pa.decimal128(10, 2)
            ),
            "status": pa.array(["open", "shipped", "open"]),
            "order_date": pa.array([today, today, today - dt.timedelta(days=1)], pa.date32()),
        }
    )
    mesh = MeshService(home.context())
    mesh.publish_arrow(descriptor, {"orders": contract}, {"orders": table})
    as_written = parse_yaml(mesh.export("sales.orders")["orders.odcs.yaml"], "c").data
    assert as_written == contract and as_written["apiVersion"] == "v3.0.0"
    upgraded = parse_yaml(
        mesh.export("sales.orders", odcs_version="v3.1.0")["orders.odcs.yaml"], "c"
    ).data
    assert upgraded["apiVersion"] == "v3.1.0" and odcs.is_valid("v3.1.0", upgraded)
    with pytest.raises(InvalidInput, match="cannot export"):
        mesh.export("sales.orders", odcs_version="v3.0.2")


def test_a_layout_product_publishes_over_every_transport(platform: Any, tmp_path: Path) -> None:
    """No `domain`, no `version`, a display name, a port named `processed-data`: derived from
    the folder and the contract by the SDK, so a server (which has no folder) publishes the
    same product; the export carries what was derived."""
    folder = _folder(tmp_path / "domains" / "shop" / "products" / "orders", ODPS_09, MULTI)
    (folder / "data.csv").write_text("id,day\n1,2024-01-01\n2,2024-01-02\n")
    (folder / "build.yaml").write_text(
        "inputs:\n  raw: {path: data.csv, format: csv}\n"
        "transform:\n  sql: SELECT CAST(id AS BIGINT) AS id, CAST(day AS DATE) AS day FROM raw\n"
    )
    version = platform.mesh.publish(folder)
    assert (version.product, version.version) == ("shop.orders", "2.1.0")
    assert [p.name for p in version.ports] == ["processed-data"]
    exported = parse_yaml(platform.mesh.export("shop.orders")["dataproduct.yaml"], "d").data
    assert (exported["name"], exported["domain"], exported["version"]) == (
        "Shop orders",
        "shop",
        "2.1.0",
    )
    assert exported["team"] == load_yaml(ODPS_09).data["team"]  # the 0.9 list, as written
