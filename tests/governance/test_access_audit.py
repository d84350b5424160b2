"""Access requests (owners decide, auto-approve policies, validation), tokens and
identities over both transports, and the audit log API."""

from __future__ import annotations

import pytest

from meshops.client import Platform
from meshops.governance.models import Policy
from meshops.kernel import audit
from meshops.kernel.auth import Actor
from meshops.kernel.errors import Forbidden, InvalidInput, NotFound, PolicyViolation
from meshops.kernel.home import Home
from tests.governance.conftest import (
    admin,
    as_user,
    customers_contract,
    customers_descriptor,
    customers_table,
)


def _publish(home: Home) -> None:
    from meshops.mesh.service import MeshService

    MeshService(home.context()).publish_arrow(
        customers_descriptor(),
        {"customers": customers_contract()},
        {"customers": customers_table(4)},
    )


def test_request_needs_an_existing_port_a_purpose_and_a_sane_filter(sqlite_home: Home) -> None:
    _publish(sqlite_home)
    bob = as_user(sqlite_home, "bob")
    with pytest.raises(NotFound):
        bob.request_access("crm.nothing", "customers", "x")
    with pytest.raises(InvalidInput):
        bob.request_access("crm.customers", "nope", "x")
    with pytest.raises(InvalidInput, match="purpose"):
        bob.request_access("crm.customers", "customers", "  ")
    with pytest.raises(InvalidInput, match="no columns"):
        bob.request_access("crm.customers", "customers", "x", columns=["shoe_size"])
    for bad in ("1=1; DROP TABLE x", "id IN (SELECT 1)", "read_csv('/etc/passwd') IS NULL", "a ="):
        with pytest.raises(InvalidInput) as info:
            bob.request_access("crm.customers", "customers", "x", row_filter=bad)
        assert info.value.detail["field"] == "row_filter"
    assert as_user(sqlite_home, "olivia").list_requests() == []  # nothing half-written


def test_owner_decides_others_cannot(sqlite_home: Home) -> None:
    _publish(sqlite_home)
    bob = as_user(sqlite_home, "bob")
    request = bob.request_access("crm.customers", "customers", "churn", columns=["email"])
    assert request.owners == ["olivia"]
    with pytest.raises(Forbidden):
        as_user(sqlite_home, "carl").decide(request.id, approve=True)
    with pytest.raises(Forbidden):
        bob.decide(request.id, approve=True)  # not one's own
    olivia = as_user(sqlite_home, "olivia")
    assert [r.id for r in olivia.list_requests(status="pending")] == [request.id]
    denied = olivia.decide(request.id, approve=False, reason="ask for the region only")
    assert denied.status == "denied" and denied.grant_id is None
    with pytest.raises(InvalidInput, match="already denied"):
        olivia.decide(request.id, approve=True)
    again = bob.request_access("crm.customers", "customers", "churn", expires_in_days=7)
    approved = olivia.decide(again.id, approve=True)
    grant = bob.list_grants(grantee="bob")[0]
    assert grant.id == approved.grant_id and grant.expires_at is not None
    olivia.revoke_grant(grant.id, "project over")
    assert bob.list_grants(grantee="bob") == []
    assert bob.list_grants(grantee="bob", active_only=False)[0].revoked_by == "olivia"


