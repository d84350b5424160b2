"""The pipelines commands end to end against a real embedded home: `meshops pipelines
run|list|show|logs|resume|reproduce`, `meshops runs reproduce`, `meshops schedules`,
`meshops triggers` and `meshops worker --once`, with bad input giving a clear message and
the documented exit code. Results come through Typer's CliRunner, errors through the real
entry point (`meshops.cli.main:main`, which maps them to exit codes), and what needs its
own process (the worker, failing runs, reproductions) runs as `python -m meshops.cli.main`."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from meshops.cli.main import app
from meshops.kernel import outbox
from meshops.kernel.home import Home
from tests.conftest import make_settings
from tests.pipelines.conftest import alert
from tests.support.cli import run_cli, run_main

FLOW = """
from pathlib import Path

from meshops.pipelines import pipeline, step


@step
def greet(name: str) -> str:
    print(f"hello {name}")
    return f"hello {name}"


@step
def check(greeting: str, gate: str) -> int:
    print("checking the gate")
    if Path(gate).exists():
        raise RuntimeError("the gate file says no")
    return len(greeting)


@pipeline
def hello(name: str = "world", gate: str = "/nonexistent"):
    return check(greet(name), gate)
"""


class Cli:
    """`meshops` on one home: in-process for results, as a subprocess for errors."""

    def __init__(self, home: Path) -> None:
        self.env = {"MESHOPS_HOME": str(home), "MESHOPS_USER": "alice"}
        self.runner = CliRunner()

    def ok(self, *args: str) -> Any:
        """Run a command that must succeed; its --json output, parsed."""
        result = self.runner.invoke(app, [*args, "--json"], env=self.env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return json.loads(result.stdout)

    def text(self, *args: str) -> str:
        result = self.runner.invoke(app, list(args), env=self.env, catch_exceptions=False)
        assert result.exit_code == 0, result.output
        return result.stdout

    def process(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        env = {**os.environ, **self.env, "COLUMNS": "200"}
        return run_cli(*args, env=env, timeout=timeout)


MainExit = Callable[..., tuple[int, str]]


@pytest.fixture
def main_exit(
    workspace: tuple[Cli, Path],
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> MainExit:
    """`meshops ARGS` through the real entry point (`main`, which maps errors to exit codes
    and messages), in-process (a subprocess per case costs seconds): (exit code, stderr)."""
    for name, value in workspace[0].env.items():
        monkeypatch.setenv(name, value)

    def run(*args: str) -> tuple[int, str]:
        done = run_main(args, monkeypatch, capsys)
        return done.returncode, " ".join(done.stderr.split())

    return run


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> tuple[Cli, Path]:
    """One home and one pipeline file for the module (opening a home migrates it)."""
    root = tmp_path_factory.mktemp("cli")
    (root / "flow.py").write_text(FLOW)
    Home(make_settings(root / "home")).close()
    return Cli(root / "home"), root


def failed_run(cli: Cli, root: Path, name: str) -> str:
    """A run of `hello` whose `check` step fails (the gate file exists); each test uses its
    own `name`, so no step of another test's resumed run is a cache hit here."""
    gate = root / "gate"
    gate.touch()
    ref = f"{root}/flow.py:hello"
    result = cli.process(
        "pipelines", "run", ref, "-p", f"gate={gate}", "-p", f"name={name}", "--json"
    )
    assert result.returncode == 1, result.stderr  # a failed run fails the command
    detail = json.loads(result.stdout)
    assert detail["run"]["status"] == "failed"
    return str(detail["run"]["id"])


