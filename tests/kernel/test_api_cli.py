from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest

from meshops.client import Platform
from tests.conftest import LiveServer
from tests.support.cli import run_cli


def test_health_and_openapi(live_server: LiveServer) -> None:
    assert httpx.get(f"{live_server.url}/healthz").json() == {"status": "ok"}
    ready = httpx.get(f"{live_server.url}/readyz").json()
    assert ready["status"] == "ready"
    assert "/v1/lineage/upstream" in httpx.get(f"{live_server.url}/openapi.json").json()["paths"]


def test_errors_are_json_with_4xx(live_server: LiveServer) -> None:
    r = httpx.get(f"{live_server.url}/v1/lineage/upstream", params={"urn": "not-a-urn"})
    assert r.status_code == 422
    body = r.json()
    assert body["error"] == "invalid_input"
    assert "URN" in body["message"]
    r = httpx.get(f"{live_server.url}/v1/lineage/upstream")
    assert r.status_code == 422
    assert r.json()["detail"]["errors"][0]["field"] == "query.urn"


def test_lineage_same_over_both_transports(platform: Platform) -> None:
    platform.lineage.add_edge("meshops:run:a", "meshops:model:m:1", "produced")
    edges = platform.lineage.upstream("meshops:model:m:1")
    assert [(e.upstream, e.relation) for e in edges] == [("meshops:run:a", "produced")]


def test_cli_version_db_and_error_exit_codes(tmp_path: Path) -> None:
    import meshops

    assert run_cli("version", home=tmp_path).stdout.strip() == meshops.__version__
    up = run_cli("db", "upgrade", home=tmp_path)
    assert up.returncode == 0, up.stderr
    status = run_cli("db", "status", "--json", home=tmp_path)
    assert '"up_to_date": true' in status.stdout
    bad = run_cli("lineage", "upstream", "nonsense", home=tmp_path)
    assert bad.returncode == 2
    assert "not a meshops URN" in bad.stderr


def test_cli_exit_codes_raised_inside_commands_reach_the_shell(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import typer

    from meshops.cli import main as cli_main

    # A command of its own on a copy of the app's list: the real app is left as it was
    # (other tests walk every registered command).
    monkeypatch.setattr(cli_main.app, "registered_commands", list(cli_main.app.registered_commands))

    @cli_main.app.command("exit-three", hidden=True)
    def exit_three() -> None:
        raise typer.Exit(3)

    monkeypatch.setattr(sys, "argv", ["meshops", "exit-three"])
    with pytest.raises(SystemExit) as info:
        cli_main.main()
    assert info.value.code == 3
