"""`feature.use` on online lookups, embedded and over HTTP: a consumer the policies refuse
gets Forbidden (403), one they allow gets the values, and a policy change (or a revoked
token) takes effect on the next lookup, with the decision cached in between."""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, replace
from pathlib import Path

import httpx
import pytest

from meshops.client import Platform
from meshops.governance.models import Policy
from meshops.governance.service import GovernanceService
from meshops.governance.store import policy_evaluations
from meshops.kernel.auth import Actor
from meshops.kernel.changes import POLL_SECONDS
from meshops.kernel.errors import Forbidden, PolicyViolation
from meshops.kernel.home import Home
from meshops.kernel.http import HttpTransport
from tests.conftest import LiveServer, make_settings, postgres_schema
from tests.features.helpers import publish
from tests.features.test_end_to_end import T0, hours, orders_v1, repo

NOT_MALLORY = Policy(
    id="no-mallory-features",
    target="feature.use",
    expression='consumer == null || consumer.name != "mallory"',
    rationale="mallory may not use customer features",
    owner="alice",
)


@dataclass
class Served:
    """A home with customer_stats applied and materialized; `as_user` opens the platform
    as another principal over the transport under test."""

    home: Home
    server: LiveServer | None

    def as_user(self, name: str) -> Platform:
        admin = GovernanceService(self.home.context())
        if name not in {p.name for p in admin.list_users()}:
            admin.create_user(name)
            admin.bind_role(name, "data_scientist")
            # Online lookups go through the read guard like offline reads (issue #14).
            admin.grant_access("sales.customer_stats", "main", name, purpose="tests")
        settings = self.home.settings
        if self.server is None:
            return Platform(settings, home=self.home, actor=Actor(name))
        token = admin.create_token(f"{name}-t", principal=name).token
        remote = replace(settings, uri=self.server.url, token=token)
        return Platform(remote, http=HttpTransport(self.server.url, token))

    def evaluations(self) -> int:
        with self.home.db.read() as conn:
            return len(conn.execute(policy_evaluations.select()).all())


@contextmanager
def open_served(home_dir: Path, *, http: bool, postgres: bool = False) -> Iterator[Served]:
    with ExitStack() as stack:
        url = stack.enter_context(postgres_schema()) if postgres else None
        yield stack.enter_context(_served(Home(make_settings(home_dir, url)), http=http))


@contextmanager
def _served(home: Home, *, http: bool) -> Iterator[Served]:
    owner = Platform(home.settings, home=home)
    publish(owner, "sales.customer_stats", "1.0.0", orders_v1())
    owner.features.apply(repo())
    owner.features.materialize(end=hours(12))
    try:
        if http:
            with LiveServer(home) as server:
                yield Served(home, server)
        else:
            yield Served(home, None)
    finally:
        home.close()


@pytest.fixture(params=["embedded", "http", "embedded-postgres"])
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Served]:
    http, postgres = request.param == "http", request.param == "embedded-postgres"
    with open_served(tmp_path / "home", http=http, postgres=postgres) as found:
        yield found


def settle(served: Served) -> None:
    """SQLite signals every commit at once; on PostgreSQL caches re-check every poll."""
    if not served.home.db.is_sqlite:
        time.sleep(POLL_SECONDS)


@pytest.fixture
def http_served(tmp_path: Path) -> Iterator[tuple[Served, LiveServer]]:
    with open_served(tmp_path / "home", http=True) as found:
        assert found.server is not None
        yield found, found.server


def lookup(platform: Platform) -> dict[str, object]:
    response = platform.features.online(
        [{"customer_id": 1}], ["customer_stats:orders_7d"], now=hours(12)
    )
    return response.rows[0].values


def test_denied_consumer_is_forbidden_and_allowed_one_gets_values(served: Served) -> None:
    GovernanceService(served.home.context()).save_policy(NOT_MALLORY)
    bob, mallory = served.as_user("bob"), served.as_user("mallory")
    assert lookup(bob) == {"orders_7d": 3}
    with pytest.raises(Forbidden) as refused:  # a PolicyViolation, which is a Forbidden
        lookup(mallory)
    assert "no-mallory-features" in refused.value.message
    # Decided once per consumer and feature set, then served from the cache.
    recorded = served.evaluations()
    for _ in range(5):
        assert lookup(bob) == {"orders_7d": 3}
        with pytest.raises(Forbidden):
            lookup(mallory)
    assert served.evaluations() == recorded
    bob.close()
    mallory.close()


def test_a_policy_change_takes_effect_on_the_next_lookup(served: Served) -> None:
    admin = GovernanceService(served.home.context())
    mallory = served.as_user("mallory")
    assert lookup(mallory) == {"orders_7d": 3}  # no policy yet: allowed (and cached)
    admin.save_policy(NOT_MALLORY)
    settle(served)
    with pytest.raises(PolicyViolation):
        lookup(mallory)
    admin.save_policy(NOT_MALLORY.model_copy(update={"severity": "warn"}))
    settle(served)
    assert lookup(mallory) == {"orders_7d": 3}
    admin.save_policy(NOT_MALLORY)
    settle(served)
    with pytest.raises(PolicyViolation):
        lookup(mallory)
    admin.delete_policy(NOT_MALLORY.id)
    settle(served)
    assert lookup(mallory) == {"orders_7d": 3}
    mallory.close()


