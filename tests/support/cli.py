"""`meshops ARGS` as a user runs it: `run_cli` in a new interpreter (start-up, a clean
environment), `run_main` through the same entry point in the test's process."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import pytest

from meshops.cli.main import main

PROGRAM = (sys.executable, "-m", "meshops.cli.main")

# Not the developer's environment: their MESHOPS_URI, token or home must never leak in.
BASE_ENV = {"PATH": "/usr/bin:/bin", "MESHOPS_USER": "alice"}


def run_cli(
    *args: str,
    home: Path | None = None,
    env: Mapping[str, str] | None = None,
    cwd: Path | None = None,
    timeout: float | None = None,
) -> subprocess.CompletedProcess[str]:
    """The finished process (any exit code); `env` is laid over `BASE_ENV` and the home."""
    full = {**BASE_ENV, **({"MESHOPS_HOME": str(home)} if home else {}), **(env or {})}
    return subprocess.run(
        [*PROGRAM, *args],
        capture_output=True,
        text=True,
        env=full,
        cwd=cwd,
        timeout=timeout,
        check=False,
    )


def run_main(
    args: Sequence[str], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> subprocess.CompletedProcess[str]:
    """`meshops ARGS` through the real entry point (`main`: exit codes and messages) in this
    process, where a new interpreter per case would cost seconds; the environment is the
    test's (set it with `monkeypatch.setenv`). Output captured before the call is dropped."""
    monkeypatch.setattr(sys, "argv", ["meshops", *args])
    capsys.readouterr()
    with pytest.raises(SystemExit) as exited:  # main always exits
        main()
    code = exited.value.code
    out = capsys.readouterr()
    return subprocess.CompletedProcess(
        ["meshops", *args], code if isinstance(code, int) else 0, out.out, out.err
    )
