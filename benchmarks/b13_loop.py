"""B13: the feedback loop at the demo's full scale. From the moment drifted traffic reaches
the endpoint to the retrained champion answering requests: the traffic over HTTP, the drift
monitor's alert, the trigger starting the training pipeline on a worker, training with the
champion/challenger comparison and the gated alias move, and the endpoint serving the new
version. Each stage's share is reported.

Run: .venv/bin/python benchmarks/b13_loop.py [--repeat 1] [--scale full]
"""

from __future__ import annotations

import argparse
import io
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from rich.console import Console

from benchmarks.harness import Row, median, record
from meshops.demo.run import DemoResult, run_demo

GOAL_SECONDS = 60.0


def loop_stages(result: DemoResult) -> dict[str, float]:
    """The loop's stages in order, in seconds (the demo's own timings)."""
    trigger = result.parts["retrain.trigger"]
    return {
        "drifted traffic over HTTP": result.parts["drift.traffic"],
        "drift monitor -> alert": result.timings["alert"],
        "alert -> training run started (trigger, worker)": trigger,
        "training, comparison, gate, alias move": result.timings["retrain"] - trigger,
        "endpoint serves the new champion": result.timings["verify"],
    }


def run_once(scale: str, seed: int) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as tmp:
        quiet = Console(file=io.StringIO(), width=120)
        result = run_demo(Path(tmp) / "home", seed=seed, scale=scale, console=quiet)
        if result.served_after is None or result.served_after < 2:
            raise SystemExit(f"the loop did not close: endpoint serves v{result.served_after}")
        return loop_stages(result)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--scale", default="full")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    runs = [run_once(args.scale, args.seed + i) for i in range(args.repeat)]
    totals = [sum(r.values()) for r in runs]
    typical = runs[totals.index(sorted(totals)[len(totals) // 2])]
    total = sum(typical.values())
    rows = [
        Row(
            f"{stage} ({100 * seconds / total:.0f}% of the loop)",
            seconds,
            None,
            "s",
            higher_is_better=False,
            goal="(share)",
        )
        for stage, seconds in typical.items()
    ]
    rows.append(
        Row(
            f"the loop, drifted traffic to the new champion answering (median of {args.repeat})",
            median(totals),
            None,
            "s",
            higher_is_better=False,
            goal=f"< {GOAL_SECONDS:.0f} s",
        )
    )
    command = f"python benchmarks/b13_loop.py --repeat {args.repeat} --scale {args.scale}"
    record("B13", "the feedback loop at the demo's full scale", command, "—", rows)


if __name__ == "__main__":
    main()
