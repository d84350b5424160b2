"""The `dataproduct.publish` gate: every publish path (SDK over both transports, raw HTTP,
the CLI) asks the default policy pack before anything is written, records the evaluations
once, and surfaces warnings in the publish result."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pyarrow as pa
import pytest
import yaml

from meshops.client import Platform
from meshops.kernel.errors import NotFound, PolicyViolation
from meshops.kernel.wire import ARROW_STREAM, encode_table
from tests.conftest import LiveServer
from tests.mesh.conftest import contract, descriptor
from tests.support.cli import run_cli

COLUMNS: list[dict[str, Any]] = [
    {"name": "id", "logicalType": "integer", "required": True, "primaryKey": True},
    {"name": "amount", "logicalType": "number"},
    {"name": "updated_at", "logicalType": "timestamp"},
]
NOW = datetime.now(UTC)
TABLE = pa.table({"id": [1, 2, 3], "amount": [1.5, 2.5, 3.5], "updated_at": [NOW] * 3})
FRESH = [{"property": "freshness", "value": 24, "unit": "h", "element": "items.updated_at"}]
PUBLISH_POLICIES = 4  # the default pack's dataproduct.publish policies


def _ownerless() -> dict[str, Any]:
    doc = descriptor("1.0.0")
    doc["team"] = {"members": []}
    return doc


def test_publish_without_owner_is_refused_and_writes_nothing(platform: Platform) -> None:
    with pytest.raises(PolicyViolation) as info:
        platform.mesh.publish_arrow(
            _ownerless(), {"items": contract(COLUMNS, sla=FRESH)}, {"items": TABLE}
        )
    violations = info.value.detail["violations"]
    assert [v["policy_id"] for v in violations] == ["product-has-owner-and-description"]
    assert "product-has-owner-and-description" in info.value.message
    with pytest.raises(NotFound):
        platform.mesh.get_product("shop.items")
    recorded = platform.governance.evaluations(subject_urn="meshops:dataproduct:shop.items:1.0.0")
    assert len(recorded) == PUBLISH_POLICIES
    assert {e.outcome for e in recorded if e.policy_id == "product-has-owner-and-description"} == {
        "fail"
    }


def test_unmasked_pii_is_refused(platform: Platform) -> None:
    columns = [
        *COLUMNS,
        {
            "name": "email",
            "logicalType": "string",
            "classification": "pii",
            "customProperties": [{"property": "masking", "value": "none"}],
        },
    ]
    table = TABLE.append_column("email", pa.array(["a@x", "b@x", "c@x"]))
    with pytest.raises(PolicyViolation, match="pii-never-unmasked-on-ports") as info:
        platform.mesh.publish_arrow(
            descriptor("1.0.0"), {"items": contract(columns, sla=FRESH)}, {"items": table}
        )
    assert "items.email" in info.value.detail["violations"][0]["explanation"]


def test_compliant_publish_is_evaluated_once_and_returns_warnings(platform: Platform) -> None:
    # No freshness SLO: a warning (severity warn), the publish goes ahead.
    v1 = platform.mesh.publish_arrow(
        descriptor("1.0.0"), {"items": contract(COLUMNS)}, {"items": TABLE}
    )
    assert [w.policy_id for w in v1.policy_warnings] == ["freshness-slo-declared"]
    assert "items" in v1.policy_warnings[0].explanation
    recorded = platform.governance.evaluations(subject_urn=v1.urn)
    assert len(recorded) == PUBLISH_POLICIES  # exactly one evaluation per policy
    # With the SLO declared: no warning.
    v2 = platform.mesh.publish_arrow(
        descriptor("1.1.0"), {"items": contract(COLUMNS, sla=FRESH)}, {"items": TABLE}
    )
    assert v2.policy_warnings == []
    # Publishing the same version and content again is reused, not evaluated again.
    again = platform.mesh.publish_arrow(
        descriptor("1.1.0"), {"items": contract(COLUMNS, sla=FRESH)}, {"items": TABLE}
    )
    assert again.reused
    assert len(platform.governance.evaluations(subject_urn=v2.urn)) == PUBLISH_POLICIES


def test_raw_http_publish_refused_is_403_listing_the_violation(live_server: LiveServer) -> None:
    meta = {"descriptor": _ownerless(), "contracts": {"items": contract(COLUMNS)}, "inputs": []}
    files = [
        ("meta", ("meta.json", json.dumps(meta).encode(), "application/json")),
        ("tables", ("items", encode_table(TABLE), ARROW_STREAM)),
    ]
    response = httpx.post(f"{live_server.url}/v1/mesh/publish", files=files, timeout=30)
    assert response.status_code == 403
    body = response.json()
    assert body["error"] == "policy_violation"
    assert [v["policy_id"] for v in body["detail"]["violations"]] == [
        "product-has-owner-and-description"
    ]
    assert [w["policy_id"] for w in body["detail"]["warnings"]] == ["freshness-slo-declared"]


def test_cli_publish_refused_exits_6(retail: Path, tmp_path: Path) -> None:
    folder = retail / "customers_profiles"
    path = folder / "dataproduct.yaml"
    doc = yaml.safe_load(path.read_text())
    doc["description"] = {"purpose": "  "}
    path.write_text(yaml.safe_dump(doc))
    result = run_cli("product", "publish", str(folder), home=tmp_path / "home", cwd=retail)
    assert result.returncode == 6, result.stderr
    assert "product-has-owner-and-description" in result.stderr
