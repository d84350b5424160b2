"""Screenshots of every UI page over what `meshops demo` builds: the README's and docs'
images (docs/img/ui-*.png) and the layout test's (screenshots/, git-ignored).

    .venv/bin/python -m tests.ui.docs_screenshots            # full demo -> docs/img/
    .venv/bin/python -m tests.ui.docs_screenshots --scale small --out screenshots/

Runs `meshops demo` (a subprocess, as a user would: its environment settings stay there)
on a temporary home, serves that home like `meshops demo --serve` does (the same app, API
and UI, on a loopback port), signs in with a token of the demo's admin in headless
Chromium at 1280x800 and captures each page's viewport (each PNG well under 300 KB).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from meshops.kernel.config import load_settings
from meshops.kernel.home import Home
from meshops.monitoring.service import MonitoringService
from meshops.pipelines.service import PipelinesService
from meshops.serving.runtime import close_all_runtimes
from meshops.tracking.service import TrackingService
from tests.conftest import CHROMIUM_ENV, LiveServer

DOCS_IMG = Path(__file__).resolve().parents[2] / "docs" / "img"
VIEWPORT = {"width": 1280, "height": 800}
DEMO_ADMIN = "admin"  # `meshops demo` runs its steps as this platform admin
CLI = "import sys; from meshops.cli.main import main; sys.argv[0] = 'meshops'; main()"
# The images the README and docs reference (docs/img/<name>.png), among all the pages.
DOCS_NAMES = (
    "ui-login",
    "ui-home",
    "ui-catalog",
    "ui-product",
    "ui-experiment",
    "ui-compare",
    "ui-model",
    "ui-endpoint",
    "ui-monitor",
    "ui-pipeline",
    "ui-governance",
)


def run_demo(home: Path, scale: str = "small", timeout: float = 300) -> None:
    """`meshops demo --home HOME --scale SCALE` in a subprocess; raises with its output."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MESHOPS_")}
    env["COLUMNS"] = "120"
    done = subprocess.run(
        [sys.executable, "-c", CLI, "demo", "--home", str(home), "--scale", scale],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"meshops demo failed ({done.returncode}):\n{done.stdout[-3000:]}")


def open_demo_home(home: Path) -> Home:
    return Home(load_settings(home=home, env={"MESHOPS_USER": DEMO_ADMIN}))


@dataclass(frozen=True)
class Shot:
    name: str  # the PNG's name
    path: str  # the page, under the server's URL


def pages(home: Home) -> list[Shot]:
    """Every kind of UI page of the demo home, each once, with the ids the demo made."""
    ctx = home.context()
    tracking = TrackingService(ctx)
    experiment = tracking.get_experiment("churn")
    runs = tracking.search_runs([experiment.id], max_results=10).runs
    monitor = MonitoringService(ctx).list_monitors()[0]
    pipeline_runs = PipelinesService(ctx).list_runs(limit=10)
    triggered = next((r for r in pipeline_runs if r.origin.get("kind") == "trigger"), None)
    pipeline_run = triggered or pipeline_runs[0]
    return [
        Shot("ui-home", "/ui"),
        Shot("ui-catalog", "/ui/catalog?q=customer"),
        Shot("ui-product", "/ui/products/sales.customer_activity"),
        Shot("ui-product-profiles", "/ui/products/customers.profiles"),
        Shot("ui-experiments", "/ui/experiments"),
        Shot("ui-experiment", "/ui/experiments/churn"),
        Shot("ui-run", f"/ui/runs/{runs[0].id}"),
        Shot("ui-compare", "/ui/runs/compare?" + "&".join(f"run={r.id}" for r in runs[:3])),
        Shot("ui-models", "/ui/models"),
        Shot("ui-model", "/ui/models/churn"),
        Shot("ui-endpoints", "/ui/endpoints"),
        Shot("ui-endpoint", "/ui/endpoints/churn-api"),
        Shot("ui-monitor", f"/ui/monitors/{monitor.id}"),
        Shot("ui-pipelines", "/ui/pipelines"),
        Shot("ui-pipeline", f"/ui/pipelines/runs/{pipeline_run.id}"),
        Shot("ui-governance", "/ui/governance"),
        Shot("ui-error", "/ui/products/no.such-product"),
    ]


def launch(playwright: Any) -> Any:
    from tests.ui.test_browser import launch as launch_chromium

    return launch_chromium(playwright)


def sign_in(browser: Any, server: LiveServer, out: Path | None) -> Any:
    """A page at 1280x800 signed in with the server's admin token (the login page is
    captured on the way when `out` is given)."""
    context = browser.new_context(viewport=VIEWPORT, base_url=server.url)
    page = context.new_page()
    page.set_default_timeout(20_000)
    page.goto("/ui/login")
    if out is not None:
        page.screenshot(path=str(out / "ui-login.png"))
    page.fill("#token", server.token)
    page.click("button[type=submit]")
    page.wait_for_url("**/ui")
    return page


@contextmanager
def demo_server(scale: str) -> Iterator[tuple[Home, LiveServer]]:
    """A fresh demo home and a server over it, both gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="meshops-demo-") as tmp:
        run_demo(Path(tmp) / "home", scale)
        home = open_demo_home(Path(tmp) / "home")
        try:
            with LiveServer(home) as server:
                yield home, server
        finally:
            close_all_runtimes()
            home.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", default="full", choices=("small", "full"))
    parser.add_argument("--out", type=Path, default=DOCS_IMG)
    parser.add_argument("--all", action="store_true", help="every page, not only the docs'")
    args = parser.parse_args()
    if not os.environ.get(CHROMIUM_ENV):
        raise SystemExit(f"set {CHROMIUM_ENV} (e.g. /usr/bin/chromium)")
    from playwright.sync_api import sync_playwright

    args.out.mkdir(parents=True, exist_ok=True)
    with demo_server(args.scale) as (home, server), sync_playwright() as playwright:
        browser = launch(playwright)
        page = sign_in(browser, server, args.out)
        for shot in pages(home):
            if args.all or shot.name in DOCS_NAMES:
                page.goto(shot.path)
                target = args.out / f"{shot.name}.png"
                page.screenshot(path=str(target))
                print(f"{target} {target.stat().st_size / 1024:.0f} KB")
        browser.close()


if __name__ == "__main__":
    main()
