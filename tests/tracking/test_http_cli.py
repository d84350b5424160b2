"""Bad input answered with clear 4xx bodies over HTTP and exit codes in the CLI."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from meshops.client import connect
from tests.conftest import LiveServer
from tests.support.cli import run_main


def test_http_errors_are_4xx_json(live_server: LiveServer) -> None:
    with httpx.Client(base_url=live_server.url) as client:
        missing = client.get("/v1/runs/" + "0" * 32)
        assert missing.status_code == 404 and missing.json()["error"] == "not_found"
        bad_filter = client.post("/v1/runs/search", json={"filter": "metrics.a <"})
        assert bad_filter.status_code == 422
        assert bad_filter.json()["detail"]["token"] == "<end of input>"
        run = client.post("/v1/runs", json={"experiment": "e"}).json()
        bad_key = client.post(f"/v1/runs/{run['id']}/params", json={"params": {"bad key!": "1"}})
        assert bad_key.status_code == 422 and bad_key.json()["detail"]["field"] == "param"
        huge = client.post(f"/v1/runs/{run['id']}/tags", json={"tags": {"t": "v" * 8001}})
        assert huge.status_code == 422 and huge.json()["detail"]["limit"] == 8000
        garbage = client.post("/v1/metrics/batch", content=b"{not json")
        assert garbage.status_code == 422
        rows = [[run["id"], "m", 1.0, 0, 0.0]]
        assert client.post("/v1/metrics/batch", json={"rows": rows}).status_code == 204
        client.post(f"/v1/runs/{run['id']}/end", json={"status": "FINISHED"})
        late = client.post("/v1/metrics/batch", json={"rows": rows})
        assert late.status_code == 409 and late.json()["error"] == "conflict"


class Cli:
    """Runs `meshops ...` in-process through the real entry point (exit-code mapping
    included); a subprocess per command would pay the package import each time."""

    def __init__(self, home: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any) -> None:
        monkeypatch.setenv("MESHOPS_HOME", str(home))
        monkeypatch.setenv("MESHOPS_USER", "alice")
        monkeypatch.delenv("MESHOPS_URI", raising=False)
        self.capsys = capsys
        self.monkeypatch = monkeypatch

    def __call__(self, *args: str) -> tuple[int, str, str]:
        done = run_main(args, self.monkeypatch, self.capsys)
        return done.returncode, done.stdout, done.stderr


def test_cli_lists_searches_shows_and_exits_with_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    home = tmp_path / "home"
    cli = Cli(home, capsys, monkeypatch)
    with (
        connect(home=home) as platform,
        platform.tracking.start_run("cli", name="good", capture_environment=False) as run,
    ):
        run.log_params({"model": "rf"})
        run.log_metric("rmse", 0.25)
    code, out, err = cli("runs", "list", "--json")
    assert code == 0, err
    assert [r["name"] for r in json.loads(out)["runs"]] == ["good"]
    code, out, _ = cli("runs", "search", "-f", "metrics.rmse < 0.5", "--order-by", "metrics.rmse")
    assert code == 0 and "good" in out
    code, out, _ = cli("runs", "show", run.id, "--json")
    assert json.loads(out)["params"] == {"model": "rf"}
    code, _, err = cli("runs", "search", "--filter", "metrics.rmse < 'x'")
    assert code == 2 and "position 15" in " ".join(err.split())
    code, _, err = cli("runs", "show", "nope")
    assert code == 3 and "run nope does not exist" in " ".join(err.split())
    code, out, _ = cli("experiments", "list", "--json")
    assert [e["name"] for e in json.loads(out)] == ["cli"]


def test_cli_imports_runs_from_json_lines(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: Any
) -> None:
    cli = Cli(tmp_path / "home", capsys, monkeypatch)
    lines = [
        {
            "experiment": "imported",
            "name": f"r{i}",
            "params": {"lr": i / 10},
            "metrics": [{"key": "loss", "value": 1 / (i + 1), "step": 5, "timestamp": 1.0}],
        }
        for i in range(5)
    ]
    good = tmp_path / "runs.jsonl"
    good.write_text("\n".join(json.dumps(line) for line in lines) + "\n\n")
    code, out, err = cli("runs", "import", str(good), "--batch-size", "2", "--json")
    assert code == 0, err
    assert json.loads(out)["created"] == 5
    code, out, _ = cli("runs", "search", "-e", "imported", "-f", "metrics.loss < 0.22", "--json")
    assert sorted(r["name"] for r in json.loads(out)["runs"]) == ["r4"]
    bad_line = tmp_path / "bad.jsonl"
    bad_line.write_text(json.dumps(lines[0]) + "\n" + '{"experiment": "x", "status": "NAPPING"}\n')
    code, _, err = cli("runs", "import", str(bad_line))
    assert code == 2 and "line 2" in err and "status" in err
    refused = tmp_path / "refused.jsonl"
    refused.write_text(json.dumps({**lines[0], "experiment": "late", "params": {"bad key!": 1}}))
    code, _, err = cli("runs", "import", str(refused))
    assert (
        code == 2 and "runs[0]" in err and "the 0 runs before were created" in " ".join(err.split())
    )
    code, out, _ = cli("experiments", "list", "--json")
    assert "late" not in out and "x" not in [e["name"] for e in json.loads(out)]
