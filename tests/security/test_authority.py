"""Findings 6 and 9: authority comes from the server's state, never from the request.

- A grant or access request names a product the server knows (404 otherwise); who owns it
  is the mesh's answer, not the `owners` a caller sends (finding 6: a consumer granted
  itself a product before it was published, then read its PII).
- Documents a caller sends to the public `evaluate`/`enforce` are answered, not recorded,
  unless the caller may write the policies of that scope.
- A token creates tokens no wider (scopes) and no longer-lived (expiry) than itself, and
  only admins mint tokens for others (finding 9).
"""

from __future__ import annotations

from datetime import datetime

import httpx
import pytest

from tests.security.conftest import PORT, PRODUCT, SecurityHome

GRANTS = "/v1/governance/access/grants"
REQUESTS = "/v1/governance/access/requests"
TOKENS = "/v1/governance/tokens"


def _bearer(token: str) -> dict[str, str]:
    return {"authorization": f"Bearer {token}"}


# --- finding 6: grants and requests -------------------------------------------------------------


@pytest.mark.parametrize("name", ["consumer-none", "sales-owner", "alice"])
def test_grant_for_an_unknown_product_is_refused(sec: SecurityHome, name: str) -> None:
    body = {
        "product": "crm.not_published_yet",
        "port": "customers",
        "grantee": "consumer-none",
        "owners": ["consumer-none", name],  # ignored: owners are the server's
    }
    r = sec.client(name).post(GRANTS, json=body)
    assert r.status_code == 404, r.text[:300]
    grants = sec.admin().list_grants(product="crm.not_published_yet", active_only=False)
    assert grants == []


def test_request_for_an_unknown_product_is_refused(sec: SecurityHome) -> None:
    body = {
        "product": "crm.not_published_yet",
        "port": "customers",
        "purpose": "pre-publication",
        "owners": ["consumer-none"],
        "classification": {"email": "public"},
    }
    r = sec.client("consumer-none").post(REQUESTS, json=body)
    assert r.status_code == 404, r.text[:300]


def test_caller_supplied_owners_are_ignored_on_a_grant(sec: SecurityHome) -> None:
    body = {
        "product": PRODUCT,
        "port": PORT,
        "grantee": "consumer-none",
        "columns": ["email"],
        "owners": ["consumer-none"],
    }
    r = sec.client("consumer-none").post(GRANTS, json=body)
    assert r.status_code == 403, r.text[:300]
    # The other domain's owner is no owner of crm either.
    r = sec.client("sales-owner").post(GRANTS, json={**body, "owners": ["sales-owner"]})
    assert r.status_code == 403, r.text[:300]
    active = sec.admin().list_grants(product=PRODUCT, grantee="consumer-none")
    assert active == []


def test_a_request_records_the_servers_owners_and_its_requester_cannot_decide(
    sec: SecurityHome,
) -> None:
    name = "h3-requester"
    sec.new_user(name)
    client = sec.client(name)
    body = {
        "product": PRODUCT,
        "port": PORT,
        "purpose": "h3 authority",
        "columns": ["email", "note", "income"],
        "owners": [name],
        "classification": {"email": "public", "note": "public", "income": "public"},
    }
    made = client.post(REQUESTS, json=body)
    assert made.status_code == 201, made.text[:300]
    request = made.json()
    assert request["owners"] == ["crm-owner"]
    decided = client.post(f"{REQUESTS}/{request['id']}/decision", json={"approve": True})
    assert decided.status_code == 403, decided.text[:300]
    assert sec.admin().list_grants(product=PRODUCT, grantee=name) == []
    # The real owner may decide it.
    owner = sec.client("crm-owner")
    approved = owner.post(f"{REQUESTS}/{request['id']}/decision", json={"approve": False})
    assert approved.status_code == 200, approved.text[:300]


def test_only_owners_revoke_grants(sec: SecurityHome) -> None:
    name = "h3-revoke-target"
    sec.new_user(name)
    grant = sec.admin().grant_access(PRODUCT, PORT, name, purpose="h3")
    for outsider in ("consumer-none", "sales-owner", name):
        r = sec.client(outsider).post(f"{GRANTS}/{grant.id}/revoke", json={})
        assert r.status_code == 403, (outsider, r.text[:300])
    r = sec.client("crm-owner").post(f"{GRANTS}/{grant.id}/revoke", json={})
    assert r.status_code == 200 and r.json()["revoked_by"] == "crm-owner"


