"""The governed read: grants, masking on real Arrow data, row filters and exact usage,
checked on the guard directly and end to end through the mesh's one read path."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from meshops.client import Platform
from meshops.governance.guard import GovernedReadGuard
from meshops.governance.masking import REDACTED, apply_plan
from meshops.governance.models import MaskRule
from meshops.kernel.access import ReadRequest, ReadUsage
from meshops.kernel.auth import Actor
from meshops.kernel.errors import Forbidden
from meshops.kernel.home import Home
from meshops.kernel.secrets import derived_key
from tests.governance.conftest import (
    admin,
    as_user,
    customers_contract,
    customers_descriptor,
    customers_table,
    publish_customers,
)

CLASSIFICATION = {"customer_id": "public", "email": "pii", "region": "", "income": "restricted"}


def _request(interface: str = "sdk", columns: tuple[str, ...] | None = None) -> ReadRequest:
    return ReadRequest(
        product="crm.customers",
        domain="crm",
        version="1.0.0",
        port="customers",
        columns=columns or tuple(CLASSIFICATION),
        classification=CLASSIFICATION,
        owners=("olivia",),
        interface=interface,  # type: ignore[arg-type]
    )


def test_guard_is_the_default_hook(home: Home) -> None:
    assert isinstance(home.read_guard, GovernedReadGuard)


def test_consumer_without_grant_is_refused_with_the_fix(home: Home) -> None:
    with pytest.raises(Forbidden) as info:
        home.read_guard.plan(home.context(Actor("bob")), _request())
    assert info.value.detail["fix"].startswith("meshops access request crm.customers")


def test_owners_and_admins_read_everything_unmasked(home: Home) -> None:
    for actor in (Actor("olivia"), Actor("alice")):
        plan = home.read_guard.plan(home.context(actor), _request())
        assert plan.masks == {} and plan.row_filter is None
        assert plan.columns == tuple(CLASSIFICATION)


def test_domain_scoped_owner_reads_only_its_domain(home: Home) -> None:
    gov = admin(home)
    gov.create_user("dora")
    gov.bind_role("dora", "domain_owner", "crm")
    plan = home.read_guard.plan(home.context(Actor("dora")), _request())
    assert plan.masks == {}
    gov.create_user("hank")
    gov.bind_role("hank", "domain_owner", "hr")
    with pytest.raises(Forbidden):
        home.read_guard.plan(home.context(Actor("hank")), _request())


def test_grant_masks_classified_columns_it_does_not_name(home: Home) -> None:
    publish_customers(home)
    gov = admin(home)
    grant = gov.grant_access(
        "crm.customers", "customers", "bob", purpose="churn", row_filter="region = 'EU'"
    )
    plan = home.read_guard.plan(home.context(Actor("bob")), _request())
    assert plan.masks == {"email": "hash", "income": "null"}
    assert plan.row_filter == "region = 'EU'"
    assert plan.grant_id == grant.id
    named = gov.grant_access("crm.customers", "customers", "carl", columns=["email"])
    plan = home.read_guard.plan(home.context(Actor("carl")), _request())
    assert plan.masks == {"income": "null"} and plan.grant_id == named.id
    # Mask rules: global, then a domain's own.
    gov.set_mask_rule(MaskRule(classification="pii", method="redact"))
    assert home.read_guard.plan(home.context(Actor("bob")), _request()).masks["email"] == "redact"
    gov.set_mask_rule(MaskRule(scope="crm", classification="pii", method="null"))
    assert home.read_guard.plan(home.context(Actor("bob")), _request()).masks["email"] == "null"


def test_revoked_and_expired_grants_stop_reads(home: Home) -> None:
    publish_customers(home)
    gov = admin(home)
    grant = gov.grant_access("crm.customers", "customers", "bob", expires_in_days=1)
    home.read_guard.plan(home.context(Actor("bob")), _request())
    gov.revoke_grant(grant.id, "no longer needed")
    with pytest.raises(Forbidden):
        home.read_guard.plan(home.context(Actor("bob")), _request())
    from meshops.governance.store import grants

    expired = gov.grant_access("crm.customers", "customers", "bob", expires_in_days=1)
    with home.db.begin() as conn:
        conn.execute(
            grants.update().where(grants.c.id == expired.id).values(expires_at=expired.granted_at)
        )
    with pytest.raises(Forbidden):
        home.read_guard.plan(home.context(Actor("bob")), _request())


def test_masking_on_real_arrow_data(sqlite_home: Home) -> None:
    publish_customers(sqlite_home)
    admin(sqlite_home).grant_access("crm.customers", "customers", "bob")
    plan = sqlite_home.read_guard.plan(sqlite_home.context(Actor("bob")), _request())
    table = customers_table(6)
    key = derived_key(sqlite_home.settings, "masking")
    masked = apply_plan(table, plan, key)
    emails = table.column("email").to_pylist()
    assert masked.column("email").to_pylist() == [
        hmac.new(key, e.encode(), hashlib.sha256).hexdigest() for e in emails
    ]
    assert masked.column("income").null_count == 6
    assert masked.column("income").type == table.column("income").type
    assert masked.column("customer_id").equals(table.column("customer_id"))
    redacted = apply_plan(table, plan.__class__(columns=("email",), masks={"email": "redact"}), key)
    assert set(redacted.column("email").to_pylist()) == {REDACTED}


def test_usage_is_counted_exactly(home: Home) -> None:
    publish_customers(home)
    gov = admin(home)
    gov.grant_access("crm.customers", "customers", "bob")
    bob = home.context(Actor("bob"))
    for rows, interface in ((10, "sdk"), (7, "sql"), (3, "http")):
        request = _request(interface)
        plan = home.read_guard.plan(bob, request)
        home.read_guard.record(bob, ReadUsage(request=request, plan=plan, rows=rows))
    owner = home.context(Actor("olivia"))
    request = _request("pipeline", ("customer_id",))
    home.read_guard.record(
        owner, ReadUsage(request, home.read_guard.plan(owner, request), rows=100)
    )
    usage = gov.product_usage("crm.customers")
    assert usage.reads == 4 and usage.rows == 120
    assert usage.consumers == {"bob": 3, "olivia": 1}
    assert usage.interfaces == {"sdk": 1, "sql": 1, "http": 1, "pipeline": 1}
    assert sum(n for _, n in usage.reads_per_day) == 4
    events = gov.usage_events("crm.customers")
    assert events[0].actor == "olivia" and events[0].columns == ["customer_id"]
    assert sorted(events[-1].masked) == ["email", "income"]
    impact = gov.impact("crm.customers", columns=["email"])
    assert impact.consumers == {"bob": 3}
    assert [g.grantee for g in impact.grants] == ["bob"]
    assert gov.idle_products(days=30, known=["crm.customers", "crm.unused"])[0].product == (
        "crm.unused"
    )
    with pytest.raises(Forbidden):
        as_user(home, "bob").product_usage("crm.customers")


def _publish_customers(platform: Platform, rows: int = 10) -> None:
    platform.mesh.publish_arrow(
        customers_descriptor(),
        {"customers": customers_contract()},
        {"customers": customers_table(rows)},
    )


def test_end_to_end_through_the_mesh_read_path(platform: Platform, tmp_path: object) -> None:
    """A consumer without a grant cannot read (SDK, SQL); with a grant it reads masked and
    filtered rows; every read is recorded. Runs embedded, over HTTP and on PostgreSQL."""
    _publish_customers(platform)
    bob = _as_bob(platform)
    try:
        with pytest.raises(Forbidden):
            bob.mesh.read("crm.customers")
        with pytest.raises(Forbidden):
            bob.mesh.sql("SELECT count(*) FROM crm.customers")
        request = bob.governance.request_access(
            "crm.customers", "customers", "churn model", row_filter="region = 'EU'"
        )
        assert request.status == "pending" and request.owners == ["olivia"]
        decided = platform.governance.decide(request.id, approve=True)
        assert decided.status == "approved" and decided.grant_id
        table = bob.mesh.read("crm.customers")
        assert table.num_rows == 5
        assert set(table.column("region").to_pylist()) == {"EU"}
        key = derived_key(platform.settings, "masking")  # the server's home: same folder
        assert (
            table.column("email").to_pylist()[0]
            == hmac.new(key, b"user0@example.com", hashlib.sha256).hexdigest()
        )
        assert table.column("income").null_count == 5
        count = bob.mesh.sql("SELECT count(*) AS n FROM crm.customers").column("n")[0].as_py()
        assert count == 5
    finally:
        bob.close()
    usage = platform.governance.product_usage("crm.customers")
    assert usage.consumers == {"bob": 2}
    assert usage.rows == 6  # 5 rows through read, 1 aggregate row through SQL


def _as_bob(platform: Platform) -> Platform:
    """The same platform acting as bob: a token over HTTP, an actor embedded."""
    platform.governance.create_user("bob")
    if platform.http is not None:
        from meshops.kernel.http import HttpTransport

        token = platform.governance.create_token("bob", principal="bob").token
        return Platform(platform.settings, http=HttpTransport(platform.http.base_url, token))
    assert platform.home is not None
    return Platform(platform.settings, home=platform.home, actor=Actor("bob"))