def test_run_list_show_logs_and_resume(workspace: tuple[Cli, Path]) -> None:
    cli, root = workspace
    ref = f"{root}/flow.py:hello"
    ok = cli.ok("pipelines", "run", ref, "-p", "name=cli", "--no-track")
    assert ok["run"]["status"] == "succeeded" and ok["run"]["params"]["name"] == "cli"
    run_id = failed_run(cli, root, "world")

    listed = cli.ok("pipelines", "list", "--pipeline", "hello", "--status", "failed")
    assert [r["id"] for r in listed] == [run_id]
    shown = cli.ok("pipelines", "show", run_id)
    steps = {s["node"]: s for s in shown["steps"]}
    assert steps["greet"]["status"] == "succeeded" and steps["check"]["status"] == "failed"
    assert "the gate file says no" in steps["check"]["error"]
    assert "check" in cli.text("pipelines", "show", run_id)

    logs = cli.ok("pipelines", "logs", run_id)
    assert logs == {"greet": "hello world\n", "check": "checking the gate\n"}
    assert cli.ok("pipelines", "logs", run_id, "--step", "greet") == {"greet": "hello world\n"}
    assert "hello world" in cli.text("pipelines", "logs", run_id)

    (root / "gate").unlink()
    resumed = cli.ok("pipelines", "resume", run_id, "--local")
    assert resumed[0]["status"] == "succeeded" and resumed[0]["resumed_from"] == run_id
    again = cli.ok("pipelines", "show", resumed[0]["id"])
    statuses = {s["node"]: s["status"] for s in again["steps"]}
    assert statuses == {"greet": "reused", "check": "succeeded"}


def test_queued_resume_runs_on_a_worker_once(workspace: tuple[Cli, Path]) -> None:
    cli, root = workspace
    run_id = failed_run(cli, root, "queue")
    (root / "gate").unlink()
    (queued,) = cli.ok("pipelines", "resume", run_id, "-x", "inline")
    assert queued["status"] == "queued"
    worker = cli.process("worker", "--once", "--poll", "0.1")
    assert worker.returncode == 0, worker.stderr
    assert "stopped after 1 run(s)" in worker.stderr
    assert cli.ok("pipelines", "show", queued["id"])["run"]["status"] == "succeeded"


def test_schedules_create_list_delete(workspace: tuple[Cli, Path], main_exit: MainExit) -> None:
    cli, root = workspace
    ref = f"{root}/flow.py:hello"
    created = cli.ok("schedules", "create", "nightly", "--cron", "0 3 * * *", "--ref", ref)
    assert created[0]["name"] == "nightly" and created[0]["next_fire_at"].endswith(
        ("03:00:00Z", "03:00:00+00:00")
    )
    assert [s["name"] for s in cli.ok("schedules", "list")] == ["nightly"]
    assert "0 3 * * *" in cli.text("schedules", "list")
    code, stderr = main_exit("schedules", "create", "x", "--cron", "every day", "--ref", ref)
    assert code == 2 and "invalid cron expression" in stderr
    assert main_exit("schedules", "delete", "nightly")[0] == 0
    code, stderr = main_exit("schedules", "delete", "nightly")
    assert code == 3 and "schedule nightly does not exist" in stderr


def test_triggers_queue_over_their_limit_and_show_it(workspace: tuple[Cli, Path]) -> None:
    cli, root = workspace
    created = cli.ok(
        "triggers",
        "create",
        "on-alert",
        "--topic",
        outbox.MONITOR_ALERT,
        "--ref",
        f"{root}/flow.py:hello",
        "-p",
        "name=alert",
        "--max-concurrent",
        "1",
        "--max-pending",
        "5",
        "--coalesce",
        "-x",
        "inline",
    )
    assert created[0]["max_pending"] == 5 and created[0]["coalesce_pending"] is True
    home = Home(make_settings(root / "home"))
    try:
        with home.db.begin() as conn:
            for subject in ("m1", "m2", "m2", "m3"):
                outbox.emit(conn, f"meshops:monitor:{subject}", alert(subject, "high"), "a")
    finally:
        home.close()
    worker = cli.process("worker", "--once", "--poll", "0.1")
    assert worker.returncode == 0, worker.stderr
    # m1 starts; m2's first event is superseded by its second; all that waited then ran.
    assert "stopped after 3 run(s)" in worker.stderr
    events = cli.ok("triggers", "events", "on-alert")
    assert sorted(e["status"] for e in events) == ["coalesced", "started", "started", "started"]
    (state,) = [s for s in cli.ok("triggers", "list") if s["trigger"]["name"] == "on-alert"]
    assert state["events"] == {"started": 3, "coalesced": 1} and state["active_runs"] == 0
    table = cli.process("triggers", "list").stdout
    assert "on-alert" in table and "1 coalesced" in table
    assert (
        "superseded by event" in cli.process("triggers", "events", "--status", "coalesced").stdout
    )


