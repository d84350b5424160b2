"""Every UI page, over what `meshops demo` builds, in headless Chromium at 1280x800: no page
is wider than the window (wide tables and graphs scroll inside their cards), every lineage
graph is readable (labels at full size, full text in a tooltip), every chart's points lie
in its plot, and each page is saved as a screenshot under screenshots/ (git-ignored; the
docs' images come from the same run: `python -m tests.ui.docs_screenshots`).

Needs MESHOPS_TEST_CHROMIUM (found by tests/conftest.py when `chromium` is installed)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshops.kernel.home import Home
from tests.conftest import CHROMIUM_ENV, LiveServer
from tests.ui.docs_screenshots import Shot, demo_server, launch, pages, sign_in

SHOTS = Path(__file__).resolve().parents[2] / "screenshots" / "layout"

WIDER_THAN_WINDOW = """() => {
  const page = document.documentElement.scrollWidth;
  const wide = [...document.querySelectorAll('main *')].filter(e => {
    const box = e.getBoundingClientRect();
    return box.right > window.innerWidth + 1 && !e.closest('.scroll-x, .graph-wrap, .card');
  }).slice(0, 5).map(e => e.tagName + '.' + e.className);
  return {page, window: window.innerWidth, wide};
}"""

POINTS_OUTSIDE_PLOTS = """() => [...document.querySelectorAll('svg.chart')].flatMap(svg => {
  const plot = svg.querySelector('rect.plot-area');
  if (!plot) return [];
  const x = +plot.getAttribute('x'), y = +plot.getAttribute('y');
  const w = +plot.getAttribute('width'), h = +plot.getAttribute('height');
  return [...svg.querySelectorAll('circle')].filter(c => {
    const cx = +c.getAttribute('cx'), cy = +c.getAttribute('cy');
    return cx < x - 0.5 || cx > x + w + 0.5 || cy < y - 0.5 || cy > y + h + 0.5;
  }).map(c => (svg.getAttribute('aria-label') || '?') + ' ' + c.textContent);
})"""

GRAPH_LABELS = """() => [...document.querySelectorAll('svg.graph .node')].map(n => ({
  label: n.dataset.label,
  title: n.querySelector('title').textContent,
  size: parseFloat(getComputedStyle(n.querySelector('.node-label')).fontSize),
  scale: n.closest('svg').getBoundingClientRect().width / n.closest('svg').viewBox.baseVal.width,
}))"""


@pytest.fixture(scope="module")
def demo_site() -> Iterator[tuple[Home, LiveServer]]:
    if not os.environ.get(CHROMIUM_ENV):
        pytest.skip(f"browser tests need {CHROMIUM_ENV} (e.g. /usr/bin/chromium)")
    with demo_server("small") as site:
        yield site


@pytest.fixture(scope="module")
def signed_in(demo_site: tuple[Home, LiveServer]) -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    SHOTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = launch(playwright)
        yield sign_in(browser, demo_site[1], SHOTS)
        browser.close()


def test_every_page_fits_the_window_and_is_captured(
    demo_site: tuple[Home, LiveServer], signed_in: Any
) -> None:
    page = signed_in
    shots: list[Shot] = pages(demo_site[0])
    problems = []
    for shot in shots:
        response = page.goto(shot.path)
        assert response is not None
        expected = 404 if shot.name == "ui-error" else 200
        assert response.status == expected, f"{shot.path}: {response.status}"
        width = page.evaluate(WIDER_THAN_WINDOW)
        if width["page"] > width["window"] or width["wide"]:
            problems.append(f"{shot.path}: {width}")
        outside = page.evaluate(POINTS_OUTSIDE_PLOTS)
        if outside:
            problems.append(f"{shot.path}: points outside their plot {outside[:3]}")
        page.screenshot(path=str(SHOTS / f"{shot.name}.png"))
    assert problems == []
    assert len(list(SHOTS.glob("ui-*.png"))) >= len(shots) + 1  # and the login page


def test_lineage_graphs_are_readable_and_keep_every_label(signed_in: Any) -> None:
    page = signed_in
    for path in ("/ui/models/churn", "/ui/endpoints/churn-api"):
        page.goto(path)
        nodes = page.evaluate(GRAPH_LABELS)
        assert len(nodes) >= 5, path
        for node in nodes:
            # drawn at its own size (a wide graph scrolls, it is never shrunk to fit)
            assert node["scale"] >= 0.99 and node["size"] * node["scale"] >= 12, (path, node)
            assert node["title"].startswith(node["label"])  # the tooltip has the full text
        focus = page.locator("svg.graph .node-box.focus")
        assert focus.count() == 1
        # the graph's card scrolls sideways; the page itself does not
        assert page.evaluate("document.documentElement.scrollWidth") <= 1280


def test_monitor_and_endpoint_charts_read_true(
    demo_site: tuple[Home, LiveServer], signed_in: Any
) -> None:
    page = signed_in
    monitor = next(s for s in pages(demo_site[0]) if s.name == "ui-monitor")
    page.goto(monitor.path)
    drift = page.locator("#drift-history")
    assert "threshold" in drift.inner_text()
    ticks = drift.locator("svg.chart text.tick:not(.y)").all_text_contents()
    assert ticks and all(t.strip().isdigit() for t in ticks), ticks  # whole run numbers
    page.goto("/ui/endpoints/churn-api")
    latency = page.locator("#latency").inner_text()
    assert "hours ago" not in latency and "time (UTC)" in latency
    clock = page.locator("#latency svg.chart text.tick:not(.y)").all_text_contents()
    assert len(clock) >= 2 and all(":" in t for t in clock), clock
    page.goto("/ui/pipelines")
    active = page.locator("#triggers td.active").first
    assert active.is_visible() and active.bounding_box()["x"] + 20 < 1280
    assert "trigger retrain-on-drift" in page.locator("#pipeline-runs").inner_text()
