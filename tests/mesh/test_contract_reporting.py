"""custom and text quality rules are reported `not evaluated` wherever contract results are
shown: `meshops product build` and `product show`, the UI product page, `meshops check`'s
JUnit XML. Never dropped, never failing a publish."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path
from typing import Any

import pytest
import yaml
from fastapi.testclient import TestClient

from meshops.api.app import create_app
from meshops.kernel.home import Home
from tests.conftest import make_settings
from tests.project.helpers import GIT_ENV, commit_all
from tests.support.cli import run_cli

EXTRA_RULES = [
    {
        "type": "custom",
        "engine": "soda",
        "description": "Soda: less than 1% duplicate carriers",
        "implementation": "type: duplicate_percent\ncolumns: [carrier]\n",
    },
    {"id": "amount_in_euros", "type": "text", "description": "Amounts are in euros."},
]


def test_not_evaluated_rules_in_the_cli_and_the_ui(
    retail: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from meshops.cli.main import app

    path = retail / "sales_orders" / "orders.odcs.yaml"
    document = yaml.safe_load(path.read_text())
    document["schema"][0]["quality"] = [*document["schema"][0].get("quality", []), *EXTRA_RULES]
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    home_dir = tmp_path / "home"
    env = {"MESHOPS_HOME": str(home_dir), "MESHOPS_USER": "alice", "COLUMNS": "250"}
    monkeypatch.chdir(retail)
    runner = CliRunner()

    def run(*args: str) -> Any:
        return runner.invoke(app, list(args), env=env, catch_exceptions=False)

    assert run("domain", "create", "sales").exit_code == 0
    built = run("product", "build", "sales_orders")
    assert built.exit_code == 0, built.output
    assert built.stdout.count("not evaluated") >= 2 and "engine soda" in built.stdout
    as_json = json.loads(run("product", "build", "sales_orders", "--json").stdout)
    statuses = {r["rule"]: r["status"] for r in as_json["ports"][0]["report"]["results"]}
    assert statuses["quality.orders.*.custom.2"] == "not evaluated"
    assert statuses["quality.orders.*.amount_in_euros.3"] == "not evaluated"
    assert run("product", "publish", "sales_orders").exit_code == 0
    shown = run("product", "show", "sales.orders")
    assert "not evaluated or not checked" in shown.stdout

    home = Home(make_settings(home_dir))
    try:
        with TestClient(create_app(home)) as client:  # ungoverned: any token signs in
            client.post("/ui/login", data={"token": "x"}, headers={"origin": "http://testserver"})
            page = client.get("/ui/products/sales.orders")
            assert page.status_code == 200
            assert page.text.count('class="badge info">not evaluated<') == 2
            assert "Amounts are in euros." in page.text and "engine soda" in page.text
    finally:
        home.close()


def test_not_evaluated_rules_are_skipped_cases_of_meshops_check_junit(tmp_path: Path) -> None:
    home = tmp_path / "home"
    assert run_cli("init", "shop", cwd=tmp_path, home=home, env=GIT_ENV).returncode == 0
    project = tmp_path / "shop"
    (path,) = project.glob("domains/*/products/orders/*.odcs.yaml")
    document = yaml.safe_load(path.read_text())
    document["schema"][0]["quality"] = [*document["schema"][0].get("quality", []), *EXTRA_RULES]
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    commit_all(project, "init")
    checked = run_cli(
        "check", "--junit", "c.xml", "--no-tests", cwd=project, home=home, env=GIT_ENV
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    suites = ET.parse(project / "c.xml").getroot()
    skipped = [
        case
        for case in suites.iter("testcase")
        if case.find("skipped") is not None
        and "not evaluated"
        in str(
            case.find("skipped").get("message")  # type: ignore[union-attr]
        )
    ]
    assert len(skipped) == 2, ET.tostring(suites, encoding="unicode")
    messages = " ".join(str(c.find("skipped").get("message")) for c in skipped)  # type: ignore[union-attr]
    assert "engine soda" in messages and "Amounts are in euros." in messages
    assert suites.get("failures") == "0"