def test_runs_reproduce_by_pipeline_or_tracking_run(workspace: tuple[Cli, Path]) -> None:
    cli, root = workspace
    detail = cli.ok("pipelines", "run", f"{root}/flow.py:hello", "-p", "name=again")
    run_id, tracking_id = detail["run"]["id"], detail["run"]["tracking_run_id"]
    assert tracking_id
    # The temporary folder is not a git repository: no code version to check out.
    refused = cli.process("runs", "reproduce", run_id)
    assert refused.returncode == 4
    assert "recorded no code version" in refused.stderr and "--use-current-code" in refused.stderr
    report = cli.ok("runs", "reproduce", tracking_id, "--use-current-code")
    assert report["original"] == run_id and report["matches"] is True
    assert report["code"]["source"] == "current"
    same = cli.process("pipelines", "reproduce", run_id, "--use-current-code")
    assert same.returncode == 0 and "MATCH" in same.stdout, same.stderr
    unknown = cli.process("runs", "reproduce", "f" * 32)
    assert unknown.returncode == 3 and "no pipeline run or tracking run" in unknown.stderr


@pytest.mark.parametrize(
    "case",
    [
        (["pipelines", "run", "not-a-reference"], 2, "not a pipeline reference"),
        (["pipelines", "run", "/nowhere/flow.py:hello"], 2, "does not exist"),
        (["pipelines", "run", "{root}/flow.py:goodbye"], 2, "has no attribute goodbye"),
        (["pipelines", "run", "{root}/flow.py:greet"], 2, "is not a @pipeline"),
        (["pipelines", "run", "{root}/flow.py:hello", "-p", "name"], 2, "bad --param"),
        (["pipelines", "run", "{root}/flow.py:hello", "-p", "colour=red"], 2, "colour"),
        (["pipelines", "run", "{root}/flow.py:hello", "-x", "gpu-farm"], 2, "unknown executor"),
        (["pipelines", "run", "local:hello", "--queue"], 2, "cannot load pipeline"),
        (["pipelines", "show", "nope"], 3, "pipeline run nope does not exist"),
        (["pipelines", "logs", "nope"], 3, "does not exist"),
        (["pipelines", "resume", "nope"], 3, "does not exist"),
        (["triggers", "events", "--status", "lost"], 2, "unknown trigger event status"),
        (["triggers", "create", "t", "--topic", "x.y", "--ref", "a:b"], 2, "cannot trigger"),
    ],
)
def test_bad_input_is_explained(
    workspace: tuple[Cli, Path], case: tuple[list[str], int, str], main_exit: MainExit
) -> None:
    _cli, root = workspace
    args, code, message = case
    exit_code, stderr = main_exit(*[a.replace("{root}", str(root)) for a in args])
    assert exit_code == code, stderr
    assert message in stderr


def test_resume_of_a_run_that_did_not_fail_is_a_conflict(
    workspace: tuple[Cli, Path], main_exit: MainExit
) -> None:
    cli, root = workspace
    done = cli.ok("pipelines", "run", f"{root}/flow.py:hello", "--no-track")
    code, stderr = main_exit("pipelines", "resume", done["run"]["id"])
    assert code == 4 and "only failed runs can be resumed" in stderr
