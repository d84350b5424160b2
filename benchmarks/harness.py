"""Shared benchmark harness: peer environments, timing, the results table, RESULTS.md.

Peers (MLflow, Feast, Evidently, datacontract-cli ...) live in their own virtual
environments under `benchmarks/.venv-peers/<peer>/`, created on first use, never as
dependencies of meshops. A peer workload runs as a script in that environment and prints
one JSON object on its last stdout line.
"""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

HERE = Path(__file__).resolve().parent
PEERS_DIR = HERE / ".venv-peers"
DATA_DIR = HERE / ".data"
RESULTS = HERE / "RESULTS.md"


def peer_python(peer: str, requirements: Sequence[str]) -> Path:
    """The python of the peer's environment, creating and installing it when missing."""
    venv = PEERS_DIR / peer
    python = venv / "bin" / "python"
    stamp = venv / ".installed"
    wanted = "\n".join(requirements)
    if stamp.exists() and stamp.read_text() == wanted:
        return python
    print(f"[harness] creating peer environment {venv} ({', '.join(requirements)})", flush=True)
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--upgrade", "pip"], check=True)
    subprocess.run([str(python), "-m", "pip", "install", "-q", *requirements], check=True)
    stamp.write_text(wanted)
    return python


def run_peer(python: Path, script: Path, *args: str, timeout: float = 3600) -> dict[str, object]:
    """Run `script` with the peer's python; returns the JSON its last stdout line holds."""
    proc = subprocess.run(
        [str(python), str(script), *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    if proc.returncode != 0:
        raise RuntimeError(f"peer script {script.name} failed:\n{proc.stderr[-4000:]}")
    lines = [line for line in proc.stdout.splitlines() if line.strip()]
    result: dict[str, object] = json.loads(lines[-1])
    return result


def timed(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def median(values: Sequence[float]) -> float:
    return float(statistics.median(values))


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    index = min(len(ordered) - 1, max(0, round(p / 100 * (len(ordered) - 1))))
    return float(ordered[index])


def machine() -> str:
    mem_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    return (
        f"{os.cpu_count()} cores, {mem_gib:.0f} GiB RAM, {platform.machine()}, "
        f"Python {platform.python_version()}"
    )


@dataclass
class Row:
    workload: str
    meshops: float
    peer: float | None
    unit: str
    higher_is_better: bool = True
    goal: str = ""

    @property
    def ratio(self) -> float | None:
        if self.peer is None or self.peer == 0 or self.meshops == 0:
            return None
        return self.meshops / self.peer if self.higher_is_better else self.peer / self.meshops


def table(title: str, peer_name: str, rows: Sequence[Row]) -> str:
    header = (
        f"| workload | meshops | {peer_name} | ratio (× better) | goal |\n|---|---|---|---|---|\n"
    )
    body = "".join(
        f"| {r.workload} | {_fmt(r.meshops)} {r.unit} | "
        f"{_fmt(r.peer) + ' ' + r.unit if r.peer is not None else '—'} | "
        f"{f'{r.ratio:.1f}×' if r.ratio is not None else '—'} | {r.goal} |\n"
        for r in rows
    )
    return f"### {title}\n\n{header}{body}"


def _fmt(value: float | None) -> str:
    if value is None:
        return "—"
    if value >= 100:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def record(bench_id: str, title: str, command: str, peer_name: str, rows: Sequence[Row]) -> str:
    """Print the table and replace this benchmark's section of RESULTS.md."""
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    section = (
        f"<!-- {bench_id} -->\n{table(f'{bench_id}: {title}', peer_name, rows)}\n"
        f"Command: `{command}` — {stamp}, {machine()}.\n<!-- /{bench_id} -->\n"
    )
    print(section)
    text = RESULTS.read_text() if RESULTS.exists() else _RESULTS_HEADER
    start, end = f"<!-- {bench_id} -->", f"<!-- /{bench_id} -->\n"
    if start in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1] if end in rest else ""
        text = before + section + after
    else:
        text = text.rstrip("\n") + "\n\n" + section
    RESULTS.write_text(text)
    return section


_RESULTS_HEADER = """# Benchmark results

Each section is written by its script (see the command under it); meshops and the peer run
in the same invocation, alternating, and the figures are medians. Machines here are shared
and noisy: compare ratios, not absolute figures across sections.
"""
