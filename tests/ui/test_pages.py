"""Every page over HTTP (in-process client) against the seeded demo: login, what each user
sees and may do, safe Markdown, errors as pages, and the POST actions."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime

import pytest
from fastapi.testclient import TestClient

from meshops.api.app import create_app
from meshops.governance.authn import authenticate_token
from meshops.governance.service import GovernanceService
from meshops.kernel.auth import Actor
from meshops.kernel.home import Context, Home
from meshops.registry.service import RegistryService
from meshops.tracking.service import TrackingService
from meshops.ui.activity import describe
from tests.ui.demo import Demo


@pytest.fixture(scope="module")
def app_home(demo_home: tuple[Home, Demo]) -> tuple[Home, Demo, object]:
    home, demo = demo_home
    return home, demo, create_app(home, authenticate=authenticate_token)


def _csrf(client: TestClient) -> str:
    """The session's CSRF token, as every form of a signed-in page carries it."""
    found = re.search(r'name="csrf_token" value="([0-9a-f]+)"', client.get("/ui").text)
    assert found
    return found.group(1)


def _client(app: object, token: str | None) -> TestClient:
    client = TestClient(app)  # type: ignore[arg-type]
    if token:
        r = client.post("/ui/login", data={"token": token, "next": "/ui"}, follow_redirects=False)
        assert r.status_code == 303 and r.headers["location"] == "/ui"
    return client


@pytest.fixture
def owner(app_home: tuple[Home, Demo, object]) -> Iterator[TestClient]:
    _, demo, app = app_home
    with _client(app, demo.owner_token) as c:
        yield c


@pytest.fixture
def consumer(app_home: tuple[Home, Demo, object]) -> Iterator[TestClient]:
    _, demo, app = app_home
    with _client(app, demo.consumer_token) as c:
        yield c


