"""Finding 7: online feature lookups go through the read guard like offline reads.

`POST /v1/features/online` (and the SDK's `features.online`, embedded or over HTTP) used to
return the clear values of classified columns to anyone with `features.read`. Now: no grant
or a revoked one is refused (403), a masked grant gets the values masked exactly as an
offline read masks them, a revocation ends the next lookup, and every lookup is one usage
event (interface `features`).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from meshops.kernel.errors import Forbidden
from tests.security.conftest import (
    CLEAR,
    FEATURES,
    MASKED_COLUMNS,
    PORT,
    PRODUCT,
    SecurityHome,
    leaks,
)

ONLINE = "/v1/features/online"
IDS = list(range(1, CLEAR.rows + 1))


def _body(ids: list[int] = IDS) -> dict[str, Any]:
    return {"entity_rows": [{"customer_id": i} for i in ids], "features": FEATURES}


@pytest.mark.parametrize("name", ["ds-none", "mle-none", "ds-revoked", "mle-revoked"])
def test_no_grant_or_revoked_grant_is_refused_over_http(sec: SecurityHome, name: str) -> None:
    before = sec.reads(name)
    r = sec.client(name).post(ONLINE, json=_body())
    assert r.status_code == 403, r.text[:300]
    assert r.json()["error"] == "forbidden"
    assert leaks(r.content, {**CLEAR.masked_needles(), **CLEAR.allowed_needles()}) == []
    assert sec.reads(name) == before  # a refused lookup read nothing


def test_no_grant_is_refused_through_both_sdks(sec: SecurityHome) -> None:
    for platform in (sec.embedded("ds-none"), sec.remote("ds-none")):
        try:
            with pytest.raises(Forbidden):
                platform.features.online([{"customer_id": 1}], FEATURES)
        finally:
            platform.close()


def _offline_masked(sec: SecurityHome, name: str) -> dict[int, dict[str, Any]]:
    """What an offline read of the same principal gives, by customer id."""
    platform = sec.embedded(name)
    try:
        table = platform.mesh.read(
            PRODUCT, port=PORT, columns=["customer_id", "region", *MASKED_COLUMNS]
        )
    finally:
        platform.close()
    return {row.pop("customer_id"): row for row in table.to_pylist()}


def test_masked_grant_gets_the_offline_masked_values_over_http(sec: SecurityHome) -> None:
    offline = _offline_masked(sec, "ds-masked")
    r = sec.client("ds-masked").post(ONLINE, json=_body())
    assert r.status_code == 200, r.text[:300]
    assert leaks(r.content, CLEAR.masked_needles()) == []
    rows = r.json()["rows"]
    for customer_id, row in zip(IDS, rows, strict=True):
        assert row["values"] == offline[customer_id]
    # hash, redact and null all applied; the unclassified column is clear
    first = rows[0]["values"]
    assert len(first["email"]) == 64 and first["note"] == "****" and first["income"] is None
    assert first["region"] in CLEAR.regions()


def test_masked_grant_embedded_equals_http(sec: SecurityHome) -> None:
    platform = sec.embedded("mle-masked")
    try:
        embedded = platform.features.online([{"customer_id": i} for i in IDS], FEATURES)
    finally:
        platform.close()
    offline = _offline_masked(sec, "mle-masked")
    assert [r.values for r in embedded.rows] == [offline[i] for i in IDS]


def test_unmasked_grant_and_owner_read_clear_values(sec: SecurityHome) -> None:
    for name in ("consumer-unmasked", "crm-owner"):
        platform = sec.embedded(name)
        try:
            if name == "consumer-unmasked":
                # A consumer has no features.read: the grant alone does not open the store.
                with pytest.raises(Forbidden):
                    platform.features.online([{"customer_id": 1}], FEATURES)
                continue
            values = platform.features.online([{"customer_id": 1}], FEATURES).rows[0].values
        finally:
            platform.close()
        assert values["email"] == CLEAR.emails()[0]
        assert values["income"] == CLEAR.incomes()[0]


def test_revocation_ends_the_next_lookup_over_http(sec: SecurityHome) -> None:
    name = "h3-online-revoked"
    sec.new_user(name, "data_scientist")
    grant = sec.admin().grant_access(PRODUCT, PORT, name, purpose="h3: revoked next")
    client = sec.client(name)
    for _ in range(3):  # planned once, then answered from the cached decision
        assert client.post(ONLINE, json=_body([1])).status_code == 200
    # Revoked over HTTP by the product's owner, as it would be in production.
    owner = sec.client("crm-owner")
    revoked = owner.post(f"/v1/governance/access/grants/{grant.id}/revoke", json={})
    assert revoked.status_code == 200, revoked.text[:300]
    refused = client.post(ONLINE, json=_body([1]))
    assert refused.status_code == 403, refused.text[:300]
    assert leaks(refused.content, CLEAR.masked_needles()) == []


def test_a_new_mask_rule_applies_on_the_next_lookup(sec: SecurityHome) -> None:
    """The cached plan holds for one change epoch: a mask rule change is seen at once."""
    from meshops.governance.models import MaskRule

    name = "h3-online-rule"
    sec.new_user(name, "data_scientist")
    sec.admin().grant_access(PRODUCT, PORT, name, purpose="h3: mask rule")
    client = sec.client(name)
    assert client.post(ONLINE, json=_body([1])).json()["rows"][0]["values"]["note"] == "****"
    admin = sec.admin()
    admin.set_mask_rule(MaskRule(scope="crm", classification="confidential", method="null"))
    try:
        values = client.post(ONLINE, json=_body([1])).json()["rows"][0]["values"]
        assert values["note"] is None
    finally:
        admin.set_mask_rule(MaskRule(scope="crm", classification="confidential", method="redact"))


def test_every_lookup_is_counted_in_usage(sec: SecurityHome) -> None:
    name = "ds-masked"
    before = sec.reads(name)
    client = sec.client(name)
    for _ in range(7):
        assert client.post(ONLINE, json=_body([1, 2])).status_code == 200
    platform = sec.embedded(name)
    try:
        platform.features.online([{"customer_id": 3}], FEATURES)
    finally:
        platform.close()
    assert sec.reads(name) == before + 8
    # Identical lookups within a second are one event counting them (`reads`).
    events = [
        e
        for e in sec.admin().usage_events(PRODUCT, limit=50)
        if e.actor == name and e.interface == "features"
    ]
    assert sum(e.reads for e in events) >= 8
    assert all(set(e.masked) == set(MASKED_COLUMNS) for e in events)
    assert sum(e.rows for e in events) >= 7 * 2 + 1  # rows served, summed per batch


def test_a_token_without_features_read_cannot_look_up(sec: SecurityHome) -> None:
    """A scoped token (dataproduct.read_data only) of a granted user is refused too."""
    admin = sec.admin()
    token = admin.create_token(
        "h3-scoped", principal="ds-masked", scopes=["dataproduct.read_data"]
    ).token
    r = httpx.post(sec.url + ONLINE, json=_body([1]), headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 403


def test_row_filtered_grant_is_refused_online(sec: SecurityHome) -> None:
    """Online values are per entity: a grant's row filter cannot apply, so the lookup is
    refused rather than answered with rows the filter hides."""
    r = sec.client("ds-filtered").post(ONLINE, json=_body())
    assert r.status_code == 403, r.text[:300]
    assert "row_filter" in r.json()["message"]
    assert leaks(r.content, CLEAR.masked_needles()) == []


def test_usage_writes_keep_the_plan_and_a_revocation_still_ends_it(
    sec: SecurityHome, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Online lookups write usage events every second, which moves the change epoch; the
    cached plans hold while nothing audited changed (planning again each second cost tens of
    milliseconds of p99), and are made again once a grant is revoked."""
    from meshops.features.service import FeatureStoreService
    from meshops.governance.usage import buffer_of

    name = "online-plan-cache"
    sec.new_user(name, "data_scientist")
    grant = sec.admin().grant_access(PRODUCT, PORT, name, purpose="plan cache")
    planned: list[int] = []
    original = FeatureStoreService._plan_online

    def counting(self: FeatureStoreService, *args: Any, **kwargs: Any) -> Any:
        planned.append(1)
        return original(self, *args, **kwargs)

    monkeypatch.setattr(FeatureStoreService, "_plan_online", counting)
    platform = sec.embedded(name)
    try:
        platform.features.online([{"customer_id": 1}], FEATURES)
        assert len(planned) == 1
        for _ in range(3):
            assert buffer_of(sec.home).flush() > 0  # a usage event written: the epoch moves
            platform.features.online([{"customer_id": 1}], FEATURES)
        assert len(planned) == 1
        sec.admin().revoke_grant(grant.id, "plan cache test")
        with pytest.raises(Forbidden):
            platform.features.online([{"customer_id": 1}], FEATURES)
        assert len(planned) == 2
    finally:
        platform.close()
