"""`meshops init | check | plan | apply` and `meshops models promote` as a user runs them."""

from __future__ import annotations

import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

from tests.project.helpers import GIT_ENV, ORDERS, commit_all, edit


def _cli(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {**GIT_ENV, "MESHOPS_HOME": str(home), "MESHOPS_USER": "alice"}
    return subprocess.run(
        [sys.executable, "-m", "meshops.cli.main", *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=cwd,
        check=False,
    )


def test_cli_workflow(tmp_path: Path) -> None:
    home = tmp_path / "home"
    created = _cli("init", "shop", cwd=tmp_path, home=home)
    assert created.returncode == 0, created.stderr
    project = tmp_path / "shop"
    commit_all(project, "init")
    checked = _cli(
        "check", "--junit", "c.xml", "--markdown", "c.md", "--no-tests", cwd=project, home=home
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    suites = ET.parse(project / "c.xml").getroot()
    assert suites.tag == "testsuites" and suites.get("failures") == "0"
    assert "meshops check: ✅ passed" in (project / "c.md").read_text()
    applied = _cli("apply", cwd=project, home=home)
    assert applied.returncode == 0 and "new_version dataproduct sales.orders" in applied.stderr

    edit(project / ORDERS / "orders.odcs.yaml", "logicalType: number", "logicalType: string")
    edit(project / ORDERS / "dataproduct.yaml", "version: 1.0.0\nstatus", "version: 1.1.0\nstatus")
    commit_all(project, "amount as string")
    refused = _cli("apply", cwd=project, home=home)
    assert refused.returncode == 6 and "breaking-change-needs-major-version" in refused.stderr