def test_access_policies_refuse_and_auto_approve(sqlite_home: Home) -> None:
    _publish(sqlite_home)
    gov = admin(sqlite_home)
    gov.save_policy(
        Policy(
            id="pii-needs-long-purpose",
            target="access.grant",
            expression="size(request.columns.filter(c, c in port.classified_columns)) == 0 "
            "|| size(request.purpose) >= 20",
            rationale="unmasked PII needs a purpose of 20+ characters",
            owner="governance-group",
        )
    )
    gov.save_policy(
        Policy(
            id="crm-auto-approve-masked",
            scope="crm",
            target="access.auto_approve",
            expression='size(request.columns) == 0 && request.row_filter != ""',
            rationale="filtered, fully masked access needs no human",
            owner="olivia",
        )
    )
    bob = as_user(sqlite_home, "bob")
    with pytest.raises(PolicyViolation) as info:
        bob.request_access("crm.customers", "customers", "because", columns=["email"])
    assert info.value.detail["violations"][0]["policy_id"] == "pii-needs-long-purpose"
    # An owner's direct grant asks the same access.grant policies.
    olivia = as_user(sqlite_home, "olivia")
    with pytest.raises(PolicyViolation, match="pii-needs-long-purpose"):
        olivia.grant_access("crm.customers", "customers", "bob", purpose="x", columns=["email"])
    assert olivia.list_grants(grantee="bob") == []
    direct = olivia.grant_access(
        "crm.customers", "customers", "carl", purpose="fraud review of flagged accounts",
        columns=["email"],
    )  # fmt: skip
    assert direct.columns == ["email"]
    manual = bob.request_access("crm.customers", "customers", "dashboards")
    assert manual.status == "pending"
    auto = bob.request_access("crm.customers", "customers", "dashboards", row_filter="region='EU'")
    assert auto.status == "approved"
    assert auto.decided_by == "policy:crm-auto-approve-masked"
    plan = sqlite_home.read_guard.plan(
        sqlite_home.context(Actor("bob")),
        __import__("tests.governance.test_guard", fromlist=["_request"])._request(),
    )
    assert plan.row_filter == "region='EU'" and plan.grant_id == auto.grant_id


def test_identities_tokens_and_bindings_over_both_transports(platform: Platform) -> None:
    gov = platform.governance
    assert gov.whoami().name == "alice"
    assert {b.role for b in gov.whoami().bindings} >= {"platform_admin", "consumer"}
    gov.create_user("bob", email="bob@example.com")
    svc = gov.create_service_account("svc-etl")
    assert svc.kind == "service" and svc.owner == "alice"
    with pytest.raises(InvalidInput):
        gov.create_user("no spaces allowed")
    binding = gov.bind_role("bob", "data_engineer", "sales")
    assert binding.scope == "sales"
    assert [b.role for b in gov.list_bindings("bob") if not b.implicit] == ["data_engineer"]
    with pytest.raises(InvalidInput, match="unknown role"):
        gov.bind_role("bob", "wizard")
    created = gov.create_token(
        "ci", principal="svc-etl", scopes=["pipelines.*"], expires_in_days=30
    )
    assert created.token.startswith("msh_") and created.info.scopes == ["pipelines.*"]
    listed = gov.list_tokens("svc-etl")
    assert [t.id for t in listed] == [created.info.id]
    assert created.token not in repr(listed)  # the secret is never listed
    assert gov.revoke_token(created.info.id).revoked_at is not None
    gov.unbind_role("bob", "data_engineer", "sales")
    with pytest.raises(NotFound):
        gov.unbind_role("bob", "data_engineer", "sales")
    assert len(gov.list_roles()) == 12


def test_audit_list_and_verify_over_both_transports(platform: Platform) -> None:
    gov = platform.governance
    gov.create_user("bob")
    gov.bind_role("bob", "consumer")
    events = gov.audit_events()
    assert [e.action for e in events[:2]] == ["role.bind", "user.create"]
    assert gov.audit_events(obj="meshops:user:bob", limit=1)[0].action == "role.bind"
    verified = gov.verify_audit()
    assert verified.intact and verified.checked >= 2


def test_audit_verify_detects_tampering(sqlite_home: Home) -> None:
    gov = admin(sqlite_home)
    gov.create_user("bob")
    gov.create_user("carl")
    with sqlite_home.db.begin() as conn:
        conn.execute(
            audit.audit_events.update()
            .where(audit.audit_events.c.object == "meshops:user:bob")
            .values(actor="mallory")
        )
    result = gov.verify_audit()
    assert not result.intact and result.first_bad_id is not None
    with pytest.raises(Forbidden):
        as_user(sqlite_home, "bob").verify_audit()
