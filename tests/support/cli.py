"""`meshops ARGS` as a user runs it: a new interpreter, so start-up, the entry point's exit
codes and its messages on stderr are what is tested."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

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
