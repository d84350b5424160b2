"""Authentication over real HTTP: 401 for missing, unknown, expired and revoked tokens and
disabled principals; 403 for actions the token's principal may not do."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import timedelta

import httpx
import pytest

from meshops.governance.store import tokens as token_table
from meshops.kernel.errors import Forbidden, Unauthenticated
from meshops.kernel.home import Home
from meshops.kernel.http import HttpTransport
from tests.conftest import LiveServer
from tests.governance.conftest import admin

PROTECTED = "/v1/governance/whoami"


@pytest.fixture
def server(sqlite_home: Home) -> Iterator[LiveServer]:
    with LiveServer(sqlite_home) as live:
        yield live


def test_public_paths_need_no_token(server: LiveServer) -> None:
    for path in ("/healthz", "/readyz", "/openapi.json", "/docs"):
        assert httpx.get(server.url + path).status_code == 200, path


MLFLOW_PREFIXES = ("/api/2.0/mlflow", "/ajax-api/2.0/mlflow")


def test_every_api_route_needs_a_token(server: LiveServer) -> None:
    """Every path of the OpenAPI document but the health checks answers 401 without one."""
    paths = httpx.get(server.url + "/openapi.json").json()["paths"]
    checked = 0
    with httpx.Client(base_url=server.url) as anonymous:
        for path, operations in paths.items():
            if path in ("/healthz", "/readyz"):
                continue
            concrete = re.sub(r"\{[^}]+\}", "x", path)  # any value for path parameters
            for method in operations:
                body = {} if method in ("post", "put", "patch") else None  # well-formed
                r = anonymous.request(method.upper(), concrete, json=body)
                assert r.status_code == 401, (method, path, r.status_code)
                if path.startswith(MLFLOW_PREFIXES):  # the MLflow client's error shape
                    assert r.json()["error_code"] == "UNAUTHENTICATED", path
                else:
                    assert r.json()["error"] == "unauthenticated"
                checked += 1
    assert checked > 40


def test_missing_and_unknown_tokens_get_401(server: LiveServer) -> None:
    r = httpx.get(server.url + PROTECTED)
    assert r.status_code == 401
    assert "meshops login" in r.json()["detail"]["fix"]
    r = httpx.get(server.url + PROTECTED, headers={"authorization": "Bearer msh_nope"})
    assert r.status_code == 401
    assert httpx.get(server.url + PROTECTED, headers=server.headers).json()["name"] == "alice"


def test_expired_token_gets_401(server: LiveServer, sqlite_home: Home) -> None:
    created = admin(sqlite_home).create_token("short", expires_in_days=1)
    headers = {"authorization": f"Bearer {created.token}"}
    assert httpx.get(server.url + PROTECTED, headers=headers).status_code == 200
    with sqlite_home.db.begin() as conn:  # let a day pass
        conn.execute(
            token_table.update()
            .where(token_table.c.id == created.info.id)
            .values(expires_at=created.info.created_at - timedelta(seconds=1))
        )
    from meshops.governance.identities import invalidate

    invalidate(sqlite_home)  # the server's token cache would otherwise keep it for 5 s
    r = httpx.get(server.url + PROTECTED, headers=headers)
    assert r.status_code == 401
    assert r.json()["detail"]["state"] == "expired"


def test_revoked_token_gets_401_at_once(server: LiveServer) -> None:
    with httpx.Client(base_url=server.url, headers=server.headers) as alice:
        made = alice.post("/v1/governance/tokens", json={"name": "ci"}).json()
        assert made["token"].startswith("msh_")
        other = {"authorization": f"Bearer {made['token']}"}
        assert httpx.get(server.url + PROTECTED, headers=other).status_code == 200
        revoked = alice.post(f"/v1/governance/tokens/{made['info']['id']}/revoke")
        assert revoked.status_code == 200
    r = httpx.get(server.url + PROTECTED, headers=other)
    assert r.status_code == 401
    assert r.json()["detail"]["state"] == "revoked"


def test_disabled_principal_gets_401(server: LiveServer, sqlite_home: Home) -> None:
    gov = admin(sqlite_home)
    gov.create_user("mallory")
    token = gov.create_token("m", principal="mallory").token
    headers = {"authorization": f"Bearer {token}"}
    assert httpx.get(server.url + PROTECTED, headers=headers).status_code == 200
    gov.set_disabled("mallory", True)
    assert httpx.get(server.url + PROTECTED, headers=headers).status_code == 401


def test_forbidden_action_gets_403_and_sdk_raises_forbidden(
    server: LiveServer, sqlite_home: Home
) -> None:
    gov = admin(sqlite_home)
    gov.create_user("bob")
    bob_token = gov.create_token("bob", principal="bob").token
    headers = {"authorization": f"Bearer {bob_token}"}
    r = httpx.post(server.url + "/v1/governance/users", json={"name": "eve"}, headers=headers)
    assert r.status_code == 403
    assert r.json()["error"] == "forbidden"
    assert "meshops roles bind bob" in r.json()["detail"]["fix"]
    transport = HttpTransport(server.url, bob_token)
    from meshops.governance.remote import remote_governance

    remote = remote_governance(transport)
    with pytest.raises(Forbidden):
        remote.create_user("eve")
    # After a binding, the same token may.
    gov.bind_role("bob", "platform_admin")
    assert remote.create_user("eve").name == "eve"
    transport.close()
    with pytest.raises(Unauthenticated):
        remote_governance(HttpTransport(server.url, None)).whoami()


def test_scoped_token_is_limited_to_its_scopes(server: LiveServer, sqlite_home: Home) -> None:
    token = admin(sqlite_home).create_token("ro", scopes=["identity.read"]).token
    headers = {"authorization": f"Bearer {token}"}
    assert httpx.get(server.url + "/v1/governance/users", headers=headers).status_code == 200
    r = httpx.post(server.url + "/v1/governance/users", json={"name": "x"}, headers=headers)
    assert r.status_code == 403
    assert "token" in r.json()["message"]
