"""`meshops init | check | plan | apply` and `meshops models promote` as a user runs them."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

from tests.project.helpers import GIT_ENV, ORDERS, commit_all, edit
from tests.support.cli import run_cli


def test_cli_workflow(tmp_path: Path) -> None:
    home = tmp_path / "home"
    created = run_cli("init", "shop", cwd=tmp_path, home=home, env=GIT_ENV)
    assert created.returncode == 0, created.stderr
    project = tmp_path / "shop"
    commit_all(project, "init")
    checked = run_cli(
        "check",
        "--junit",
        "c.xml",
        "--markdown",
        "c.md",
        "--no-tests",
        cwd=project,
        home=home,
        env=GIT_ENV,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    suites = ET.parse(project / "c.xml").getroot()
    assert suites.tag == "testsuites" and suites.get("failures") == "0"
    assert "meshops check: ✅ passed" in (project / "c.md").read_text()
    applied = run_cli("apply", cwd=project, home=home, env=GIT_ENV)
    assert applied.returncode == 0 and "new_version dataproduct sales.orders" in applied.stderr

    edit(project / ORDERS / "orders.odcs.yaml", "logicalType: number", "logicalType: string")
    edit(project / ORDERS / "dataproduct.yaml", "version: 1.0.0\nstatus", "version: 1.1.0\nstatus")
    commit_all(project, "amount as string")
    refused = run_cli("apply", cwd=project, home=home, env=GIT_ENV)
    assert refused.returncode == 6 and "breaking-change-needs-major-version" in refused.stderr
