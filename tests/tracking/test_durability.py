"""Several processes logging to one embedded SQLite home; a process killed mid-logging."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from meshops.client import connect

WRITER = textwrap.dedent(
    """
    import sys
    from meshops.client import connect

    home, worker, values = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    with connect(home=home) as platform:
        with platform.tracking.start_run("shared", name=f"w{worker}",
                                         capture_environment=False) as run:
            for i in range(values):
                run.log_metric("x", float(i), step=i)
                if i % 500 == 499:
                    run.flush()  # many small transactions interleave with the others
            run.log_params({"worker": worker})
    """
)

ENDLESS = textwrap.dedent(
    """
    import sys
    from meshops.client import connect

    with connect(home=sys.argv[1]) as platform:
        with platform.tracking.start_run("killed", capture_environment=False) as run:
            print(run.id, flush=True)
            i = 0
            while True:
                run.log_metric("x", float(i), step=i)
                i += 1
                if i % 200 == 0:
                    run.flush()
    """
)


def _env() -> dict[str, str]:
    src = str(Path(__file__).resolve().parents[2] / "src")
    return {**os.environ, "PYTHONPATH": src + os.pathsep + os.environ.get("PYTHONPATH", "")}


def test_four_processes_lose_no_value(tmp_path: Path) -> None:
    home = tmp_path / "home"
    connect(home=home).close()  # migrate once before the writers race
    values = 5_000
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(home), str(n), str(values)], env=_env())
        for n in range(4)
    ]
    assert [p.wait(timeout=120) for p in procs] == [0, 0, 0, 0]
    with connect(home=home) as platform:
        runs = platform.tracking.search_runs(["shared"], "", ["name"], 10).runs
        assert [r.name for r in runs] == ["w0", "w1", "w2", "w3"]
        for run in runs:
            history = platform.tracking.metric_history(run.id, "x")
            assert len(history) == values
            assert [m.step for m in history] == list(range(values))
            assert run.metrics["x"] == values - 1
            assert run.status == "FINISHED"


def test_sigkill_while_logging_leaves_a_sound_database(tmp_path: Path) -> None:
    home = tmp_path / "home"
    connect(home=home).close()
    proc = subprocess.Popen(
        [sys.executable, "-c", ENDLESS, str(home)], env=_env(), stdout=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    run_id = proc.stdout.readline().strip()
    time.sleep(1.5)  # let it commit many batches
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait(timeout=10)
    db = sqlite3.connect(home / "meshops.db")
    try:
        assert db.execute("PRAGMA integrity_check").fetchone() == ("ok",)
    finally:
        db.close()
    with connect(home=home) as platform:
        run = platform.tracking.get_run(run_id)
        history = platform.tracking.metric_history(run_id, "x")
    assert run.status == "RUNNING"  # nobody ended it
    # every committed batch is whole: steps are 0..n-1 in multiples of the flush size
    assert len(history) > 0 and len(history) % 200 == 0
    assert [m.step for m in history] == list(range(len(history)))
