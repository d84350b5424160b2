"""The whole workflow on a real git repository: init -> check -> plan -> apply -> breaking
contract change -> plan shows it and its consumers -> apply refused by policy -> major bump
-> apply passes; applying twice changes nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from meshops.client import Platform
from meshops.kernel.errors import PolicyViolation
from meshops.project.check import junit_xml, markdown
from meshops.tracking.models import DatasetInput
from tests.project.helpers import ORDERS, commit_all, edit, git
from tests.support.git import new_project


class Echo:
    def predict(self, rows: list[float]) -> list[float]:
        return rows


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return new_project(tmp_path / "shop")


def test_init_check_plan_apply_breaking_change(platform: Platform, project: Path) -> None:
    assert (project / ".github" / "workflows" / "meshops.yml").is_file()
    assert git(project, "rev-parse", "--abbrev-ref", "HEAD") == "main"
    first_commit = git(project, "rev-parse", "HEAD")

    report = platform.project.check(project)
    assert report.passed, markdown(report)
    suites = report.suites()
    assert {"specs", "contracts", "transform-tests", "policies"} <= set(suites)
    assert any(
        c.name.endswith("test_orders_transform_keeps_every_row") for c in suites["transform-tests"]
    )

    plan = platform.project.plan(project)
    assert plan.git.commit == first_commit
    actions = {(c.kind, c.name): c.action for c in plan.changes}
    assert actions[("dataproduct", "sales.orders")] == "new_version"
    assert actions[("dataproduct", "sales.order_stats")] == "new_version"
    assert actions[("feature_view", "customer_order_stats")] == "create"
    assert actions[("policy", "sales-products-are-tagged")] == "create"
    assert actions[("domain", "sales")] == "create"

    result = platform.project.apply(project)
    assert {c.name for c in result.applied} >= {"sales.orders", "sales.order_stats"}
    assert platform.mesh.get_product("sales.orders").latest_version == "1.0.0"
    applied = {a.name: a for a in platform.project.applied("shop")}
    assert applied["sales.orders"].commit == first_commit
    assert applied["customer_order_stats"].commit == first_commit

    # a model trained on sales.orders 1.0.0 (lineage: product version -> run -> model)
    orders_v1 = platform.mesh.get_version("sales.orders@1.0.0")
    run = platform.tracking.create_run("churn", capture_environment=False)
    platform.tracking.log_input(
        run.id, DatasetInput(urn=orders_v1.urn, digest=orders_v1.digest, name="sales.orders")
    )
    model = platform.registry.log_model("churn", Echo(), flavor="python", run_id=run.id)

    # applying twice changes nothing
    again = platform.project.apply(project)
    assert again.applied == [] and again.records == []
    assert not platform.project.plan(project).has_changes

    # a breaking contract change (column removed) under a minor version
    contract = project / ORDERS / "orders.odcs.yaml"
    text = contract.read_text()
    begin = text.index("      - name: status")
    contract.write_text(text[:begin] + text[text.index("      - name: placed_at") :])
    edit(project / ORDERS / "transform.sql", "    status,\n", "")
    edit(project / ORDERS / "dataproduct.yaml", "version: 1.0.0\nstatus", "version: 1.1.0\nstatus")
    commit_all(project, "orders: drop status")
    plan = platform.project.plan(project)
    orders = plan.change("dataproduct", "sales.orders")
    assert orders.action == "new_version" and orders.version_bump == "minor"
    assert [b.column for b in orders.breaking] == ["status"]
    assert any("sales.order_stats" in urn for urn in orders.affected.consumers)
    assert model.urn in orders.affected.models
    assert any(
        p.policy_id == "breaking-change-needs-major-version" and p.blocking for p in orders.policies
    )

    report = platform.project.check(project, run_tests=False)
    assert not report.passed
    assert any(c.suite == "breaking-changes" and not c.passed for c in report.cases)
    assert "sales.order_stats" in markdown(report)
    assert "<failure" in junit_xml(report)

    with pytest.raises(PolicyViolation) as refused:
        platform.project.apply(project)
    assert "breaking-change-needs-major-version" in refused.value.message
    assert platform.mesh.get_product("sales.orders").latest_version == "1.0.0"

    # bump major: apply passes and links the new version to the new commit
    edit(project / ORDERS / "dataproduct.yaml", "version: 1.1.0\nstatus", "version: 2.0.0\nstatus")
    major = commit_all(project, "orders: 2.0.0")
    result = platform.project.apply(project)
    assert [c.name for c in result.applied] == ["sales.orders"]
    assert platform.mesh.get_product("sales.orders").latest_version == "2.0.0"
    assert {a.name: a for a in platform.project.applied("shop")}["sales.orders"].commit == major
    assert platform.project.apply(project).applied == []