def test_public_evaluate_does_not_plant_evaluations(sec: SecurityHome) -> None:
    """A consumer's document is answered, not recorded: it cannot make an object it does
    not govern look compliant (compliance reports and dry runs read the records)."""
    import copy

    from meshops.governance.documents import SAMPLES

    document = copy.deepcopy(SAMPLES["dataproduct.publish"][0])
    document.pop("version_bump")
    subject = "meshops:dataproduct:crm.customers:9.9.9"
    body = {
        "target": "dataproduct.publish",
        "document": document,
        "domain": "crm",
        "subject_urn": subject,
    }
    before = sec.admin().evaluations(subject_urn=subject)
    r = sec.client("consumer-none").post("/v1/governance/evaluate", json=body)
    assert r.status_code == 200, r.text[:300]
    assert sec.admin().evaluations(subject_urn=subject) == before
    # The domain's owner may record (its own domain's policies).
    r = sec.client("crm-owner").post("/v1/governance/evaluate", json=body)
    assert r.status_code == 200
    assert len(sec.admin().evaluations(subject_urn=subject)) == len(before) + len(
        r.json()["results"]
    )


# --- finding 9: tokens ------------------------------------------------------------------------


def _token(sec: SecurityHome, principal: str, scopes: list[str] | None, days: int | None) -> str:
    return (
        sec.admin().create_token(f"h3-{principal}-{scopes}-{days}", principal, scopes, days).token
    )


def test_scoped_expiring_token_cannot_mint_a_wider_token(sec: SecurityHome) -> None:
    name = "h3-minter"
    sec.new_user(name)
    parent = _token(sec, name, ["token.manage_own"], 1)
    parent_expiry = next(
        t.expires_at for t in sec.admin().list_tokens(name) if t.name.startswith("h3-h3-minter")
    )
    assert parent_expiry is not None
    with httpx.Client(base_url=sec.url, headers=_bearer(parent)) as client:
        # Asked for nothing: the child inherits the parent's scopes and expiry.
        child = client.post(TOKENS, json={"name": "child"})
        assert child.status_code == 201, child.text[:300]
        info = child.json()["info"]
        assert info["scopes"] == ["token.manage_own"]
        assert datetime.fromisoformat(info["expires_at"]) <= parent_expiry
        for body in (
            {"name": "wide", "scopes": ["*"]},
            {"name": "other", "scopes": ["dataproduct.read_data"]},
            {"name": "long", "expires_in_days": 30},
            {"name": "for-admin", "principal": "alice"},
        ):
            r = client.post(TOKENS, json=body)
            assert r.status_code == 403, (body, r.text[:300])
    # The child really is as narrow as its parent.
    with httpx.Client(base_url=sec.url, headers=_bearer(child.json()["token"])) as client:
        assert client.get("/v1/mesh/products").status_code == 403
        assert client.get(TOKENS).status_code == 200


def test_users_mint_tokens_only_for_themselves(sec: SecurityHome) -> None:
    name = "h3-plain"
    token = sec.new_user(name)
    r = httpx.post(
        sec.url + TOKENS, json={"name": "x", "principal": "alice"}, headers=_bearer(token)
    )
    assert r.status_code == 403, r.text[:300]
    own = httpx.post(sec.url + TOKENS, json={"name": "mine"}, headers=_bearer(token))
    assert own.status_code == 201 and own.json()["info"]["principal"] == name


def test_scoped_admin_token_cannot_mint_an_unscoped_token_for_others(sec: SecurityHome) -> None:
    admin_token = _token(sec, "alice", ["identity.write", "identity.read"], None)
    headers = _bearer(admin_token)
    r = httpx.post(
        sec.url + TOKENS,
        json={"name": "escalate", "principal": "crm-owner", "scopes": None},
        headers=headers,
    )
    # Asked for nothing: limited to the parent's scopes, not the principal's full roles.
    assert r.status_code == 201, r.text[:300]
    assert r.json()["info"]["scopes"] == ["identity.read", "identity.write"]
    wide = httpx.post(
        sec.url + TOKENS,
        json={"name": "escalate2", "principal": "crm-owner", "scopes": ["dataproduct.*"]},
        headers=headers,
    )
    assert wide.status_code == 403, wide.text[:300]
