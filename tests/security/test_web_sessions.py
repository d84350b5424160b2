"""Finding 11: the UI's web sessions, CSRF and browser-facing headers, against a real server.

A signed-in browser holds a server-side session id (never the API token): signing out, or
revoking the token, ends it, and a copied cookie stops working at once. Every
state-changing request needs the session's CSRF token and, when the browser says where it
comes from, this server's own origin. Every response carries the anti-framing, CSP,
no-sniff and referrer headers."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import httpx
import pytest
from fastapi.testclient import TestClient
from sqlalchemy import select, update

from meshops.api.app import create_app
from meshops.governance.authn import authenticate_token
from meshops.governance.service import GovernanceService
from meshops.governance.store import tokens as tokens_table
from meshops.governance.store import web_sessions
from meshops.kernel.home import Home
from tests.conftest import LiveServer, make_settings

COOKIE = "meshops_session"
HEADERS = {
    "x-frame-options": "DENY",
    "x-content-type-options": "nosniff",
    "referrer-policy": "same-origin",
}


@dataclass
class World:
    home: Home
    server: LiveServer

    @property
    def url(self) -> str:
        return self.server.url

    def token(self, user: str) -> str:
        gov = GovernanceService(self.home.context())
        if user != self.home.settings.user:
            gov.create_user(user)
        return gov.create_token(f"{user}-ui", principal=user).token

    def browser(self) -> httpx.Client:
        """A client that, like a browser, sends its own origin on POSTs."""
        return httpx.Client(base_url=self.url, headers={"origin": self.url}, timeout=30)

    def sign_in(self, token: str) -> httpx.Client:
        client = self.browser()
        r = client.post("/ui/login", data={"token": token, "next": "/ui"})
        assert r.status_code == 303 and r.headers["location"] == "/ui", r.text[:300]
        return client


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    home = Home(make_settings(tmp_path_factory.mktemp("web-sessions") / "home"))
    with LiveServer(home) as server:
        yield World(home, server)
    home.close()


def csrf_of(client: httpx.Client) -> str:
    found = re.search(r'name="csrf_token" value="([0-9a-f]{64})"', client.get("/ui").text)
    assert found, "a signed-in page carries the session's CSRF token"
    return found.group(1)


def signed_in(client: httpx.Client) -> bool:
    r = client.get("/ui")
    return r.status_code == 200 and "Sign out" in r.text


def with_cookie(world: World, value: str) -> httpx.Client:
    """Another machine presenting a copied cookie."""
    thief = world.browser()
    thief.cookies.set(COOKIE, value, path="/ui")
    return thief


def test_sign_out_ends_the_session_and_a_copied_cookie_dies_with_it(world: World) -> None:
    token = world.token("sofia")
    alice = world.sign_in(token)
    stolen = alice.cookies[COOKIE]
    assert stolen != token and token not in stolen  # the cookie is not the API token
    assert signed_in(with_cookie(world, stolen))  # a copy works while the session lives
    out = alice.post("/ui/logout", data={"csrf_token": csrf_of(alice)})
    assert out.status_code == 303 and out.headers["location"] == "/ui/login"
    assert COOKIE not in alice.cookies
    assert not signed_in(with_cookie(world, stolen))
    again = with_cookie(world, stolen).get("/ui/catalog")
    assert again.status_code == 303 and again.headers["location"].startswith("/ui/login")
    # ...and the API token itself is not a session either
    assert not signed_in(with_cookie(world, token))


def test_signing_in_again_replaces_the_session(world: World) -> None:
    client = world.sign_in(world.token("nina"))
    first = client.cookies[COOKIE]
    r = client.post("/ui/login", data={"token": world.token("nina2")})
    assert r.status_code == 303 and client.cookies[COOKIE] != first
    assert signed_in(client) and not signed_in(with_cookie(world, first))


def test_revoking_the_token_ends_its_sessions(world: World) -> None:
    token = world.token("rolf")
    client = world.sign_in(token)
    assert signed_in(client)
    admin = GovernanceService(world.home.context())
    token_id = next(t.id for t in admin.list_tokens("rolf") if t.name == "rolf-ui")
    rows = select(web_sessions).where(web_sessions.c.token_id == token_id)
    with world.home.db.read() as conn:
        assert len(conn.execute(rows).all()) == 1
    admin.revoke_token(token_id)
    with world.home.db.read() as conn:
        assert conn.execute(rows).all() == []  # deleted with the revocation
    r = client.get("/ui")
    assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")


def test_a_token_that_expires_ends_its_sessions(world: World) -> None:
    """Expiry deletes nothing: each request re-reads the token the session came from."""
    client = world.sign_in(world.token("otto"))
    assert signed_in(client)
    admin = GovernanceService(world.home.context())
    token_id = next(t.id for t in admin.list_tokens("otto") if t.name == "otto-ui")
    with world.home.db.begin() as conn:
        conn.execute(
            update(tokens_table)
            .where(tokens_table.c.id == token_id)
            .values(expires_at=datetime.now(UTC) - timedelta(seconds=1))
        )
    r = client.get("/ui")
    assert r.status_code == 303 and "expired" in r.headers["location"]


def test_a_session_never_outlives_its_token_or_its_expiry(world: World) -> None:
    gov = GovernanceService(world.home.context())
    gov.create_user("tina")
    short = gov.create_token("short", principal="tina", expires_in_days=1).token
    client = world.browser()
    r = client.post("/ui/login", data={"token": short})
    expires = re.search(r"expires=([^;]+)", r.headers["set-cookie"])
    assert expires and "GMT" in expires.group(1)
    with world.home.db.read() as conn:
        rows = conn.execute(select(web_sessions).where(web_sessions.c.principal == "tina")).all()
    (row,) = rows
    token_info = next(t for t in gov.list_tokens("tina") if t.name == "short")
    assert token_info.expires_at is not None and row.expires_at <= token_info.expires_at
    # Only a keyed hash of the id is stored: the cookie value is nowhere in the table.
    assert row.id_hash != client.cookies[COOKIE] and len(row.id_hash) == 64
    with world.home.db.begin() as conn:
        conn.execute(
            update(web_sessions)
            .where(web_sessions.c.id_hash == row.id_hash)
            .values(expires_at=row.created_at)
        )
    assert not signed_in(client)


def test_cookie_flags(world: World) -> None:
    client = world.browser()
    r = client.post("/ui/login", data={"token": world.token("ulla")})
    cookie = r.headers["set-cookie"]
    assert cookie.startswith(f"{COOKIE}=")
    assert "HttpOnly" in cookie and "Path=/ui" in cookie and "SameSite=strict" in cookie
    assert "Secure" not in cookie  # plain http on loopback: a Secure cookie would be lost
    # Over https the cookie is Secure (an in-process client with an https base URL).
    app = create_app(world.home, authenticate=authenticate_token)
    with TestClient(app, base_url="https://meshops.example") as tls:
        r = tls.post(
            "/ui/login",
            data={"token": world.token("ursula")},
            headers={"origin": "https://meshops.example"},
            follow_redirects=False,
        )
        assert r.status_code == 303 and "Secure" in r.headers["set-cookie"]
        assert r.headers["strict-transport-security"].startswith("max-age=")


def test_forms_without_the_sessions_csrf_token_are_refused(world: World) -> None:
    victim = world.sign_in(world.token("vera"))
    other = world.sign_in(world.token("walt"))
    for data in ({}, {"csrf_token": ""}, {"csrf_token": "0" * 64}, {"csrf_token": csrf_of(other)}):
        r = victim.post("/ui/logout", data=data)
        assert r.status_code == 403, data
        assert "CSRF token" in r.text and "Fix:" in r.text
        assert signed_in(victim)  # nothing happened
    r = victim.post("/ui/products/crm.customers/access", data={"port": "customers", "purpose": "x"})
    assert r.status_code == 403 and "CSRF" in r.text
    r = victim.post("/ui/alerts/1", data={"action": "ack"})
    assert r.status_code == 403 and "CSRF" in r.text
    # The header form works for scripts of the page itself.
    ok = victim.post("/ui/logout", headers={"x-csrf-token": csrf_of(victim)})
    assert ok.status_code == 303 and not signed_in(victim)


def test_cross_site_posts_are_refused_even_with_a_valid_token(world: World) -> None:
    victim = world.sign_in(world.token("xena"))
    csrf = csrf_of(victim)
    evil = {"origin": "https://evil.example"}
    r = victim.post("/ui/logout", data={"csrf_token": csrf}, headers=evil)
    assert r.status_code == 403 and "cross-site request refused" in r.text
    r = victim.post("/ui/logout", data={"csrf_token": csrf}, headers={"origin": "null"})
    assert r.status_code == 403
    # No Origin, but a Referer from elsewhere: refused too.
    referer_only = httpx.Client(base_url=world.url, cookies=victim.cookies, timeout=30)
    r = referer_only.post(
        "/ui/logout",
        data={"csrf_token": csrf},
        headers={"referer": "https://evil.example/page.html"},
    )
    assert r.status_code == 403 and "Referer" in r.text
    # Same scheme and host but another port is another origin.
    other_port = world.url.rsplit(":", 1)[0] + ":1"
    r = victim.post("/ui/logout", data={"csrf_token": csrf}, headers={"origin": other_port})
    assert r.status_code == 403
    assert signed_in(victim)
    # Login CSRF: another site cannot sign the browser in to an account of its choosing.
    fresh = httpx.Client(base_url=world.url, timeout=30)
    r = fresh.post("/ui/login", data={"token": world.token("yves")}, headers=evil)
    assert r.status_code == 403 and COOKIE not in fresh.cookies
    # Same-origin Referer (no Origin) is accepted.
    r = referer_only.post(
        "/ui/logout", data={"csrf_token": csrf}, headers={"referer": f"{world.url}/ui"}
    )
    assert r.status_code == 303


def test_security_headers_on_pages_api_errors_and_static(world: World) -> None:
    client = world.sign_in(world.token("zoe"))
    api = httpx.Client(base_url=world.url, headers=world.server.headers, timeout=30)
    responses = [
        client.get("/ui"),
        client.get("/ui/login"),
        client.get("/ui/static/style.css"),
        client.post("/ui/logout", data={}),  # a 403 page
        api.get("/v1/mesh/products"),
        httpx.get(f"{world.url}/v1/mesh/products"),  # 401 JSON
        httpx.get(f"{world.url}/healthz"),
        httpx.get(f"{world.url}/docs"),
        httpx.get(f"{world.url}/openapi.json"),
    ]
    for r in responses:
        for name, value in HEADERS.items():
            assert r.headers.get(name) == value, (r.url, name)
        assert "strict-transport-security" not in r.headers  # plain http: no HSTS
        csp = r.headers["content-security-policy"]
        assert "frame-ancestors 'none'" in csp and "default-src 'self'" in csp, r.url
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp.split("style-src")[0]


def test_pages_have_no_inline_script_the_csp_would_block(world: World) -> None:
    """The CSP forbids inline script: the pages must not need any."""
    client = world.sign_in(world.token("amir"))
    for path in ("/ui", "/ui/login", "/ui/catalog", "/ui/governance"):
        html = client.get(path).text
        scripts = re.findall(r"<script\b([^>]*)>", html)
        assert all("src=" in attrs for attrs in scripts), (path, scripts)
        assert not re.search(r"\son[a-z]+\s*=", html), path
        assert "javascript:" not in html, path


def test_a_session_of_an_ungoverned_server_is_worthless_to_a_governed_one(world: World) -> None:
    """Without governance any token acts as the local user; such a session (made from no
    stored token) must not be accepted once the home is served with tokens."""
    origin = {"origin": "http://testserver"}
    with TestClient(create_app(world.home)) as open_app:  # local_user: no tokens
        r = open_app.post("/ui/login", data={"token": "anything"}, headers=origin)
        assert r.status_code == 200 and "Sign out" in r.text  # followed the redirect
        cookie = open_app.cookies[COOKIE]
    with TestClient(create_app(world.home, authenticate=authenticate_token)) as governed:
        governed.cookies.set(COOKIE, cookie, path="/ui")
        r = governed.get("/ui", follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"].startswith("/ui/login")
        # ...nor does an unknown token start a session there.
        r = governed.post("/ui/login", data={"token": "msh_forged"}, headers=origin)
        assert r.status_code == 401 and COOKIE not in r.headers.get("set-cookie", "")
