"""`meshops pipelines show` and `meshops pipelines logs` print a failed step's whole error -
the message and the traceback down to the line that raised - not only its first line
(issue #16). Run through the real entry point (`tests.support.cli.run_main`)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from meshops.kernel.home import Home
from tests.conftest import make_settings
from tests.support.cli import run_main

FLOW = """
from meshops.pipelines import pipeline, step


def _deep(value):
    raise ValueError(f"bad value {value}: [not markup]")


@step
def fine(value: int) -> int:
    print("fine so far")
    return value


@step
def explode(value: int) -> int:
    print("about to fail")
    return _deep(value)


@pipeline
def boom(value: int = 3):
    return explode(fine(value))
"""

# The traceback, in order, as Python prints it (the table cuts the error to one line).
TRACEBACK = [
    "== explode failed (attempt 1):",
    "ValueError: bad value 3: [not markup]",
    "Traceback (most recent call last):",
    ", in explode",
    "    return _deep(value)",
    ", in _deep",
    '    raise ValueError(f"bad value {value}: [not markup]")',
    "ValueError: bad value 3: [not markup]",
]


def in_order(text: str, parts: list[str]) -> bool:
    at = 0
    for part in parts:
        at = text.find(part, at)
        if at < 0:
            return False
        at += len(part)
    return True


@pytest.fixture
def failed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> str:
    """The id of a failed run of `boom` on a new home (whose environment the test keeps)."""
    Home(make_settings(tmp_path / "home")).close()
    monkeypatch.setenv("MESHOPS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MESHOPS_USER", "alice")
    monkeypatch.setenv("COLUMNS", "100")
    (tmp_path / "flow.py").write_text(FLOW)
    ran = run_main(
        ["pipelines", "run", f"{tmp_path / 'flow.py'}:boom", "--json"], monkeypatch, capsys
    )
    assert ran.returncode == 1
    return str(json.loads(ran.stdout)["run"]["id"])


def test_show_prints_the_whole_error(
    failed: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    shown = run_main(["pipelines", "show", failed], monkeypatch, capsys)
    assert shown.returncode == 0
    assert in_order(shown.stdout, TRACEBACK), shown.stdout
    # The run's own error only repeats the step's first line: not printed again.
    assert f"== run {failed}" not in shown.stdout
    as_json = json.loads(
        run_main(["pipelines", "show", failed, "--json"], monkeypatch, capsys).stdout
    )
    (error,) = [s["error"] for s in as_json["steps"] if s["error"]]
    assert in_order(error, TRACEBACK[1:])


def test_logs_print_each_step_then_its_whole_error(
    failed: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    logs = run_main(["pipelines", "logs", failed], monkeypatch, capsys)
    assert logs.returncode == 0
    assert "== fine" in logs.stderr and "== explode" in logs.stderr  # headers, as before
    assert in_order(logs.stdout, ["fine so far", "about to fail", *TRACEBACK]), logs.stdout
    assert "failed (attempt" not in logs.stdout.split("about to fail")[0]
    only = run_main(["pipelines", "logs", failed, "--step", "explode"], monkeypatch, capsys)
    assert "fine so far" not in only.stdout
    assert in_order(only.stdout, ["about to fail", *TRACEBACK])
    # --json stays what the steps printed, by step.
    printed = json.loads(
        run_main(["pipelines", "logs", failed, "--json"], monkeypatch, capsys).stdout
    )
    assert printed == {"fine": "fine so far\n", "explode": "about to fail\n"}
