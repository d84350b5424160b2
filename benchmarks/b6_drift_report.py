"""B6: drift report of N reference × N current rows × 50 columns (30 numeric, 20
categorical) — meshops vs Evidently DataDriftPreset, same tests, same verdicts.

    .venv/bin/python -m benchmarks.b6_drift_report [--rows 1000000] [--repeats 3]

Data is generated with a fixed seed (some columns drifted, some barely shifted, a few
numeric columns with at most 5 values so every default test is exercised) and written
to Parquet once; both sides time only the drift computation on data already in memory.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks import harness

NUMERIC, CATEGORICAL = 30, 20
EVIDENTLY_METHOD_NAMES = {
    "ks": "K-S p_value",
    "chisquare": "chi-square p_value",
    "z": "Z-test p_value",
    "wasserstein": "Wasserstein distance (normed)",
    "jensenshannon": "Jensen-Shannon distance",
    "psi": "PSI",
}


def generate(rows: int, seed: int, drifted: bool) -> pa.Table:
    """Reference (drifted=False) or current (drifted=True) data; column i's drift is fixed."""
    rng = np.random.default_rng(seed)
    columns: dict[str, object] = {}
    for i in range(NUMERIC):
        shift = 0.0
        if drifted and i % 5 == 0:
            shift = 0.4  # clearly drifted
        elif drifted and i % 5 == 1:
            shift = 0.03  # a small shift, under the 0.1 Wasserstein threshold
        if i % 10 == 9:  # few distinct values: Evidently treats these as categorical
            p = [0.5, 0.3, 0.2] if shift < 0.1 else [0.3, 0.3, 0.4]
            columns[f"n{i:02d}"] = rng.choice(3, rows, p=p).astype(np.float64)
        elif i % 3 == 0:
            columns[f"n{i:02d}"] = rng.lognormal(shift, 0.7, rows)
        else:
            columns[f"n{i:02d}"] = rng.normal(100 + 10 * shift, 10, rows)
    for j in range(CATEGORICAL):
        k = 3 + 2 * j
        labels = np.array([f"v{x}" for x in range(k)])
        weights = np.linspace(1.0, 2.0, k)
        if drifted and j % 4 == 0:
            weights = weights[::-1] ** 2
        columns[f"c{j:02d}"] = labels[rng.choice(k, rows, p=weights / weights.sum())]
    return pa.table(columns)


def data_files(rows: int) -> tuple[Path, Path]:
    harness.DATA_DIR.mkdir(parents=True, exist_ok=True)
    paths = (
        harness.DATA_DIR / f"b6_{rows}_reference.parquet",
        harness.DATA_DIR / f"b6_{rows}_current.parquet",
    )
    if not all(p.exists() for p in paths):
        pq.write_table(generate(rows, 6, drifted=False), paths[0])
        pq.write_table(generate(rows, 7, drifted=True), paths[1])
    return paths


def meshops_drift(reference: pa.Table, current: pa.Table) -> dict[str, dict[str, object]]:
    from meshops.monitoring.models import MonitorSpec
    from meshops.monitoring.monitors import compare_tables

    spec = MonitorSpec(name="b6", kind="data_drift")
    drift = compare_tables(spec, reference, current)
    return {
        c.feature: {"method": c.method, "score": c.score, "drifted": c.drifted, "exact": c.exact}
        for c in drift.columns
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--peer-repeats", type=int, default=1)
    args = parser.parse_args()

    ref_path, cur_path = data_files(args.rows)
    reference, current = pq.read_table(ref_path), pq.read_table(cur_path)
    columns = {
        "numeric": [f"n{i:02d}" for i in range(NUMERIC)],
        "categorical": [f"c{j:02d}" for j in range(CATEGORICAL)],
    }
    python = harness.peer_python("evidently", ["evidently", "pandas<3"])
    script = harness.HERE / "peers" / "evidently_drift.py"

    ours: list[float] = []
    theirs: list[float] = []
    verdicts: dict[str, dict[str, object]] = {}
    peer: dict[str, object] = {}
    for attempt in range(max(args.repeats, args.peer_repeats)):
        if attempt < args.repeats:
            ours.append(harness.timed(lambda: verdicts.update(meshops_drift(reference, current))))
        if attempt < args.peer_repeats:
            peer = harness.run_peer(
                python, script, str(ref_path), str(cur_path), json.dumps(columns)
            )
            theirs.append(float(peer["seconds"]))  # type: ignore[arg-type]

    peer_columns: dict[str, dict[str, object]] = peer["columns"]  # type: ignore[assignment]
    disagreements = []
    for name, mine in verdicts.items():
        other = peer_columns[name]
        same_method = EVIDENTLY_METHOD_NAMES[str(mine["method"])] == other["method"]
        if mine["drifted"] != other["drifted"] or not same_method:
            disagreements.append((name, mine, other))
    drifted = sorted(n for n, v in verdicts.items() if v["drifted"])
    print(f"drifted columns ({len(drifted)}): {', '.join(drifted)}")
    for name, mine, other in disagreements:
        print(f"DISAGREE {name}: meshops {mine} evidently {other}")
    size = f"{args.rows:,} × {args.rows:,} rows × 50 columns"
    rows = [
        harness.Row(
            f"drift report, {size} (wall s, median)",
            harness.median(ours),
            harness.median(theirs),
            "s",
            higher_is_better=False,
            goal="≥ 20×",
        ),
        harness.Row(
            f"columns with the same test and verdict (of {len(verdicts)})",
            float(len(verdicts) - len(disagreements)),
            float(len(verdicts)),
            "columns",
            goal="all",
        ),
    ]
    bench_id = "B6" if args.rows == 1_000_000 else f"B6-{args.rows}"
    harness.record(
        bench_id,
        "drift report vs Evidently DataDriftPreset",
        f".venv/bin/python -m benchmarks.b6_drift_report --rows {args.rows}",
        "Evidently DataDriftPreset",
        rows,
    )


if __name__ == "__main__":
    main()
