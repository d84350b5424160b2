"""The UI in headless Chromium (Debian's `chromium`, via Playwright) against a real server
over the seeded demo organisation. Each flow asserts on what is on the page and saves a
screenshot under `screenshots/` (git-ignored).

Needs MESHOPS_TEST_CHROMIUM=/usr/bin/chromium (`.ci/run` installs and exports it)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshops.kernel.home import Home
from tests.conftest import LiveServer
from tests.ui.demo import Demo

CHROMIUM_ENV = "MESHOPS_TEST_CHROMIUM"
SHOTS = Path(__file__).resolve().parents[2] / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]


def launch(playwright: Any) -> Any:
    return playwright.chromium.launch(
        executable_path=os.environ[CHROMIUM_ENV], args=CHROMIUM_ARGS, headless=True
    )


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.environ.get(CHROMIUM_ENV):
        pytest.skip(f"browser tests need {CHROMIUM_ENV} (e.g. /usr/bin/chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = launch(playwright)
        yield chromium
        chromium.close()


@pytest.fixture(scope="module")
def server(demo_home: tuple[Home, Demo]) -> Iterator[LiveServer]:
    home, _ = demo_home
    with LiveServer(home) as live:
        yield live


@pytest.fixture
def demo(demo_home: tuple[Home, Demo]) -> Demo:
    return demo_home[1]


def new_page(browser: Any, server: LiveServer, token: str) -> Any:
    context = browser.new_context(viewport={"width": 1360, "height": 900}, base_url=server.url)
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto("/ui")
    assert "/ui/login" in page.url  # no cookie yet: the login form
    page.fill("#token", token)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui")
    return page


def shot(page: Any, name: str) -> None:
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def test_search_product_lineage_model_endpoint(
    browser: Any, server: LiveServer, demo: Demo
) -> None:
    page = new_page(browser, server, demo.owner_token)
    assert page.locator(".user").inner_text() == "alice"
    page.fill("input[name=q]", "profiles")
    page.press("input[name=q]", "Enter")
    page.wait_for_url("**/ui/catalog?q=profiles")
    hits = page.locator(".hit-name")
    assert "customers.profiles" in hits.all_inner_texts()
    shot(page, "flow1-1-search")

    page.click("a.hit-name:has-text('customers.profiles')")
    page.wait_for_url("**/ui/products/customers.profiles")
    email = page.locator("tr[data-column=email]")
    assert "confidential" in email.inner_text()
    lineage = page.locator("#lineage svg")
    assert lineage.locator("[data-urn='meshops:dataproduct:customers.profiles:1.0.0']").count()
    assert lineage.locator("a.node[data-urn='meshops:dataproduct:sales.customer_revenue:1.0.0']")
    shot(page, "flow1-2-product")

    page.locator("#lineage a.node[data-urn='meshops:model:churn:2']").click()
    page.wait_for_url("**/ui/models/churn?version=2")
    assert page.locator("h1").first.inner_text().startswith("churn")
    assert "@champion → v2" in page.locator(".page-head").inner_text()
    card = page.locator("article.markdown")
    assert card.locator("h1").inner_text() == "Churn classifier"
    assert card.locator("script").count() == 0 and "<script>" in card.inner_text()
    assert "better accuracy offline" in page.locator("#alias-history").inner_text()
    # the champion/challenger comparison that let v2 replace v1: both scores and the run
    comparison = page.locator("#comparisons tr.comparison").first
    assert "not worse" in comparison.inner_text() and "v1" in comparison.inner_text()
    assert comparison.locator("a[href^='/ui/runs/']").count() == 1
    shot(page, "flow1-3-model")

    page.locator("#lineage a.node[data-urn='meshops:endpoint:churn-api']").click()
    page.wait_for_url("**/ui/endpoints/churn-api")
    assert page.locator("h1").inner_text() == "churn-api"
    assert "60 predictions in 24 h" in page.locator("#traffic").inner_text()
    # bars in time buckets that fit the traffic; together they hold every prediction
    bars = page.locator("#traffic svg rect.bar title").all_text_contents()
    assert bars and sum(float(t.rsplit(":", 1)[1]) for t in bars) == 60, bars
    assert "dataset-drift" in page.locator("body").inner_text()
    shot(page, "flow1-4-endpoint")
    page.context.close()


def test_request_access_as_consumer_and_approve_as_owner(
    browser: Any, server: LiveServer, demo: Demo
) -> None:
    bob = new_page(browser, server, demo.consumer_token)
    assert bob.locator("nav a:has-text('Models')").count() == 0  # a consumer sees no registry
    bob.goto("/ui/products/customers.profiles")
    assert bob.locator("#approvals").count() == 0
    bob.click("summary:has-text('Request access')")
    bob.check("input[name=columns][value=email]")
    bob.fill("input[name=purpose]", "churn campaign targeting")
    bob.click("button:has-text('Send request')")
    bob.wait_for_url("**/ui/products/customers.profiles?msg=*")
    assert "sent to the owners" in bob.locator(".flash.ok").inner_text()
    assert "pending" in bob.locator(".request-status").inner_text()
    assert bob.locator("summary:has-text('Request access')").count() == 0  # one pending is enough
    shot(bob, "flow2-1-consumer-requested")

    alice = new_page(browser, server, demo.owner_token)
    alice.goto("/ui/products/customers.profiles")
    row = alice.locator("#approvals tr", has_text="bob")
    assert "churn campaign targeting" in row.inner_text() and "email" in row.inner_text()
    shot(alice, "flow2-2-owner-approvals")
    row.locator("button:has-text('Approve')").click()
    alice.wait_for_url("**/ui/products/customers.profiles?msg=*")
    assert "Request from bob approved" in alice.locator(".flash.ok").inner_text()
    assert alice.locator("#approvals").count() == 0
    shot(alice, "flow2-3-owner-approved")

    bob.goto("/ui/products/customers.profiles")
    assert "You have access to port profiles" in bob.locator("#access").inner_text()
    assert "approved" in bob.locator(".request-status").inner_text()
    shot(bob, "flow2-4-consumer-granted")
    alice.context.close()
    bob.context.close()


def test_compare_two_runs(browser: Any, server: LiveServer, demo: Demo) -> None:
    page = new_page(browser, server, demo.owner_token)
    page.click("nav a:has-text('Experiments')")
    page.click("a:has-text('churn')")
    page.wait_for_url("**/ui/experiments/churn")
    assert page.locator("#runs tbody tr").count() == 3
    page.click("#runs thead a:has-text('loss')")  # sort by loss, best first after a 2nd click
    page.wait_for_url("**sort=metrics*DESC")
    page.click("#runs thead a:has-text('loss')")
    page.wait_for_url("**sort=metrics*ASC")
    names = page.locator("#runs tbody tr td:nth-child(2)").all_inner_texts()
    assert names == ["logreg-C10.0", "logreg-C1.0", "logreg-C0.1"]
    page.fill("input[name=filter]", "params.C != '1.0'")
    page.click("button:has-text('Filter')")
    page.wait_for_url("**/ui/experiments/churn?filter=*")
    assert page.locator("#runs tbody tr").count() == 2
    shot(page, "flow3-1-runs")

    page.locator("#runs tbody input[type=checkbox]").nth(0).check()
    page.locator("#runs tbody input[type=checkbox]").nth(1).check()
    page.click("#compare")
    page.wait_for_url("**/ui/runs/compare?*")
    table = page.locator("#comparison")
    headers = table.locator("thead th").all_text_contents()
    assert any("logreg-C10.0" in h for h in headers), headers
    assert any("logreg-C0.1" in h for h in headers), headers
    assert table.locator("tr[data-param=C]").get_attribute("class") == "differs"
    assert table.locator("tr[data-metric=loss] td.best").count() == 1
    assert page.locator("svg.chart polyline.series").count() == 4
    shot(page, "flow3-2-compare")
    page.context.close()


def test_api_docs_render_offline_under_the_csp(browser: Any, server: LiveServer) -> None:
    """/docs is Swagger UI from installed files (no CDN), started by a script file: it
    renders under the CSP that forbids inline and foreign scripts, with no console error."""
    context = browser.new_context(base_url=server.url)
    page = context.new_page()
    problems: list[str] = []
    page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
    page.on("request", lambda r: None if r.url.startswith(server.url) else problems.append(r.url))
    page.goto("/docs")
    page.wait_for_selector(".opblock-tag", timeout=15_000)
    assert page.locator(".opblock-tag").count() >= 10
    assert problems == []
    shot(page, "api-docs")
    context.close()
