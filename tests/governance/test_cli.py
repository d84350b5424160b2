"""The governance commands, run as a user would (a subprocess), embedded and remote."""

from __future__ import annotations

import json
from pathlib import Path

from meshops.kernel.home import Home
from tests.conftest import LiveServer
from tests.support.cli import run_cli


def test_cli_embedded_policy_tokens_and_audit(tmp_path: Path) -> None:
    env = {"MESHOPS_HOME": str(tmp_path / "home")}
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "id: needs-tags\ntarget: dataproduct.publish\nrationale: tagged\n"
        "expression: size(product.tags) >\n"
    )
    r = run_cli("policy", "save", str(broken), env=env)
    assert r.returncode == 2, r.stderr
    assert "line 1, column" in r.stderr and "syntax error" in r.stderr
    broken.write_text(broken.read_text().replace(" >\n", " > 0\n"))
    assert run_cli("policy", "save", str(broken), env=env).returncode == 0
    made = run_cli("tokens", "create", "laptop", "--expires-in-days", "7", env=env)
    assert made.returncode == 0 and made.stdout.strip().startswith("msh_")
    verify = run_cli("audit", "verify", env=env)
    assert verify.returncode == 0 and "intact" in verify.stdout


def test_login_stores_a_token_that_connect_uses(tmp_path: Path, sqlite_home: Home) -> None:
    with LiveServer(sqlite_home) as server:
        env = {"MESHOPS_CREDENTIALS": str(tmp_path / "credentials.toml")}
        bad = run_cli("login", server.url, "--token", "msh_wrong", env=env)
        assert bad.returncode == 5  # unauthenticated
        assert not (tmp_path / "credentials.toml").exists()
        ok = run_cli("login", server.url, "--token", server.token, env=env)
        assert ok.returncode == 0, ok.stderr
        assert (tmp_path / "credentials.toml").stat().st_mode & 0o777 == 0o600
        me = run_cli("users", "whoami", "--json", env={**env, "MESHOPS_URI": server.url})
        assert me.returncode == 0, me.stderr
        assert json.loads(me.stdout)["name"] == "alice"
        anonymous = run_cli(
            "users",
            "whoami",
            env={"MESHOPS_URI": server.url, "MESHOPS_CREDENTIALS": str(tmp_path / "none")},
        )
        assert anonymous.returncode == 5
