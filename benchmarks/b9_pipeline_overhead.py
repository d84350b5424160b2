"""B9: pipeline overhead. 1,000 trivial steps in one DAG (10 chains of 100 steps) on the
inline and the local process executor, everything recorded (step runs, cache lookups,
artifacts in the blob store, lineage); and planning a 10,000-step DAG.

Run: .venv/bin/python benchmarks/b9_pipeline_overhead.py [--repeat 3]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.harness import Row, median, record
from meshops.kernel.config import load_settings
from meshops.kernel.home import Home
from meshops.pipelines import pipeline, step
from meshops.pipelines.dag import plan
from meshops.pipelines.service import PipelinesService

CHAINS = 10


@step
def start(chain: int, seed: int) -> int:
    return chain * 1_000_000 + seed


@step
def inc(value: int) -> int:
    return value + 1


@pipeline
def wide(steps: int = 1000, seed: int = 0) -> object:
    heads = [start(c, seed) for c in range(CHAINS)]
    for _ in range(steps // CHAINS - 1):
        heads = [inc(h) for h in heads]
    return heads


def run_once(executor: str, seed: int, track: bool) -> float:
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(home=Path(tmp) / "home", env={"MESHOPS_USER": "bench"})
        home = Home(settings)
        service = PipelinesService(home.context())
        began = time.perf_counter()
        detail = service.run(wide, {"steps": 1000, "seed": seed}, executor, track=track)
        elapsed = time.perf_counter() - began
        assert detail.run.status.value == "succeeded", detail.run.error
        assert len(detail.steps) == 1000
        home.close()
        return elapsed


def plan_once(steps: int) -> float:
    began = time.perf_counter()
    planned = plan(wide.build({"steps": steps}))
    elapsed = time.perf_counter() - began
    assert len(planned.order) == steps
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    rows = []
    for executor in ("inline", "process"):
        times = [run_once(executor, seed, track=False) for seed in range(args.repeat)]
        per_step_ms = median(times) / 1000 * 1000
        rows.append(
            Row(
                f"1,000 trivial steps, {executor} executor (ms per step)",
                per_step_ms,
                None,
                "ms",
                higher_is_better=False,
                goal="< 2 ms",
            )
        )
    tracked = [run_once("inline", 100 + s, track=True) for s in range(args.repeat)]
    rows.append(
        Row(
            "same, inline, plus a tracking run tree (1 parent + 1,000 child runs)",
            median(tracked),
            None,
            "ms",
            higher_is_better=False,
            goal="(informative)",
        )
    )
    rows[-1].meshops = median(tracked) / 1000 * 1000
    plans = [plan_once(10_000) for _ in range(args.repeat)]
    rows.append(
        Row(
            "build + plan a 10,000-step DAG (s)",
            median(plans),
            None,
            "s",
            higher_is_better=False,
            goal="< 1 s",
        )
    )
    record("B9", "B9 pipeline overhead", "python benchmarks/b9_pipeline_overhead.py", "—", rows)


if __name__ == "__main__":
    main()