def test_pages_need_a_token_and_the_cookie_is_http_only(
    app_home: tuple[Home, Demo, object],
) -> None:
    _, demo, app = app_home
    client = TestClient(app)  # type: ignore[arg-type]
    r = client.get("/", follow_redirects=False)
    assert r.status_code == 307 and r.headers["location"] == "/ui"
    r = client.get("/ui/catalog?q=x", follow_redirects=False)
    assert (
        r.status_code == 303 and r.headers["location"] == "/ui/login?next=%2Fui%2Fcatalog%3Fq%3Dx"
    )
    bad = client.post("/ui/login", data={"token": "nope"}, follow_redirects=False)
    assert bad.status_code == 401 and "unknown API token" in bad.text
    good = client.post(
        "/ui/login",
        data={"token": demo.owner_token, "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert good.headers["location"] == "/ui"  # no open redirect
    cookie = good.headers["set-cookie"]
    assert "HttpOnly" in cookie and "Path=/ui" in cookie and "samesite=strict" in cookie.lower()
    assert client.get("/ui/static/style.css").status_code == 200
    out = client.post("/ui/logout", data={"csrf_token": _csrf(client)}, follow_redirects=False)
    assert out.status_code == 303
    assert client.get("/ui", follow_redirects=False).status_code == 303


def test_owner_sees_every_page(owner: TestClient, app_home: tuple[Home, Demo, object]) -> None:
    _, demo, _ = app_home
    home = owner.get("/ui").text
    for text in ("sales", "customers", "marketing", "Recent activity", "dataset-drift"):
        assert text in home
    assert 'href="/ui/governance"' in home and 'href="/ui/experiments"' in home
    catalog = owner.get("/ui/catalog?q=revenue").text
    assert "sales.customer_revenue" in catalog and "customers.profiles" not in catalog
    facets = owner.get("/ui/catalog?classification=confidential").text
    assert "customers.profiles" in facets and "marketing.campaigns" not in facets
    product = owner.get("/ui/products/customers.profiles").text
    assert re.search(r'data-column="email">.*?badge confidential', product, re.S)
    assert "meshops:dataproduct:sales.customer_revenue:1.0.0" in product  # downstream node
    assert "Consumers and usage" in product and "alice" in product
    assert "Request access" not in product  # owners do not ask for their own data
    versions = owner.get("/ui/products/marketing.campaigns").text
    assert "1.1.0" in versions and "channel" in versions
    for page in (
        "/ui/experiments",
        "/ui/experiments/churn",
        f"/ui/runs/{demo.runs[0]}",
        "/ui/models",
        "/ui/endpoints",
        "/ui/endpoints/churn-api",
        "/ui/pipelines",
        "/ui/governance",
    ):
        r = owner.get(page)
        assert r.status_code == 200, page
        assert "<svg" in r.text or page in (
            "/ui/experiments",
            "/ui/models",
            "/ui/endpoints",
            "/ui/pipelines",
            "/ui/governance",
            "/ui/experiments/churn",
        ), page


def test_model_card_markdown_is_rendered_safely(owner: TestClient) -> None:
    page = owner.get("/ui/models/churn").text
    card = page[page.index('class="markdown"') :]
    card = card[: card.index("</article>")]
    assert "<h1>Churn classifier</h1>" in card and "<table>" in card
    assert "<script>" not in card and "&lt;script&gt;" in card
    assert "javascript:" not in card.replace("[unsafe link](javascript:alert(1))", "")
    assert "@champion → v2" in page and "better accuracy offline" in page
    assert "meshops:endpoint:churn-api" in page  # lineage reaches the deployment


def test_runs_table_sorts_filters_and_compares(
    owner: TestClient, app_home: tuple[Home, Demo, object]
) -> None:
    _, demo, _ = app_home

    def order(query: str) -> list[str]:
        return re.findall(
            r'<tr data-run="([^"]+)"', owner.get(f"/ui/experiments/churn?{query}").text
        )

    by_loss = order("sort=metrics.%60loss%60+ASC")
    assert by_loss == list(reversed(order("sort=metrics.%60loss%60+DESC"))) and len(by_loss) == 3
    assert order("filter=params.C+%3D+%2710.0%27") == [demo.runs[2]]
    bad = owner.get("/ui/experiments/churn?filter=metrics.loss+%3C%3C+1").text
    assert 'class="flash error"' in bad
    compare = owner.get(f"/ui/runs/compare?run={demo.runs[0]}&run={demo.runs[2]}").text
    assert compare.count('<polyline class="series"') == 4  # 2 metrics x 2 runs
    assert 'data-param="C" class="differs"' in compare and 'class="num best"' in compare
    one = owner.get(f"/ui/runs/compare?run={demo.runs[0]}")
    assert one.status_code == 422 and "at least two runs" in one.text


def test_monitor_and_pipeline_pages(owner: TestClient) -> None:
    endpoint = owner.get("/ui/endpoints/churn-api").text
    assert "60 predictions in 24 h" in endpoint and "churn v2" in endpoint
    monitor_id = re.search(r'href="/ui/monitors/([0-9a-f]+)"', endpoint)
    assert monitor_id
    monitor = owner.get(f"/ui/monitors/{monitor_id.group(1)}").text
    assert "Drift per feature over the monitor" in monitor and "Reference vs current" in monitor
    # each test's own statistic against its threshold, over whole-numbered monitor runs
    assert re.search(
        r"(statistic|p-value) per feature \(drift (above|below) the threshold\)", monitor
    )
    assert "drift score" not in monitor and "monitor run #" in monitor
    assert monitor.count('data-feature="') == 4 and "Acknowledge" in monitor
    runs = owner.get("/ui/pipelines").text
    run_id = re.search(r'href="/ui/pipelines/runs/([^"]+)"', runs)
    assert run_id and "churn_training" in runs
    trigger = re.search(r'<tr data-trigger="retrain-on-drift">.*?</tr>', runs)
    assert trigger and '<td class="num active">0 / 2</td>' in trigger.group(0)
    detail = owner.get(f"/ui/pipelines/runs/{run_id.group(1)}?step=score_model").text
    assert detail.count('class="node"') == 4 and "accuracy 0." in detail


def test_consumer_sees_only_what_it_may(consumer: TestClient) -> None:
    home = consumer.get("/ui").text
    assert 'href="/ui/experiments"' not in home and 'href="/ui/models"' not in home
    assert "audit log is visible" in home
    product = consumer.get("/ui/products/marketing.campaigns").text
    assert "Request access" in product and "Pending approvals" not in product
    assert "Usage is visible to the product" in product
    forbidden = consumer.get("/ui/models/churn")
    assert forbidden.status_code == 403 and "may not registry.read" in forbidden.text
    assert consumer.get("/ui/governance").status_code == 200


def test_access_request_and_decision_go_through_governance(
    app_home: tuple[Home, Demo, object],
) -> None:
    home, _, app = app_home
    admin = GovernanceService(home.context())
    admin.create_user("carol")
    carol_token = admin.create_token("c", principal="carol").token
    with _client(app, carol_token) as carol:
        csrf = _csrf(carol)
        r = carol.post(
            "/ui/products/sales.orders/access",
            data={"port": "orders", "purpose": "forecasting", "csrf_token": csrf},
            follow_redirects=False,
        )
        assert r.status_code == 303
        assert "pending" in carol.get("/ui/products/sales.orders").text
        request_id = GovernanceService(home.context()).list_requests(product="sales.orders")[0].id
        # carol cannot decide her own request: the service refuses, the page says so
        refused = carol.post(
            f"/ui/access/{request_id}", data={"decision": "approve", "csrf_token": csrf}
        )
        assert refused.status_code == 403
    owner = GovernanceService(home.context(Actor("alice")))
    assert owner.list_requests(product="sales.orders")[0].status == "pending"


def test_home_tells_recent_activity_in_words(
    app_home: tuple[Home, Demo, object], owner: TestClient
) -> None:
    home = owner.get("/ui").text
    activity = home[home.index('id="activity"') : home.index("The full audit log")]
    rows = re.findall(r"<tr data-action=[^>]*>(.*?)</tr>", activity, re.S)
    assert rows
    for row in rows:  # "<b>who</b> what", the URN only in the tooltip
        assert re.search(r"<b>[\w.-]+</b> (<a href=\"/ui/[^\"]*\" |<span )title=\"", row), row
        assert not re.search(r">[^<]*meshops:[^<]*<", row), row
    # the sentences for the seeded history, over the real audit log and services
    seeded, _, _ = app_home
    ctx = seeded.context()
    events = GovernanceService(ctx).audit_events(limit=500)
    lines = [line.text for line in describe(events, _RealNames(ctx), limit=500)]
    assert "promoted churn v2 to @champion" in lines
    assert "promoted churn v2 to @challenger" in lines
    assert any(
        re.fullmatch(r"finished run 'logreg-C10\.0' \([0-9a-f]{8}\) in churn", t) for t in lines
    )
    assert "published marketing.campaigns 1.1.0" in lines


class _RealNames:
    def __init__(self, ctx: Context) -> None:
        self.tracking, self.registry = TrackingService(ctx), RegistryService(ctx)

    def run(self, run_id: str) -> tuple[str, str] | None:
        run = self.tracking.get_run(run_id)
        return run.name, self.tracking.get_experiment(run.experiment_id).name

    def alias(self, model: str, version: int, at: datetime) -> str | None:
        moves = [m for m in self.registry.alias_history(model) if m.to_version == version]
        return min(moves, key=lambda m: abs((m.at - at).total_seconds())).alias if moves else None


def test_governance_states_each_finding_once_with_where_it_is(owner: TestClient) -> None:
    page = owner.get("/ui/governance").text
    rows = re.findall(r'<tr data-domain="([^"]+)">(.*?)</tr>', page, re.S)
    assert rows and rows[0][0] == "all domains"
    findings = 0
    for _, row in rows:
        found = re.findall(
            r'<div class="finding">.*?<code>([^<]+)</code>(.*?)</ul></div>', row, re.S
        )
        policies = [policy for policy, _ in found]
        assert len(policies) == len(set(policies))  # one line per policy, not one per port
        for _, places in found:
            assert re.search(r'<a href="/ui/products/[^"]+">[^<]+</a> \d+\.\d+\.\d+', places)
        findings += len(found)
    assert findings  # the seeded products declare no freshness: there is something to say
