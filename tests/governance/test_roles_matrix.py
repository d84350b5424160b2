"""Role × action matrix: every role, every catalogued action, bound at platform scope and
at domain scope, checked through the home's real authorizer on a real database."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from meshops.governance.authorizer import RoleAuthorizer
from meshops.governance.roles import ROLES, permission_table_markdown
from meshops.kernel.auth import Actor
from meshops.kernel.errors import Forbidden
from meshops.kernel.home import Home
from meshops.kernel.permissions import ACTIONS
from tests.conftest import make_settings
from tests.governance.conftest import admin

DOCS = Path(__file__).resolve().parents[2] / "docs" / "governance.md"


@pytest.fixture(scope="module")
def bound_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    """One principal per role at platform scope (`p-<role>`) and one in domain sales."""
    home = Home(make_settings(tmp_path_factory.mktemp("matrix") / "home"))
    gov = admin(home)
    for role in ROLES:
        for prefix, domain in (("p", None), ("d", "sales")):
            gov.create_user(f"{prefix}-{role}")
            gov.bind_role(f"{prefix}-{role}", role, domain)
    gov.create_user("nobody")
    yield home
    home.close()


@pytest.mark.parametrize("action", list(ACTIONS))
@pytest.mark.parametrize("role", list(ROLES))
def test_role_action_matrix(bound_home: Home, role: str, action: str) -> None:
    assert isinstance(bound_home.authorizer, RoleAuthorizer)
    expected = ROLES[role].allows(action) or ROLES["consumer"].allows(action)
    check = bound_home.authorizer.check
    # Platform scope: the role's permission set, anywhere.
    for domain in (None, "sales", "hr"):
        if expected:
            check(Actor(f"p-{role}"), action, domain)
        else:
            with pytest.raises(Forbidden):
                check(Actor(f"p-{role}"), action, domain)
    # Domain scope: only inside that domain (elsewhere only what every consumer may do).
    consumer_only = ROLES["consumer"].allows(action)
    assert bound_home.authorizer.allows(Actor(f"d-{role}"), action, "sales") == expected
    assert bound_home.authorizer.allows(Actor(f"d-{role}"), action, "hr") == consumer_only
    assert bound_home.authorizer.allows(Actor(f"d-{role}"), action, None) == consumer_only


# Separation of duties and the mesh's intent, written out by hand (not derived from code).
SPOT_CHECKS = [
    ("platform_admin", "identity.write", True),
    ("consumer", "dataproduct.publish", False),
    ("consumer", "access.request", True),
    ("consumer", "dataproduct.read_any", False),
    ("ml_engineer", "registry.promote", True),
    ("ml_engineer", "registry.approve", False),
    ("business_stakeholder", "registry.approve", True),
    ("business_stakeholder", "registry.promote", False),
    ("data_scientist", "registry.promote", False),
    ("data_scientist", "tracking.write", True),
    ("data_engineer", "dataproduct.publish", True),
    ("data_engineer", "access.decide", False),
    ("data_product_owner", "access.decide", True),
    ("data_product_owner", "dataproduct.read_any", True),
    ("domain_owner", "policy.write_domain", True),
    ("domain_owner", "policy.write_global", False),
    ("governance_member", "policy.write_global", True),
    ("governance_member", "dataproduct.read_any", False),
    ("software_engineer", "serving.write", True),
    ("software_engineer", "dataproduct.publish", False),
    ("devops_engineer", "pipelines.run", True),
    ("devops_engineer", "identity.write", False),
    ("solution_architect", "audit.read", True),
    ("solution_architect", "tracking.write", False),
]


@pytest.mark.parametrize(("role", "action", "allowed"), SPOT_CHECKS)
def test_intended_permissions(bound_home: Home, role: str, action: str, allowed: bool) -> None:
    assert bound_home.authorizer.allows(Actor(f"p-{role}"), action, "sales") is allowed


def test_unbound_principal_is_only_a_consumer(bound_home: Home) -> None:
    authorizer = bound_home.authorizer
    assert authorizer.allows(Actor("nobody"), "dataproduct.read_metadata")
    with pytest.raises(Forbidden) as info:
        authorizer.check(Actor("nobody"), "tracking.write")
    assert "meshops roles bind nobody" in info.value.detail["fix"]


def test_token_scopes_narrow_permissions(bound_home: Home) -> None:
    scoped = Actor("p-platform_admin", scopes=frozenset({"tracking.*"}))
    assert bound_home.authorizer.allows(scoped, "tracking.write")
    with pytest.raises(Forbidden, match="token"):
        bound_home.authorizer.check(scoped, "identity.write")


def test_platform_admin_has_every_action() -> None:
    assert all(ROLES["platform_admin"].allows(action) for action in ACTIONS)


def test_docs_permission_table_is_generated_from_code() -> None:
    assert permission_table_markdown() in DOCS.read_text(), (
        "docs/governance.md is out of date: run "
        "`.venv/bin/python -m meshops.governance.roles docs/governance.md`"
    )
