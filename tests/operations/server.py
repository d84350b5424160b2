"""`meshops server --workers 2` on a home, as a process group the test stops."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx

from tests.conftest import free_port

# Two workers import the whole platform on a shared, loaded machine: generous.
START_SECONDS = 150


@contextmanager
def meshops_server(home: Path, env: dict[str, str], workers: int = 2) -> Iterator[str]:
    """Yields the server's base URL; its log is `<home>/../server.log`."""
    port = free_port()
    full_env = {**os.environ, **env, "MESHOPS_HOME": str(home)}
    full_env.pop("MESHOPS_URI", None)
    full_env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    log_path = home.parent / "server.log"
    with open(log_path, "wb") as log:
        command = [sys.executable, "-m", "meshops.cli.main", "server", "--port", str(port)]
        process = subprocess.Popen(
            [*command, "--workers", str(workers)],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    base = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(base, process, log_path)
        yield base
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait(timeout=10)


def _wait_ready(base: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"meshops server exited: {log.read_text()[-3000:]}")
        try:
            if httpx.get(f"{base}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("meshops server did not become ready")
