"""The example spec files of docs/examples/ (shown in docs/reference/specs.md) load through
the real parsers and validators, and the product builds and passes its contract test."""

from __future__ import annotations

from pathlib import Path

import yaml

from meshops.features import specs as feature_specs
from meshops.governance.models import Policy
from meshops.governance.policies import check_policy, compile_expression
from meshops.mesh import specs as mesh_specs
from meshops.monitoring.models import AlertRuleSpec, MonitorSpec
from tests.docs.blocks import ROOT

EXAMPLES = ROOT / "docs" / "examples"


def test_product_descriptor_contract_and_build_load() -> None:
    spec = mesh_specs.load_product(EXAMPLES / "orders")
    assert spec.descriptor["id"] == "shop.orders" and spec.domain == "shop"
    assert [port.port for port in spec.ports] == ["orders"]
    build = mesh_specs.load_build(EXAMPLES / "orders" / "build.yaml")
    assert "raw" in build.inputs


def test_product_builds_and_passes_its_contract(tmp_path: Path) -> None:
    import meshops

    with meshops.connect(home=tmp_path / "home") as platform:
        report = platform.mesh.build(EXAMPLES / "orders")
    assert [(p.port, p.rows) for p in report.ports] == [("orders", 2)]
    assert all(p.report.passed for p in report.ports)


def test_feature_definitions_load() -> None:
    repo = feature_specs.load_file(EXAMPLES / "features.yaml")
    assert [v.name for v in repo.feature_views] == ["customer_orders"]


def test_policy_loads_and_passes_the_save_time_checks() -> None:
    policy = Policy.model_validate(yaml.safe_load((EXAMPLES / "policy.yaml").read_text()))
    check_policy(policy)  # compiled and evaluated against sample documents of its target


def test_schedules_and_triggers_load() -> None:
    from croniter import croniter

    data = yaml.safe_load((EXAMPLES / "pipelines.yaml").read_text())
    for schedule in data["schedules"]:
        assert croniter.is_valid(schedule["cron"]), schedule
        assert ":" in schedule["ref"]
    for trigger in data["triggers"]:
        assert trigger["topic"] and ":" in trigger["ref"]
        if "expression" in trigger:
            compile_expression(trigger["expression"])


def test_monitor_spec_loads() -> None:
    data = yaml.safe_load((EXAMPLES / "monitor.yaml").read_text())
    rules = [AlertRuleSpec.model_validate(r) for r in data.pop("rules")]
    spec = MonitorSpec.model_validate(data)
    assert spec.kind == "data_drift" and rules[0].metric == "dataset_drift"
