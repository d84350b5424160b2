"""Finding 8: column values leaked through metadata. A consumer without a grant saw the
min/max (and histogram) of a confidential column in `GET /v1/mesh/products/{p}/version`.
Value statistics are now shown only for columns the caller reads in clear (owners,
read_any, a grant naming the column, an unclassified column of a grant); counts stay.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.security.conftest import CLEAR, MASKED_COLUMNS, PORT, PRODUCT, SecurityHome, leaks

VERSION = f"/v1/mesh/products/{PRODUCT}/version"
VERSIONS = f"/v1/mesh/products/{PRODUCT}/versions"
ALL_COLUMNS = ("customer_id", "region", *MASKED_COLUMNS, "updated_at")


def _profile(body: dict[str, Any]) -> dict[str, dict[str, Any]]:
    port = next(p for p in body["ports"] if p["name"] == PORT)
    return {c["name"]: c for c in port["profile"]}


def _with_statistics(profile: dict[str, dict[str, Any]]) -> set[str]:
    return {
        name
        for name, column in profile.items()
        if column["min"] is not None or column["max"] is not None or column["histogram"]
    }


def _needles() -> dict[str, bytes]:
    """Clear values of the masked columns, plus the min/max text of the income column."""
    incomes = CLEAR.incomes()
    extra = {f"income bound {v!r}": repr(v).encode() for v in (min(incomes), max(incomes))}
    return {**CLEAR.masked_needles(), **extra}


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("consumer-none", set()),
        ("ds-revoked", set()),
        ("sales-owner", set()),
        ("ds-masked", {"customer_id", "region", "updated_at"}),
        ("consumer-unmasked", set(ALL_COLUMNS)),
        ("crm-owner", set(ALL_COLUMNS)),
        ("alice", set(ALL_COLUMNS)),
    ],
)
def test_version_statistics_follow_the_read_plan(
    sec: SecurityHome, name: str, expected: set[str]
) -> None:
    client = sec.client(name)
    for path in (VERSION, VERSIONS):
        r = client.get(path)
        assert r.status_code == 200, r.text[:300]
        bodies = r.json() if isinstance(r.json(), list) else [r.json()]
        for body in bodies:
            profile = _profile(body)
            assert _with_statistics(profile) == expected & set(profile)
            assert all(column["nulls"] == 0 for column in profile.values())  # counts stay
        if expected != set(ALL_COLUMNS):
            assert leaks(r.content, _needles()) == [], name


def test_sdk_get_version_hides_statistics_embedded_and_over_http(sec: SecurityHome) -> None:
    for platform in (sec.embedded("consumer-none"), sec.remote("consumer-none")):
        try:
            version = platform.mesh.get_version(PRODUCT)
        finally:
            platform.close()
        profile = version.port(PORT).profile
        assert profile and all(c.min is None and c.max is None for c in profile)
        assert all(not c.histogram for c in profile)


def test_revoked_grant_hides_statistics_again(sec: SecurityHome) -> None:
    name = "h3-meta-revoked"
    sec.new_user(name)
    admin = sec.admin()
    grant = admin.grant_access(PRODUCT, PORT, name, purpose="h3 metadata", columns=["email"])
    client = sec.client(name)
    assert "email" in _with_statistics(_profile(client.get(VERSION).json()))
    admin.revoke_grant(grant.id, "h3")
    assert _with_statistics(_profile(client.get(VERSION).json())) == set()


def test_row_filtered_grant_sees_no_statistics(sec: SecurityHome) -> None:
    """Statistics cover every row: a grant that filters rows sees none (even of the
    columns it names), else min/max would show rows the filter hides."""
    name = "h3-meta-filtered"
    sec.new_user(name)
    sec.admin().grant_access(
        PRODUCT,
        PORT,
        name,
        purpose="h3 metadata",
        columns=list(MASKED_COLUMNS),
        row_filter="region = 'region-north-zone'",
    )
    r = sec.client(name).get(VERSION)
    assert _with_statistics(_profile(r.json())) == set()
    south = {f"email {e}": e.encode() for i, e in enumerate(CLEAR.emails()) if i % 2 == 0}
    assert leaks(r.content, south) == []


def test_sql_rule_observations_are_hidden_from_partial_readers(tmp_path: Path) -> None:
    """A contract `sql` rule observes whatever its query returns (here the max income):
    only callers who read the port in clear see the observation."""
    from meshops.governance.service import GovernanceService
    from meshops.kernel.auth import Actor
    from meshops.kernel.home import Home
    from meshops.mesh.service import MeshService
    from tests.conftest import make_settings
    from tests.governance.conftest import (
        customers_contract,
        customers_descriptor,
        customers_table,
    )

    home = Home(make_settings(tmp_path / "home"))
    try:
        contract = customers_contract()
        rule = {"type": "sql", "query": "SELECT max(income) FROM customers", "mustBeLessThan": 1}
        contract["schema"][0]["quality"] = [{**rule, "severity": "warning"}]
        table = customers_table(5)  # incomes 0 .. 4000
        MeshService(home.context()).publish_arrow(
            customers_descriptor(), {"customers": contract}, {"customers": table}
        )
        admin = GovernanceService(home.context())
        admin.create_user("bob")
        admin.grant_access("crm.customers", "customers", "bob", purpose="h3")

        def observed(actor: Actor | None) -> list[object]:
            version = MeshService(home.context(actor)).get_version("crm.customers")
            port = version.port("customers")
            return [(q.observed, q.message) for q in port.quality if q.kind == "quality"]

        assert observed(None) == [(4000, "sql = 4000, expected mustBeLessThan 1")]
        assert observed(Actor("bob")) == [(None, "")]
        assert observed(Actor("nobody")) == [(None, "")]
    finally:
        home.close()
