"""`meshops apply` of the server's checkout (POST /v1/project/apply, the git webhook) builds
products inside the API server, from specs that anyone with push rights wrote. Such a build
runs no user Python, opens no database connection and reads files only inside the checkout,
unless the admin trusts the repository's authors ([project] trusted_builds)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from meshops.kernel.home import Home
from tests.conftest import LiveServer, make_settings
from tests.support.git import commit_all, new_project

ORDERS = Path("domains/sales/products/orders")


@pytest.fixture
def checkout(tmp_path: Path) -> Path:
    return new_project(tmp_path / "checkout")


def _serve(tmp_path: Path, checkout: Path, **project: Any) -> Iterator[httpx.Client]:
    settings = make_settings(tmp_path / "home")
    extra = {**settings.extra, "webhooks": {"checkout": str(checkout)}, "project": project}
    home = Home(replace(settings, extra=extra))
    try:
        with (
            LiveServer(home) as server,
            httpx.Client(base_url=server.url, headers=server.headers, timeout=120) as http,
        ):
            yield http
    finally:
        home.close()


def _apply(tmp_path: Path, checkout: Path, **project: Any) -> httpx.Response:
    commit_all(checkout, "change the build")
    for http in _serve(tmp_path, checkout, **project):
        return http.post("/v1/project/apply")
    raise AssertionError("no server")


def _python_transform(checkout: Path, marker: Path) -> None:
    (checkout / ORDERS / "transform.py").write_text(
        "from pathlib import Path\n\n"
        "def transform(inputs):\n"
        f"    Path({str(marker)!r}).write_text('ran')\n"
        "    return inputs['raw_orders']\n"
    )
    build = (checkout / ORDERS / "build.yaml").read_text()
    build = build.replace("  sql_file: transform.sql", "  python: transform.py:transform")
    (checkout / ORDERS / "build.yaml").write_text(build)


def test_a_python_transform_is_not_run_by_the_api_server(tmp_path: Path, checkout: Path) -> None:
    marker = tmp_path / "ran"
    _python_transform(checkout, marker)
    response = _apply(tmp_path, checkout)
    assert response.status_code in (400, 403, 422), response.text
    assert "not run by the API server" in response.text
    assert "trusted_builds" in response.text
    assert not marker.exists()


def test_an_admin_can_trust_the_repository(tmp_path: Path, checkout: Path) -> None:
    marker = tmp_path / "ran"
    _python_transform(checkout, marker)
    response = _apply(tmp_path, checkout, trusted_builds=True)
    assert response.status_code == 200, response.text
    assert marker.read_text() == "ran"


@pytest.mark.parametrize("target", ["/etc/passwd", "symlink-to-home"])
def test_file_inputs_stay_inside_the_checkout(tmp_path: Path, checkout: Path, target: str) -> None:
    build = checkout / ORDERS / "build.yaml"
    if target == "symlink-to-home":
        (tmp_path / "home").mkdir(exist_ok=True)
        (tmp_path / "home" / "secret.csv").write_text("a,b\n1,2\n")
        (checkout / ORDERS / "data" / "link.csv").symlink_to(tmp_path / "home" / "secret.csv")
        path = "data/link.csv"
    else:
        path = target
    build.write_text(build.read_text().replace("path: data/orders.csv", f"path: {path}"))
    response = _apply(tmp_path, checkout)
    assert response.status_code == 403, response.text
    assert "outside the project checkout" in response.text
    assert "root:" not in response.text  # nothing of the file came back


def test_database_inputs_are_not_opened_by_the_api_server(tmp_path: Path, checkout: Path) -> None:
    build = checkout / ORDERS / "build.yaml"
    database = f"sqlite:///{tmp_path / 'home' / 'meshops.db'}"
    build.write_text(
        build.read_text().replace(
            "    path: data/orders.csv\n    format: csv",
            f"    url: {database}\n    query: select * from gov_tokens",
        )
    )
    response = _apply(tmp_path, checkout)
    assert response.status_code == 403, response.text
    assert "database input" in response.text


def test_reader_option_names_cannot_carry_sql(tmp_path: Path, checkout: Path) -> None:
    build = checkout / ORDERS / "build.yaml"
    injected = (
        "    format: csv\n    options: {\"header = true) ; COPY (SELECT 1) TO 'x.csv' --\": 1}"
    )
    build.write_text(build.read_text().replace("    format: csv", injected))
    response = _apply(tmp_path, checkout, trusted_builds=True)
    assert response.status_code in (400, 422), response.text
    assert "must be identifiers" in response.text
    assert not (checkout / "x.csv").exists() and not Path("x.csv").exists()
