"""The product page shows how the shown version was built (the build report stored with
it): engine, duration, each port's blocks and the block failures that were retried.
Rendered server-side in its own small home (the Ray build itself: tests/mesh/test_ray_builds.py)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest
from fastapi.testclient import TestClient

from meshops.api.app import create_app
from meshops.client import Platform
from meshops.governance.authn import authenticate_token
from meshops.kernel.home import Home
from meshops.mesh.models import BlockRetry, BuildSummary, PortBlocks
from tests.conftest import make_settings
from tests.mesh.conftest import contract, descriptor

COLUMNS = [{"name": "event_id", "logicalType": "integer", "required": True}]
RAY_BUILD = BuildSummary(
    engine="ray",
    seconds=12.34,
    ray_address="ray://head.example:10001",
    blocks=[PortBlocks(port="events", blocks=6, total_blocks=6, rows=9000, total_rows=9000)],
    retries=[
        BlockRetry(
            port="events",
            block="3f2a1c0d (1,500 rows)",
            attempt=1,
            error="RuntimeError: the marker block",
        )
    ],
    retried_blocks=1,
)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[TestClient, str]]:
    """The app over a home with shop.events 1.0.0 (no build) and 1.1.0 (built on Ray), a
    client signed in to the UI, and the owner's API token."""
    root: Path = tmp_path_factory.mktemp("ui-build")
    home = Home(make_settings(root / "home"))
    platform = Platform(home.settings, home=home)
    try:
        token = platform.governance.create_token("ui-owner").token
        table = pa.table({"event_id": list(range(9000))})
        for version, build in (("1.0.0", None), ("1.1.0", RAY_BUILD)):
            platform.mesh.publish_arrow(
                descriptor(version, name="events"),
                {"events": contract(COLUMNS, name="events")},
                {"events": table.slice(0, 4500 if build is None else 9000)},
                build=build,
            )
        client = TestClient(create_app(home, authenticate=authenticate_token))
        r = client.post("/ui/login", data={"token": token, "next": "/ui"}, follow_redirects=False)
        assert r.status_code == 303
        with client:
            yield client, token
    finally:
        platform.close()
        home.close()


@pytest.fixture
def owner(served: tuple[TestClient, str]) -> TestClient:
    return served[0]


def _section(page: str, anchor: str) -> str:
    start = page.index(f'id="{anchor}"')
    return page[start : page.index("</section>", start)]


def test_the_product_page_shows_the_ray_build_and_its_retried_block(owner: TestClient) -> None:
    page = owner.get("/ui/products/shop.events")
    assert page.status_code == 200
    build = " ".join(_section(page.text, "build").split())
    assert "of 1.1.0" in build
    assert "ray" in build and "ray://head.example:10001" in build
    assert "12.3 s" in build
    assert "6/6 blocks" in build and "9,000/9,000 rows" in build
    assert "1 retried" in build
    assert "3f2a1c0d (1,500 rows)" in build and "RuntimeError: the marker block" in build


def test_a_version_published_from_tables_has_no_build_section(owner: TestClient) -> None:
    page = owner.get("/ui/products/shop.events?version=1.0.0")
    assert page.status_code == 200
    assert 'id="build"' not in page.text
    assert 'id="lineage"' in page.text  # the rest of the page is there


def test_a_build_report_out_of_bounds_is_refused_naming_the_field(
    served: tuple[TestClient, str],
) -> None:
    client, token = served
    meta = {
        "descriptor": descriptor("2.0.0", name="events"),
        "contracts": {"events": contract(COLUMNS, name="events")},
        "build": {**RAY_BUILD.model_dump(mode="json"), "seconds": 1e300},
    }
    r = client.post(
        "/v1/mesh/publish",
        headers={"Authorization": f"Bearer {token}"},
        files={"meta": ("meta.json", json.dumps(meta), "application/json")},
    )
    assert r.status_code == 422, r.text
    assert r.json()["detail"]["field"] == "meta.build"