def test_http_lookup_of_a_denied_consumer_is_403(
    http_served: tuple[Served, LiveServer],
) -> None:
    served, server = http_served
    admin = GovernanceService(served.home.context())
    admin.save_policy(NOT_MALLORY)
    admin.create_user("mallory")
    token = admin.create_token("m", principal="mallory").token
    body = {"entity_rows": [{"customer_id": 1}], "features": ["customer_stats:orders_7d"],
            "now": T0.isoformat()}  # fmt: skip
    admin.bind_role("mallory", "data_scientist")
    r = httpx.post(
        server.url + "/v1/features/online",
        json=body,
        headers={"authorization": f"Bearer {token}"},
    )
    assert r.status_code == 403
    assert r.json()["error"] == "policy_violation"


def test_revoked_token_is_refused_on_the_next_lookup(
    http_served: tuple[Served, LiveServer],
) -> None:
    served, server = http_served
    admin = GovernanceService(served.home.context())
    admin.create_user("bob")
    admin.bind_role("bob", "data_scientist")
    admin.grant_access("sales.customer_stats", "main", "bob", purpose="tests")
    created = admin.create_token("b", principal="bob")
    headers = {"authorization": f"Bearer {created.token}"}
    body = {"entity_rows": [{"customer_id": 1}], "features": ["customer_stats:orders_7d"]}
    url = server.url + "/v1/features/online"
    with httpx.Client(headers=headers) as client:
        for _ in range(3):  # verified once, then answered from the token cache
            assert client.post(url, json=body).status_code == 200
        # Revoked through another Home on the same database, as the CLI or another server
        # worker would: the server's in-process cache invalidation does not see it.
        elsewhere = Home(served.home.settings)
        GovernanceService(elsewhere.context()).revoke_token(created.info.id)
        elsewhere.close()
        r = client.post(url, json=body)
    assert r.status_code == 401
    assert r.json()["detail"]["state"] == "revoked"


def test_http_lookup_errors_keep_their_status_and_body(
    http_served: tuple[Served, LiveServer],
) -> None:
    """The lookup's hot path (api.routers.features.OnlineLookups) answers like the route:
    401 without a token, 422 with the field for a body that does not validate, 422 from the
    service for a missing join key, and the same values as the SDK."""
    _, server = http_served
    url = server.url + "/v1/features/online"
    body = {"entity_rows": [{"customer_id": 1}], "features": ["customer_stats:orders_7d"],
            "now": hours(12).isoformat()}  # fmt: skip
    anonymous = httpx.post(url, json=body)
    assert anonymous.status_code == 401
    assert anonymous.json()["error"] == "unauthenticated"
    with httpx.Client(headers=server.headers) as client:
        bad = client.post(url, json={"entity_rows": "nope", "features": []})
        assert bad.status_code == 422
        assert bad.json()["detail"]["errors"][0]["field"].startswith("body.entity_rows")
        missing_key = client.post(url, json={**body, "entity_rows": [{"other": 1}]})
        assert missing_key.status_code == 422
        assert missing_key.json()["detail"]["field"] == "entity_rows"
        ok = client.post(url, json=body)
    assert ok.status_code == 200
    assert ok.headers["content-type"] == "application/json"
    assert ok.json()["rows"][0]["values"] == {"orders_7d": 3}


def test_http_lookup_by_feature_service_as_documented(
    http_served: tuple[Served, LiveServer],
) -> None:
    """`POST /v1/features/online` takes `"features": [...]` or `"service"` (docs/features.md),
    on the fast path and the derived route alike; both or neither is a 422 naming the field."""
    _, server = http_served
    url = server.url + "/v1/features/online"
    rows = [{"customer_id": 1, "amount": 60.0}, {"customer_id": 7, "amount": 1.0}]
    at = hours(12).isoformat()
    refs = ["customer_stats:*", "amount_ratio"]
    with httpx.Client(headers=server.headers) as client:
        by_service = client.post(url, json={"entity_rows": rows, "service": "churn", "now": at})
        by_features = client.post(url, json={"entity_rows": rows, "features": refs, "now": at})
        both = client.post(
            url, json={"entity_rows": rows, "features": refs, "service": "churn", "now": at}
        )
        neither = client.post(url, json={"entity_rows": rows, "now": at})
        unknown = client.post(url, json={"entity_rows": rows, "service": "nope", "now": at})
    assert by_service.status_code == 200, by_service.text
    assert by_service.json() == by_features.json()
    first, second = by_service.json()["rows"]
    assert first["status"] == "ok" and second["status"] == "missing"
    assert first["values"] == {
        "orders_7d": 3, "avg_amount": 30.0, "segment": "b", "amount_ratio": 2.0,
    }  # fmt: skip
    assert both.status_code == 422 and both.json()["detail"]["field"] == "service"
    assert neither.status_code == 422 and neither.json()["detail"]["field"] == "features"
    assert unknown.status_code == 404 and "churn" in unknown.json()["detail"]["known"]
