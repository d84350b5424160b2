"""The mesh commands end to end in a subprocess on an embedded home."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import run_cli


def test_cli_domain_product_catalog(
    retail: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from meshops.cli.main import app

    home = tmp_path / "home"
    env = {"MESHOPS_HOME": str(home), "MESHOPS_USER": "alice"}
    runner = CliRunner()
    monkeypatch.chdir(retail)

    def run(*args: str) -> Any:
        return runner.invoke(app, list(args), env=env, catch_exceptions=False)

    assert run("domain", "create", "sales", "--description", "Sales").exit_code == 0
    built = run("product", "build", "sales_orders", "--json")
    assert built.exit_code == 0, built.output
    rules = {
        r["rule"]: r["passed"] for r in json.loads(built.stdout)["ports"][0]["report"]["results"]
    }
    assert rules["quality.orders.amount.nullValues.0"] is True
    published = run("product", "publish", "sales_orders", "--json")
    assert json.loads(published.stdout)["urn"] == "meshops:dataproduct:sales.orders:1.0.0"
    total = run("product", "sql", "select count(*) as n from sales.orders", "--json")
    assert json.loads(total.stdout) == [{"n": 2000}]
    hits = json.loads(run("catalog", "search", "order", "--json").stdout)
    assert hits["hits"][0]["product"] == "sales.orders"
    bad = run_cli("product", "read", "sales.nothing", home=home, cwd=retail)
    assert bad.returncode == 3 and "does not exist" in bad.stderr
    assert run("product", "new", "sales.returns", "--folder", "returns").exit_code == 0
    assert (retail / "returns" / "returns.odcs.yaml").is_file()
