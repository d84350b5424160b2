"""Screenshots of the main pages for the README (docs/img/ui-*.png), over the demo data.

    MESHOPS_TEST_CHROMIUM=/usr/bin/chromium .venv/bin/python -m tests.ui.docs_screenshots

Seeds the demo organisation into a temporary home, serves it like `meshops server`, signs in
with the owner's token in headless Chromium and captures each page (viewport-sized, so each
PNG stays well under 300 KB).
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path

from meshops.kernel.home import Home
from meshops.serving.runtime import close_all_runtimes
from tests.conftest import LiveServer, make_settings
from tests.ui.demo import seed
from tests.ui.test_browser import CHROMIUM_ENV, launch

OUT = Path(__file__).resolve().parents[2] / "docs" / "img"


def main() -> None:
    if not os.environ.get(CHROMIUM_ENV):
        raise SystemExit(f"set {CHROMIUM_ENV} (e.g. /usr/bin/chromium)")
    from playwright.sync_api import sync_playwright

    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(make_settings(Path(tmp) / "home"))
        demo = seed(home, Path(tmp))
        with LiveServer(home) as server, sync_playwright() as playwright:
            browser = launch(playwright)
            page = browser.new_page(viewport={"width": 1280, "height": 860})
            page.goto(f"{server.url}/ui/login")
            page.screenshot(path=str(OUT / "ui-login.png"))
            page.fill("#token", demo.owner_token)
            page.click("button[type=submit]")
            page.wait_for_url("**/ui")
            endpoint = page.goto(f"{server.url}/ui/endpoints/churn-api")
            assert endpoint is not None
            monitor = re.search(r'href="/ui/monitors/([0-9a-f]+)"', page.content())
            pipeline_page = page.goto(f"{server.url}/ui/pipelines")
            assert pipeline_page is not None
            run = re.search(r'href="/ui/pipelines/runs/([^"]+)"', page.content())
            assert monitor and run
            shots = {
                "ui-home": "/ui",
                "ui-catalog": "/ui/catalog?q=customer",
                "ui-product": "/ui/products/customers.profiles",
                "ui-experiment": "/ui/experiments/churn?sort=metrics.%60loss%60+ASC",
                "ui-compare": "/ui/runs/compare?" + "&".join(f"run={r}" for r in demo.runs[::2]),
                "ui-model": "/ui/models/churn",
                "ui-endpoint": "/ui/endpoints/churn-api",
                "ui-monitor": f"/ui/monitors/{monitor.group(1)}",
                "ui-pipeline": f"/ui/pipelines/runs/{run.group(1)}?step=score_model",
                "ui-governance": "/ui/governance",
            }
            for name, path in shots.items():
                page.goto(f"{server.url}{path}")
                page.screenshot(path=str(OUT / f"{name}.png"))
                size = (OUT / f"{name}.png").stat().st_size
                print(f"{name}.png {size / 1024:.0f} KB")
            browser.close()
        close_all_runtimes()
        home.close()


if __name__ == "__main__":
    main()
