"""Policies: save-time checks with positions, the default pack at the gates, global vs
domain scope, recorded evaluations, dry runs and the compliance report."""

from __future__ import annotations

import copy
from typing import Any

import pytest

from meshops.client import Platform
from meshops.governance.documents import SAMPLES
from meshops.governance.models import Policy
from meshops.kernel.errors import Forbidden, InvalidInput, PolicyViolation
from meshops.kernel.home import Home
from tests.governance.conftest import admin, as_user


def _publish_doc(**product: Any) -> dict[str, Any]:
    doc = copy.deepcopy(SAMPLES["dataproduct.publish"][0])
    doc["product"].update(product)
    doc.pop("version_bump")  # derived from the versions
    return doc


def test_syntax_error_is_rejected_at_save_with_its_position(platform: Platform) -> None:
    broken = Policy(
        id="broken",
        target="dataproduct.publish",
        expression="size(product.owners) >",
        rationale="x",
        owner="alice",
    )
    with pytest.raises(InvalidInput) as info:
        platform.governance.save_policy(broken)
    assert info.value.detail["line"] == 1
    assert info.value.detail["column"] == 22  # the dangling ">"
    assert "syntax error" in info.value.message
    assert all(p.id != "broken" for p in platform.governance.list_policies())


def test_type_errors_are_rejected_at_save_with_the_offending_name(platform: Platform) -> None:
    cases = {
        "product.ownerz.size() > 0": "ownerz",
        'product.version + 1 == "2"': None,
        "size(product.owners)": "int",  # not a bool or a list
        "schema_diff.breaking && undefined_var": "undefined_var",
    }
    for expression, named in cases.items():
        policy = Policy(
            id="typed",
            target="dataproduct.publish",
            expression=expression,
            rationale="x",
            owner="alice",
        )
        with pytest.raises(InvalidInput) as info:
            platform.governance.save_policy(policy)
        if named and named != "int":
            assert info.value.detail["column"] == expression.index(named) + 1, expression
        if named == "int":
            assert "not bool or list" in info.value.message
    with pytest.raises(InvalidInput, match="unknown policy target"):
        platform.governance.save_policy(
            Policy(id="tt", target="nope", expression="true", rationale="x", owner="a")
        )


def test_default_pack_blocks_and_warns_at_the_publish_gate(platform: Platform) -> None:
    gov = platform.governance
    ids = {p.id for p in gov.list_policies(target="dataproduct.publish")}
    assert {"product-has-owner-and-description", "breaking-change-needs-major-version"} <= ids
    ok = gov.enforce("dataproduct.publish", _publish_doc(), "sales", "meshops:dataproduct:s.o:2")
    assert ok.allowed and ok.warnings == []
    doc = _publish_doc(owners=[], version="1.5.0")
    doc["ports"][0]["freshness"] = ""
    doc["ports"][0]["columns"][1]["masking"] = "none"
    with pytest.raises(PolicyViolation) as info:
        gov.enforce("dataproduct.publish", doc, "sales", "meshops:dataproduct:sales.orders:1.5.0")
    blocked = {v["policy_id"] for v in info.value.detail["violations"]}
    assert blocked == {
        "product-has-owner-and-description",
        "pii-never-unmasked-on-ports",
        "breaking-change-needs-major-version",
    }
    assert [w["policy_id"] for w in info.value.detail["warnings"]] == ["freshness-slo-declared"]
    pii = next(v for v in info.value.detail["violations"] if "pii" in v["policy_id"])
    assert "default.email" in pii["explanation"]
    recorded = gov.evaluations(subject_urn="meshops:dataproduct:sales.orders:1.5.0")
    assert len(recorded) == 4  # the four publish policies of the pack
    assert {e.outcome for e in recorded} == {"fail"}


def test_model_promote_gate(platform: Platform) -> None:
    doc = copy.deepcopy(SAMPLES["model.promote"][0])
    assert platform.governance.enforce("model.promote", doc, None, "meshops:model:churn:3").allowed
    doc["inputs"].append({"urn": "meshops:dataproduct:sales.raw:0.1.0", "status": "draft"})
    doc["metrics"] = {}
    decision = platform.governance.evaluate("model.promote", doc, None, "meshops:model:churn:4")
    assert not decision.allowed
    explanations = " ".join(v.explanation for v in decision.violations)
    assert "sales.raw:0.1.0 is draft" in explanations
    assert {v.policy_id for v in decision.violations} == {
        "production-models-from-published-inputs",
        "production-models-have-evaluation-metrics",
    }


