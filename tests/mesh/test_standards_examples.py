"""ODCS and ODPS documents of every supported version: accepted when valid under their own
version's schema, exported valid, import -> export -> import identical.

Documents come from two places:
- tests/mesh/standards/<odcs|odps>/<version>/ : documents written for these tests, one per
  version, using the forms that differ between versions (see SOURCE.md there), and the ODPS
  example shipped in src/meshops/mesh/standards/;
- the official example files of bitol-io/open-data-contract-standard and
  bitol-io/open-data-product-standard, when a folder of them is given (MESHOPS_STANDARDS_DIR,
  or ../shared/standards/official beside the checkout): <dir>/odcs/**/*.odcs.yaml,
  <dir>/odps/**/*.odps.yaml, and optionally the official schema files in <dir>/schemas/.
  See docs/conformance.md for the layout and the results on the official files.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from meshops.kernel.errors import InvalidInput
from meshops.mesh import odcs, odps
from meshops.mesh.standards.documents import YamlDoc, dump_yaml, load_yaml, parse_yaml

ROOT = Path(__file__).resolve().parents[2]
OWN = Path(__file__).resolve().parent / "standards"
SHIPPED_ODPS = ROOT / "src" / "meshops" / "mesh" / "standards"


def _official_dir() -> Path | None:
    given = os.environ.get("MESHOPS_STANDARDS_DIR")
    candidates = [Path(given)] if given else []
    candidates.append(ROOT.parent / "shared" / "standards" / "official")
    return next((c for c in candidates if c.is_dir()), None)


OFFICIAL = _official_dir()


def _files(pattern: str, standard: str) -> list[Path]:
    found = sorted(OWN.glob(f"{standard}/*/{pattern}"))
    if standard == "odps":
        found += sorted(SHIPPED_ODPS.glob(pattern))
    if OFFICIAL is not None:
        found += sorted((OFFICIAL / standard).rglob(pattern))
    return found


def _id(path: Path) -> str:
    return "/".join(path.parts[-3:])


ODCS_FILES = _files("*.odcs.yaml", "odcs")
ODPS_FILES = _files("*.odps.yaml", "odps")


@pytest.mark.parametrize("path", ODCS_FILES, ids=_id)
def test_odcs_document_round_trips_and_exports_valid(path: Path) -> None:
    doc = load_yaml(path)
    declared = doc.data.get("apiVersion")
    own_valid = declared in odcs.SUPPORTED and odcs.is_valid(declared, doc.data)
    latest_valid = odcs.is_valid(odcs.LATEST, doc.data)
    if not (own_valid or latest_valid):
        with pytest.raises(InvalidInput):
            odcs.read(doc)
        return
    contract = odcs.read(doc)
    assert contract.schema_version == (declared if own_valid else odcs.LATEST)
    exported = odcs.export(contract.document)
    again = parse_yaml(exported, "exported")
    assert again.data == doc.data  # import -> export -> import: the same document
    assert odcs.is_valid(contract.schema_version, again.data)
    assert odcs.read(again).model == contract.model
    v310 = parse_yaml(odcs.export(contract.document, "v3.1.0"), "exported v3.1.0")
    assert odcs.is_valid("v3.1.0", v310.data)
    assert parse_yaml(dump_yaml(v310.data), "again").data == v310.data


@pytest.mark.parametrize("path", ODPS_FILES, ids=_id)
def test_odps_document_round_trips_and_exports_valid(path: Path) -> None:
    doc = load_yaml(path)
    descriptor = odps.read(doc)
    again = parse_yaml(odps.export(descriptor.document), "exported")
    assert again.data == doc.data
    assert odps.is_valid(descriptor.schema_version, again.data)
    deprecated = parse_yaml(odps.export(descriptor.document, "deprecated"), "deprecated")
    assert deprecated.data["status"] == "deprecated"
    assert {k: v for k, v in deprecated.data.items() if k != "status"} == {
        k: v for k, v in doc.data.items() if k != "status"
    }
    assert odps.is_valid(descriptor.schema_version, deprecated.data)


@pytest.mark.skipif(
    OFFICIAL is None,
    reason="the official Bitol schema files are not in this repository: set "
    "MESHOPS_STANDARDS_DIR to a folder of them (docs/conformance.md, 'Official examples')",
)
@pytest.mark.parametrize(
    ("module", "version", "file"),
    [
        (odcs, "v3.0.0", "odcs-json-schema-v3.0.0.json"),
        (odcs, "v3.0.1", "odcs-json-schema-v3.0.1.json"),
        (odcs, "v3.0.2", "odcs-json-schema-v3.0.2.json"),
        (odcs, "v3.1.0", "odcs-json-schema-v3.1.0.json"),
        (odps, "v0.9.0", "odps-json-schema-v0.9.0.json"),
        (odps, "v1.0.0", "odps-json-schema-v1.0.0.json"),
    ],
)
def test_each_schema_equals_the_official_file(module: Any, version: str, file: str) -> None:
    assert OFFICIAL is not None
    official = OFFICIAL / "schemas" / file
    if not official.is_file():
        pytest.skip(f"{official} is not there")

    def rules(value: Any) -> Any:  # what validates: no descriptions, examples, defaults
        if isinstance(value, dict):
            return {
                k: rules(v)
                for k, v in value.items()
                if k not in ("description", "examples", "default")
            }
        if isinstance(value, list):
            return [rules(v) for v in value]
        return value

    assert rules(module.schema(version)) == rules(json.loads(official.read_text()))


# --- what each version's own schema decides ---


def _own(version: str) -> YamlDoc:
    return load_yaml(OWN / "odcs" / version / "orders-3.0-forms.odcs.yaml")


@pytest.mark.parametrize("version", ["v3.0.0", "v3.0.1", "v3.0.2"])
def test_3_0_documents_are_checked_against_their_own_schema(version: str) -> None:
    doc = _own(version)
    assert not odcs.is_valid("v3.1.0", doc.data)  # the 3.0 forms
    contract = odcs.read(doc)
    assert (contract.api_version, contract.schema_version) == (version, version)


def test_a_3_1_document_in_the_3_0_rule_form_is_refused_with_its_line() -> None:
    text = (OWN / "odcs" / "v3.1.0" / "multi-object.odcs.yaml").read_text()
    text = text.replace("      - metric: rowCount\n", "      - rule: rowCount\n")
    with pytest.raises(InvalidInput) as info:
        odcs.read(parse_yaml(text, "c.odcs.yaml"))
    detail = info.value.detail
    assert detail["field"] == "schema[0].quality[0]"
    assert "rule: rowCount" in text.splitlines()[detail["line"] - 1]
    assert "v3.1.0" in info.value.message


def test_a_field_of_a_later_version_is_refused_under_the_earlier_one() -> None:
    # v3.0.0 has no top-level `authoritativeDefinitions` (3.0.1 added them); 3.1.0 refuses
    # 3.0's boolean exclusiveMaximum, so neither schema accepts the document.
    data = _own("v3.0.0").data | {"authoritativeDefinitions": [{"type": "t", "url": "u"}]}
    with pytest.raises(InvalidInput) as info:
        odcs.read(YamlDoc("c.odcs.yaml", data, None))
    assert "authoritativeDefinitions" in info.value.message
    assert "not valid under the v3.1.0 schema either" in info.value.detail["fix"]
    assert "v3.0.0" in info.value.message
    data["apiVersion"] = "v3.0.1"
    assert odcs.read(YamlDoc("c.odcs.yaml", data, None)).schema_version == "v3.0.1"


@pytest.mark.parametrize("version", [None, "v2.2.2", "v3.2.0", 3.1])
def test_unknown_api_version_names_the_supported_ones(version: Any) -> None:
    data = dict(_own("v3.0.0").data)
    if version is None:
        del data["apiVersion"]
    else:
        data["apiVersion"] = version
    with pytest.raises(InvalidInput) as info:
        odcs.read(YamlDoc("c.odcs.yaml", data, None))
    assert info.value.detail["field"] == "apiVersion"
    for supported in odcs.SUPPORTED:
        assert supported in info.value.message and supported in info.value.detail["fix"]
    with pytest.raises(InvalidInput, match=r"v0\.9\.0, v1\.0\.0"):
        odps.read(YamlDoc("d.yaml", {"apiVersion": "v2.0.0", "kind": "DataProduct"}, None))


# --- the internal model ---


def test_3_0_forms_in_the_internal_model() -> None:
    model = odcs.read(_own("v3.0.0")).model
    assert model["team"]["members"][0]["comment"] == "Keeper of the grail"
    orders = model["schema"][0]
    count, row_count = orders["quality"]
    assert count["rule"] == "countCheck" and count["customProperties"][0]["value"] is None
    assert row_count == {
        "rule": "rowCount",
        "mustBeBetween": [1, 1000000],
        "name": "Verify row count range",
        "type": "library",
    }
    order_id, amount, status, order_date = orders["properties"]
    assert order_id["logicalTypeOptions"] == {"minimum": 1, "exclusiveMaximum": 100000000}
    assert order_id["quality"][0] == {
        "rule": "nullCheck",
        "description": "column should not contain null values",
        "type": "library",
    }
    assert amount["logicalTypeOptions"] == {"minimum": 0}
    assert amount["quality"][0]["rule"] == "between"
    assert status["quality"][0]["validValues"] == ["open", "shipped"]
    assert order_date["logicalTypeOptions"] == {"exclusiveMinimum": "2020-01-01"}
    latency = model["slaProperties"][0]
    assert latency["element"] == "orders.order_date" and "column" not in latency
    assert model["contractCreatedTs"] == "2022-10-03T10:00:00Z"


def test_3_0_rules_in_the_3_1_export() -> None:
    out = odcs.to_v310(odcs.read(_own("v3.0.0")).document)
    orders = out["schema"][0]
    count, row_count = orders["quality"]
    assert count["type"] == "custom" and count["engine"] == odcs.CUSTOM_ENGINE_V30
    assert count["implementation"] == {"rule": "countCheck"}
    assert row_count["metric"] == "rowCount" and row_count["mustBeBetween"] == [1, 1000000]
    null_check = orders["properties"][0]["quality"][0]
    assert null_check["metric"] == "nullValues" and null_check["mustBe"] == 0
    valid = orders["properties"][2]["quality"][0]
    assert valid["arguments"] == {"validValues": ["open", "shipped"]}
    member = out["team"]["members"][0]
    assert {"property": "comment", "value": "Keeper of the grail"} in member["customProperties"]


def test_export_keeps_null_custom_property_values() -> None:
    doc = load_yaml(OWN / "odcs" / "v3.1.0" / "multi-object.odcs.yaml")
    text = odcs.export(odcs.read(doc).document)
    assert "value: null" in text
    assert parse_yaml(text, "x").data["customProperties"][0] == {
        "property": "reviewedBy",
        "value": None,
    }


def test_export_in_another_3_0_version_is_refused() -> None:
    with pytest.raises(InvalidInput, match=r"v3\.0\.0"):
        odcs.export(_own("v3.0.0").data, "v3.0.2")


def test_odps_0_9_team_list_and_1_0_forms() -> None:
    old = odps.read(load_yaml(OWN / "odps" / "v0.9.0" / "orders-team-list.odps.yaml"))
    assert old.schema_version == "v0.9.0"
    assert old.model["team"] == {"members": old.document["team"]}
    shipped = odps.read(load_yaml(SHIPPED_ODPS / "example-customer-data-product.odps.yaml"))
    # apiVersion v0.9.0 written with the 1.0.0 team object: valid under 1.0.0 only
    assert (shipped.api_version, shipped.schema_version) == ("v0.9.0", "v1.0.0")
    assert shipped.document["team"]["members"][0]["dateIn"] == "2023-01-15"
