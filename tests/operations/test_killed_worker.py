"""A `meshops worker` SIGKILLed in the middle of a step: nothing the step half-did is
visible (no step record, no partial artifact), the worker that takes the run over marks the
interrupted step failed with the reason while it runs it again, and the run then succeeds
with the step's output intact."""

from __future__ import annotations

import hashlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from meshops.kernel.home import Home
from meshops.pipelines.models import RunStatus, StepStatus
from meshops.pipelines.service import PipelinesService
from meshops.pipelines.worker import wait_for

FLOW = f"{Path(__file__).with_name('flows.py').resolve()}:produce_and_check"
LEASE = 2.0
MIB = 8


def test_worker_killed_mid_step_leaves_nothing_half_written(
    sqlite_home: Home, tmp_path: Path
) -> None:
    marks = tmp_path / "marks"
    marks.mkdir()
    service = PipelinesService(sqlite_home.context())
    params = {"marks": str(marks), "seconds": 2.0, "mib": MIB}
    run = service.submit(FLOW, params, executor="inline")
    workers = [_start_worker(sqlite_home, "doomed")]
    try:
        _wait_until(lambda: _count(marks, "produce_start") == 1)
        workers[0].send_signal(signal.SIGKILL)
        workers[0].wait()
        killed = service.get_run(run.id)
        assert killed.run.status == RunStatus.RUNNING and killed.steps == []
        _assert_blobs_whole(sqlite_home)
        workers.append(_start_worker(sqlite_home, "rescuer"))
        interrupted = _wait_for_interrupted_step(service, run.id)
        detail = wait_for(service, run.id, timeout=60)
    finally:
        for worker in workers:
            worker.kill()
            worker.wait()
    assert "interrupted" in (interrupted.error or "") and "rescuer" in (interrupted.error or "")
    print(f"\ninterrupted step shown as: {interrupted.status.value}: {interrupted.error}")
    assert detail.run.status == RunStatus.SUCCEEDED, detail.run.error
    assert detail.run.claims == 2
    by_node = {s.node: s for s in detail.steps}
    assert {s.status for s in by_node.values()} == {StepStatus.SUCCEEDED}
    assert _count(marks, "produce_start") == 2 and _count(marks, "produce_end") == 1
    _assert_blobs_whole(sqlite_home)


def _start_worker(home: Home, name: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MESHOPS_HOME": str(home.settings.home),
        "MESHOPS_DATABASE_URL": home.settings.database_url,
        "MESHOPS_USER": home.settings.user,
    }
    command = [sys.executable, "-m", "meshops.cli.main", "worker", "--lease", str(LEASE)]
    return subprocess.Popen(
        [*command, "--poll", "0.2", "--name", name],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def _wait_for_interrupted_step(service: PipelinesService, run_id: str) -> object:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        detail = service.get_run(run_id)
        failed = [s for s in detail.steps if s.status == StepStatus.FAILED]
        if failed:
            return failed[0]
        assert detail.run.status == RunStatus.RUNNING, "finished before showing the interruption"
        time.sleep(0.05)
    raise AssertionError("the interrupted step was never shown")


def _assert_blobs_whole(home: Home) -> None:
    """Every blob visible in the store has the bytes its name says (temp files are apart)."""
    root = Path(home.settings.blob_url) / "sha256"
    for path in root.rglob("*") if root.exists() else []:
        if path.is_file():
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
            assert digest == path.parent.name + path.name, f"half-written blob {path}"


def _count(marks: Path, name: str) -> int:
    log = marks / f"{name}.log"
    return len(log.read_text().splitlines()) if log.exists() else 0


def _wait_until(condition: object, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)
