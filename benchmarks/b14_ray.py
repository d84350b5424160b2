"""B14 (Ray half): batch scoring of a 10M-row data product on Ray Data (2 local workers)
against the single-process scoring, same model, same input, same published output.

The input is published as a product; each engine runs `platform.serving.batch_score`
end to end (governed read, scoring, contract test and publish of the predictions), and the
scoring stage alone is timed too (`batch.score_table` in this process against the same
function with the Ray predictor). The outputs are compared by checksum. The local Ray
(num_cpus=2) is started once, before the timings; its start-up is reported apart.

    .venv/bin/python benchmarks/b14_ray.py [--rows 10000000] [--block-rows 500000]
        [--workers 2] [--repeat 1]
"""

from __future__ import annotations

import argparse
import hashlib
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Row, median, record

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FEATURES = ["tenure", "spend", "calls", "age"]


def input_table(rows: int) -> pa.Table:
    rng = np.random.default_rng(14)
    columns: dict[str, Any] = {"customer_id": pa.array(np.arange(rows, dtype=np.int64))}
    columns.update({f: rng.normal(size=rows) for f in FEATURES})
    return pa.table(columns)


def checksum(table: pa.Table) -> str:
    """Of the rows in customer_id order (both engines keep the input's order)."""
    ordered = table.sort_by("customer_id")
    digest = hashlib.sha256()
    for column in ordered.columns:
        for chunk in column.chunks:
            for buffer in chunk.buffers():
                if buffer is not None:
                    digest.update(memoryview(buffer))
    return digest.hexdigest()


def fitted(kind: str) -> Any:
    """The model scored: a random forest (20 trees of depth 8, one thread: about 1 µs of
    work per row and tree), or a logistic regression (almost no work per row)."""
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression

    if kind == "linear":
        return LogisticRegression()
    return RandomForestClassifier(n_estimators=20, max_depth=8, n_jobs=1, random_state=0)


def prepare(platform: Any, rows: int, kind: str) -> None:
    from tests.features.helpers import publish

    rng = np.random.default_rng(0)
    frame = input_table(2000).select(FEATURES).to_pandas()
    model = fitted(kind).fit(frame, (frame["tenure"] + rng.normal(size=2000)) > 0)
    platform.registry.create_model("churn", domain="sales")
    platform.registry.log_model("churn", model, input_example=frame.head(5))
    started = time.perf_counter()
    publish(platform, "sales.customers", "1.0.0", input_table(rows))
    publish(platform, "sales.few", "1.0.0", input_table(1000))
    print(f"[b14-ray] input published: {rows:,} rows in {time.perf_counter() - started:.1f} s")


def scoring_stage(
    platform: Any, engine: str, block_rows: int, workers: int, product: str = "sales.customers"
) -> float:
    from meshops.serving import ray_batch
    from meshops.serving.batch import score_table

    model = platform.registry.load_model("models:/churn/1")
    table = platform.mesh.read(product, "1.0.0")
    started = time.perf_counter()
    if engine == "local":
        score_table(model, table, ["customer_id"])
    else:
        ctx = platform.home.context()
        package = ray_batch.model_package(ctx, model.version, False)
        options = ray_batch.RayScoring(None, block_rows, workers)
        score_table(
            model,
            table,
            ["customer_id"],
            predict=lambda names: ray_batch.predict_on_ray(model, package, table, names, options),
        )
    return time.perf_counter() - started


def end_to_end(platform: Any, engine: str, block_rows: int, workers: int, run: int) -> float:
    extra: dict[str, Any] = {"engine": "ray", "block_rows": block_rows, "workers": workers}
    started = time.perf_counter()
    platform.serving.batch_score(
        "churn/1",
        "sales.customers",
        "1.0.0",
        output=f"sales.scores_{engine}_{run}",
        keep_columns=["customer_id"],
        **(extra if engine == "ray" else {}),
    )
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--block-rows", type=int, default=500_000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--repeat", type=int, default=1)
    parser.add_argument("--model", choices=["forest", "linear"], default="forest")
    args = parser.parse_args()

    import ray

    from meshops.client import Platform
    from meshops.kernel.config import load_settings
    from meshops.kernel.home import Home

    started = time.perf_counter()
    ray.init(num_cpus=args.workers, include_dashboard=False, log_to_driver=False)
    ray_start = time.perf_counter() - started
    with tempfile.TemporaryDirectory(prefix="b14-ray-") as tmp:
        home = Path(tmp) / "home"
        settings = load_settings(home=home, env={"MESHOPS_USER": "bench"})
        platform = Platform(settings, home=Home(settings))
        try:
            prepare(platform, args.rows, args.model)
            times: dict[str, list[float]] = {"local": [], "ray": [], "local-e2e": [], "ray-e2e": []}
            for run in range(args.repeat):
                for engine in ("local", "ray"):  # alternating, as the harness asks
                    stage = scoring_stage(platform, engine, args.block_rows, args.workers)
                    times[engine].append(stage)
                    e2e = end_to_end(platform, engine, args.block_rows, args.workers, run)
                    times[f"{engine}-e2e"].append(e2e)
                    print(f"[b14-ray] {engine}: scoring {stage:.1f} s, end to end {e2e:.1f} s")
            # What Ray costs whatever the size: the actor pool's start and model loads.
            fixed = scoring_stage(platform, "ray", args.block_rows, args.workers, "sales.few")
            local = platform.mesh.read("sales.scores_local_0", "1.0.0")
            on_ray = platform.mesh.read("sales.scores_ray_0", "1.0.0")
            same = checksum(local) == checksum(on_ray) and local.schema == on_ray.schema
        finally:
            platform.close()
    ray.shutdown()
    if not same:
        raise SystemExit("the Ray output differs from the single-process output")
    rows_m = args.rows / 1e6
    load = os.getloadavg()[0]
    record(
        "B14-ray",
        f"batch scoring {args.rows:,} rows ({args.model} model) on Ray Data "
        f"({args.workers} local workers, "
        f"blocks of {args.block_rows:,} rows) vs one process; outputs equal (checksum); "
        f"local Ray start {ray_start:.1f} s not included; 1-min load average {load:.1f}",
        f".venv/bin/python benchmarks/b14_ray.py --rows {args.rows} "
        f"--block-rows {args.block_rows} --workers {args.workers} --repeat {args.repeat} "
        f"--model {args.model}",
        "single process",
        [
            Row("scoring stage", median(times["ray"]), median(times["local"]), "s", False),
            Row(
                "scoring throughput",
                rows_m / median(times["ray"]),
                rows_m / median(times["local"]),
                "M rows/s",
            ),
            Row(
                "batch_score end to end (read, score, test, publish)",
                median(times["ray-e2e"]),
                median(times["local-e2e"]),
                "s",
                False,
            ),
            Row(
                "Ray's fixed cost: scoring 1,000 rows (pool start, model loads)",
                fixed,
                None,
                "s",
                False,
            ),
        ],
    )


if __name__ == "__main__":
    main()
