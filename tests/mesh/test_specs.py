from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from open_data_contract_standard.model import OpenDataContractStandard

from meshops.kernel.errors import InvalidInput
from meshops.mesh import specs
from tests.mesh.conftest import EXAMPLE

STANDARD_EXAMPLE = specs.STANDARDS / "example-customer-data-product.odps.yaml"


def test_standard_odps_example_validates_and_round_trips() -> None:
    doc = specs.load_yaml(STANDARD_EXAMPLE)
    specs.validate_descriptor(doc)
    again = specs.parse_yaml(specs.export_descriptor(doc.data), "exported")
    specs.validate_descriptor(again)
    assert again.data == doc.data


@pytest.mark.parametrize("path", sorted(EXAMPLE.rglob("*.odcs.yaml")), ids=lambda p: p.name)
def test_odcs_contracts_round_trip_through_the_odcs_model(path: Path) -> None:
    doc = specs.load_yaml(path)
    specs.validate_contract(doc)
    exported = specs.export_contract(doc.data)
    assert yaml.safe_load(exported) == doc.data
    # another ODCS reader of the ecosystem reads the export as it reads the original
    assert OpenDataContractStandard.from_string(exported) == OpenDataContractStandard.from_string(
        path.read_text()
    )


def test_example_products_load(tmp_path: Path) -> None:
    spec = specs.load_product(EXAMPLE / "sales_orders")
    assert spec.key == "sales.orders"
    assert [c.name for c in spec.ports[0].columns][:2] == ["order_id", "customer_id"]
    assert spec.ports[0].columns[0].primary_key
    assert spec.build is not None and "raw_orders" in spec.build.inputs


def _write(folder: Path, name: str, text: str) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(text)


def test_malformed_yaml_names_file_and_line(tmp_path: Path) -> None:
    _write(tmp_path, "dataproduct.yaml", "apiVersion: v1.0.0\nkind: DataProduct\nid: [a\nname: x\n")
    with pytest.raises(InvalidInput) as info:
        specs.load_product(tmp_path)
    assert info.value.detail["file"].endswith("dataproduct.yaml")
    assert info.value.detail["line"] in (3, 4)
    assert "malformed YAML" in info.value.message and info.value.detail["fix"]


def test_spec_error_names_line_and_field(tmp_path: Path) -> None:
    text = (EXAMPLE / "sales_orders" / "dataproduct.yaml").read_text()
    _write(
        tmp_path, "dataproduct.yaml", text.replace("version: 1.0.0\nstatus", "version: one\nstatus")
    )
    for f in ("orders.odcs.yaml", "build.yaml"):
        _write(tmp_path, f, (EXAMPLE / "sales_orders" / f).read_text())
    with pytest.raises(InvalidInput) as info:
        specs.load_product(tmp_path)
    assert info.value.detail["field"] == "version"
    assert info.value.detail["line"] == 6
    assert "MAJOR.MINOR.PATCH" in info.value.detail["fix"]


def test_contract_error_points_at_the_property(tmp_path: Path) -> None:
    src = EXAMPLE / "sales_orders"
    for f in ("dataproduct.yaml", "build.yaml"):
        _write(tmp_path, f, (src / f).read_text())
    bad = (
        (src / "orders.odcs.yaml").read_text().replace("logicalType: number", "logicalType: money")
    )
    _write(tmp_path, "orders.odcs.yaml", bad)
    with pytest.raises(InvalidInput) as info:
        specs.load_product(tmp_path)
    detail = info.value.detail
    assert detail["field"].startswith("schema[0].properties[2]")
    lines = bad.splitlines()
    assert "money" in lines[detail["line"] - 1] or "amount" in lines[detail["line"] - 1]


def test_missing_contract_and_bad_build_are_explained(tmp_path: Path) -> None:
    src = EXAMPLE / "sales_orders"
    _write(tmp_path, "dataproduct.yaml", (src / "dataproduct.yaml").read_text())
    with pytest.raises(InvalidInput, match="no contract with id"):
        specs.load_product(tmp_path)
    _write(tmp_path, "orders.odcs.yaml", (src / "orders.odcs.yaml").read_text())
    _write(tmp_path, "build.yaml", "inputs:\n  a:\n    path: x.csv\n    product: a.b\n")
    with pytest.raises(InvalidInput) as info:
        specs.load_product(tmp_path)
    assert info.value.detail["line"] == 2 and "exactly one" in info.value.message
    _write(tmp_path, "build.yaml", "inputs:\n  a:\n    pth: x.csv\n")
    with pytest.raises(InvalidInput) as info:
        specs.load_product(tmp_path)
    assert info.value.detail["field"] == "inputs.a.pth" and info.value.detail["line"] == 3


def test_reader_option_names_must_be_identifiers() -> None:
    """Option names are written into the DuckDB reader call; values go in as literals."""
    from pydantic import ValidationError

    from meshops.mesh.specs import InputSpec

    assert InputSpec(path="a.csv", options={"delim": ";", "header": True}).options["delim"] == ";"
    with pytest.raises(ValidationError, match="identifiers"):
        InputSpec(path="a.csv", options={"header = true) TO '/tmp/x' --": 1})
