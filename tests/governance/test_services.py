"""The governance services each stand alone with a context, and together are the area."""

from __future__ import annotations

import pytest

from meshops.governance.access_service import AccessService
from meshops.governance.audit_service import AuditService
from meshops.governance.identity_service import IdentityService
from meshops.governance.interface import Access, Audit, Governance, Identities, Policies, Usage
from meshops.governance.models import Policy
from meshops.governance.policy_service import PolicyService
from meshops.governance.service import GovernanceService
from meshops.governance.usage_service import UsageService
from meshops.kernel.auth import Actor
from meshops.kernel.home import Home
from meshops.kernel.rpc import protocol_methods
from tests.governance.conftest import publish_customers

PARTS = [
    (Identities, IdentityService),
    (Policies, PolicyService),
    (Access, AccessService),
    (Usage, UsageService),
    (Audit, AuditService),
]


@pytest.mark.parametrize(("part", "service"), PARTS, ids=[p.__name__ for p, _ in PARTS])
def test_each_service_implements_its_part(part: type, service: type) -> None:
    assert protocol_methods(part) <= set(dir(service))


def test_the_parts_are_the_whole_api() -> None:
    parts = set().union(*(protocol_methods(part) for part, _ in PARTS))
    assert parts == protocol_methods(Governance)
    assert {service for _, service in PARTS} <= set(GovernanceService.__mro__)


def test_services_work_alone(sqlite_home: Home) -> None:
    publish_customers(sqlite_home)
    ctx = sqlite_home.context()
    PolicyService(ctx).save_policy(
        Policy(
            id="crm-auto-approve-filtered",
            scope="crm",
            target="access.auto_approve",
            expression='request.row_filter != ""',
            rationale="filtered access needs no human",
            owner="olivia",
        )
    )
    IdentityService(ctx).create_user("bob")
    bob = sqlite_home.context(Actor("bob"))
    request = AccessService(bob).request_access(
        "crm.customers", "customers", "dashboards", row_filter="region='EU'"
    )
    assert request.status == "approved"
    assert request.decided_by == "policy:crm-auto-approve-filtered"
    assert UsageService(ctx).impact("crm.customers").grants[0].grantee == "bob"
    actions = [e.action for e in AuditService(ctx).audit_events(limit=10)]
    assert {"policy.save", "user.create", "access.request"} <= set(actions)
    assert AuditService(ctx).verify_audit().intact
