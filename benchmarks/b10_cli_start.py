"""B10: CLI start, `meshops --help` < 300 ms and `meshops catalog search x` cold < 600 ms.

    .venv/bin/python benchmarks/b10_cli_start.py [--runs 20]

Hyperfine-like: spawns each command `--runs` times (after 2 warm-up runs that also create
the embedded home and apply its migrations), alternating the commands, and reports the
median and p95 wall time. "Cold" means a new interpreter each time (nothing cached in the
process); the OS page cache is warm, as for a person typing commands. The CPU time (user +
sys) of each child is reported too: on a shared, loaded machine the wall time mostly
measures waiting for a core, the CPU time what the command costs.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import Row, percentile, record

COMMANDS = {
    "meshops --help": ["--help"],
    "meshops catalog search x": ["catalog", "search", "x"],
}
GOALS = {"meshops --help": "< 300 ms", "meshops catalog search x": "< 600 ms"}


SRC = Path(__file__).resolve().parents[1] / "src"
PROGRAM = [sys.executable, "-m", "meshops.cli.main"]


def spawn(argv: list[str], env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU (user + sys) seconds of one run of `argv`."""
    started = time.perf_counter()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    assert proc.stderr is not None
    err = proc.stderr.read()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise RuntimeError(f"{argv} failed ({proc.returncode}): {err.decode()[-2000:]}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument(
        "--baseline-src",
        type=Path,
        help="another checkout's src/ (e.g. a `git worktree` of an older commit) to run "
        "alternately as the comparison column",
    )
    args = parser.parse_args()
    trees = {"meshops": SRC, **({"baseline": args.baseline_src} if args.baseline_src else {})}
    home = Path(tempfile.mkdtemp(prefix="b10-home-"))
    base_env = {**os.environ, "MESHOPS_USER": "bench"}
    base_env.pop("MESHOPS_URI", None)
    envs = {  # one home per tree: their migrations may differ
        tree: {**base_env, "PYTHONPATH": str(src), "MESHOPS_HOME": str(home / tree)}
        for tree, src in trees.items()
    }
    walls: dict[tuple[str, str], list[float]] = {(t, n): [] for t in trees for n in COMMANDS}
    cpus: dict[tuple[str, str], list[float]] = {(t, n): [] for t in trees for n in COMMANDS}
    try:
        for _ in range(2):  # warm-up: creates the home, applies migrations, warms page cache
            for tree in trees:
                for argv in COMMANDS.values():
                    spawn([*PROGRAM, *argv], envs[tree])
        for _ in range(args.runs):
            for name, argv in COMMANDS.items():
                for tree in trees:
                    wall, cpu = spawn([*PROGRAM, *argv], envs[tree])
                    walls[tree, name].append(wall * 1000)
                    cpus[tree, name].append(cpu * 1000)
    finally:
        shutil.rmtree(home, ignore_errors=True)
    load = os.getloadavg()[0]
    rows = []
    other = "baseline" if "baseline" in trees else None

    def figure(
        stats: dict[tuple[str, str], list[float]], tree: str | None, name: str, p: int
    ) -> float | None:
        return percentile(stats[tree, name], p) if tree else None

    for name in COMMANDS:
        for label, stats, p, goal in (
            ("wall, median", walls, 50, GOALS[name]),
            ("wall, p95", walls, 95, ""),
            ("CPU (user+sys), median", cpus, 50, ""),
        ):
            rows.append(
                Row(
                    f"`{name}`, {label}",
                    figure(stats, "meshops", name, p),  # type: ignore[arg-type]
                    figure(stats, other, name, p),
                    "ms",
                    False,
                    goal,
                )
            )
    record(
        "B10",
        f"CLI start ({args.runs} runs each, alternating; 1-min load average {load:.1f})",
        "python benchmarks/b10_cli_start.py"
        + (f" --baseline-src {args.baseline_src}" if other else ""),
        "before (baseline src)" if other else "—",
        rows,
    )


if __name__ == "__main__":
    main()