def test_invalid_document_is_refused_naming_the_field(platform: Platform) -> None:
    with pytest.raises(InvalidInput) as info:
        platform.governance.evaluate("model.promote", {"model": {}}, None, "meshops:model:m:1")
    assert info.value.detail["field"] in ("model.name", "target_stage")


def test_domains_add_policies_but_cannot_weaken_global_ones(home: Home) -> None:
    gov = admin(home)
    gov.create_user("dora")
    gov.bind_role("dora", "domain_owner", "sales")
    dora = as_user(home, "dora")
    strict = Policy(
        id="sales-needs-tags",
        scope="sales",
        target="dataproduct.publish",
        expression="size(product.tags) > 0",
        rationale="sales products are tagged",
        owner="dora",
    )
    assert dora.save_policy(strict).version == 1
    # Neither overriding nor deleting a global policy, nor writing in another domain.
    weakened = Policy(
        id="product-has-owner-and-description",
        scope="sales",
        target="dataproduct.publish",
        expression="true",
        rationale="we do not care",
        owner="dora",
    )
    with pytest.raises(Forbidden):
        dora.save_policy(weakened)
    with pytest.raises(Forbidden):
        dora.save_policy(weakened.model_copy(update={"scope": "global"}))
    with pytest.raises(Forbidden):
        dora.delete_policy("product-has-owner-and-description")
    with pytest.raises(Forbidden):
        dora.save_policy(strict.model_copy(update={"id": "hr-x", "scope": "hr"}))
    # The domain's policy applies in its domain only; global ones apply everywhere.
    doc = _publish_doc(tags=[], owners=[])
    in_sales = gov.evaluate("dataproduct.publish", doc, "sales", "meshops:dataproduct:sales.a:1")
    in_hr = gov.evaluate("dataproduct.publish", doc, "hr", "meshops:dataproduct:hr.a:1")
    assert "sales-needs-tags" in {v.policy_id for v in in_sales.violations}
    assert "sales-needs-tags" not in {r.policy_id for r in in_hr.results}
    assert "product-has-owner-and-description" in {v.policy_id for v in in_hr.violations}
    # Saving again bumps the version.
    assert dora.save_policy(strict.model_copy(update={"severity": "warn"})).version == 2


def test_policy_dry_run_and_compliance_report(platform: Platform) -> None:
    gov = platform.governance
    for i, owners in enumerate((["a"], [], ["b"])):
        doc = _publish_doc(owners=owners, id=f"sales.p{i}", description="d")
        gov.evaluate("dataproduct.publish", doc, "sales", f"meshops:dataproduct:sales.p{i}:1")
    draft = Policy(
        id="two-owners",
        target="dataproduct.publish",
        expression="size(product.owners) >= 2",
        rationale="bus factor",
        owner="alice",
    )
    results = gov.test_policy(draft)
    assert [r.outcome for r in results] == ["fail", "fail", "fail"]
    assert all(p.id != "two-owners" for p in gov.list_policies())  # nothing saved
    report = gov.compliance("sales")
    owner_violations = [
        v for v in report.violations if v.policy_id == "product-has-owner-and-description"
    ]
    assert [v.subject_urn for v in owner_violations] == ["meshops:dataproduct:sales.p1:1"]
    assert 0 < report.score < 1
    assert report.trend and 0 < report.trend[-1][1] < 1
    assert gov.compliance("nowhere").score == 1.0


def test_evaluation_is_fast_enough_for_gates(sqlite_home: Home) -> None:
    """Compiled programs are cached: a gate evaluates the pack in milliseconds."""
    import time

    gov = admin(sqlite_home)
    doc = _publish_doc()
    gov.evaluate("dataproduct.publish", doc, "sales", "meshops:dataproduct:sales.o:1")
    start = time.perf_counter()
    for _ in range(20):
        gov.evaluate("dataproduct.publish", doc, "sales", "meshops:dataproduct:sales.o:1")
    assert (time.perf_counter() - start) / 20 < 0.25


def test_gates_evaluate_for_tokens_scoped_to_the_gated_action(sqlite_home: Home) -> None:
    gov = admin(sqlite_home)
    gov.create_user("eng")
    gov.bind_role("eng", "data_engineer", "sales")
    scoped = as_user(sqlite_home, "eng", scopes=frozenset({"dataproduct.*"}))
    decision = scoped.evaluate(
        "dataproduct.publish", _publish_doc(), "sales", "meshops:dataproduct:sales.orders:2.0.0"
    )
    assert decision.allowed
    with pytest.raises(Forbidden):
        scoped.list_policies()  # outside the token's scopes
