"""B2: search 100k runs (10 params, 10 metrics each) by a metric and a param filter, ordered
by a metric, top 100: p95 latency of meshops (SDK over HTTP, and embedded) vs MLflow
`search_runs` against `mlflow server`, on the same generated data (seed 42).

Both stores are populated with bulk INSERTs into their own schemas (meshops: the tracking
tables through SQLAlchemy Core; MLflow: see peers/mlflow_b2.py), not through 100k API calls.

    .venv/bin/python benchmarks/b2_search_runs.py [--runs 100000] [--repeats 30] [--skip-peer]

`--skip-peer` times meshops only (quick iteration; nothing is recorded in RESULTS.md) unless
`--kept-peer-ms` gives MLflow's p95 from an earlier full run, recorded as such.

MLflow took minutes per search at 100k runs here (see RESULTS.md), so it runs `--mlflow-repeats`
searches per round (its p95 over few samples is close to its max).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from b1_metric_logging import meshops_server, mlflow_server
from harness import HERE, Row, peer_python, percentile, record, run_peer

FILTER = "metrics.m1 < 0.5 and params.p2 = 'v3'"
ORDER = ["metrics.m0 DESC"]


def populate_meshops(home: Path, count: int) -> None:
    from meshops.client import connect
    from meshops.tracking import store

    with connect(home=home) as platform:
        experiment = platform.tracking.create_experiment("b2")
        assert platform.home is not None
        metrics = np.random.default_rng(42).random((count, 10))
        start = datetime.now(UTC)
        with platform.home.db.begin() as conn:
            conn.execute(
                store.runs.insert(),
                [
                    {
                        "id": f"{i:032x}",
                        "experiment_id": experiment.id,
                        "name": f"r{i}",
                        "status": "FINISHED",
                        "user": "bench",
                        "start_time": start + timedelta(milliseconds=i),
                        "end_time": start + timedelta(milliseconds=i + 1),
                        "parent_run_id": None,
                        "error": None,
                    }
                    for i in range(count)
                ],
            )
            conn.execute(
                store.params.insert(),
                [
                    {"run_id": f"{i:032x}", "key": f"p{j}", "value": f"v{(i * 7 + j) % 10}"}
                    for i in range(count)
                    for j in range(10)
                ],
            )
            conn.execute(
                store.latest_metrics.insert(),
                [
                    {
                        "run_id": f"{i:032x}",
                        "key": f"m{j}",
                        "value": float(metrics[i, j]),
                        "step": 0,
                        "timestamp": 0.0,
                    }
                    for i in range(count)
                    for j in range(10)
                ],
            )


def time_search(platform: object, repeats: int) -> tuple[list[float], int]:
    tracking = platform.tracking  # type: ignore[attr-defined]
    latencies, found = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        page = tracking.search_runs(["b2"], FILTER, ORDER, 100)
        latencies.append(time.perf_counter() - start)
        found = len(page.runs)
    return latencies, found


def meshops_only(count: int, repeats: int, rounds: int) -> tuple[list[float], list[float]]:
    from meshops.client import connect

    http_lat: list[float] = []
    emb_lat: list[float] = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        home = Path(tmp_dir) / "home"
        populate_meshops(home, count)
        with meshops_server(home) as (uri, token):
            for _ in range(rounds):
                with connect(uri, token=token) as remote:
                    http_lat += time_search(remote, repeats)[0]
                with connect(home=home) as embedded:
                    lat, found = time_search(embedded, repeats)
                    emb_lat += lat
    print(
        f"meshops only ({found} runs found): p95 http {percentile(http_lat, 95) * 1000:.1f} ms, "
        f"embedded {percentile(emb_lat, 95) * 1000:.1f} ms; "
        f"p50 http {percentile(http_lat, 50) * 1000:.1f} ms, "
        f"embedded {percentile(emb_lat, 50) * 1000:.1f} ms"
    )
    return http_lat, emb_lat


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--mlflow-repeats", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--skip-peer", action="store_true", help="meshops only")
    parser.add_argument("--kept-peer-ms", type=float, help="with --skip-peer: record this")
    args = parser.parse_args()
    if args.skip_peer:
        http_lat, emb_lat = meshops_only(args.runs, args.repeats, args.rounds)
        if args.kept_peer_ms:
            record_rows(args, http_lat, emb_lat, args.kept_peer_ms, kept=True)
        return
    from meshops.client import connect

    python = peer_python("mlflow", ["mlflow"])
    http_lat: list[float] = []
    emb_lat: list[float] = []
    peer_lat: list[float] = []
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        home, mlflow_db = tmp / "home", tmp / "mlflow.db"
        populate_meshops(home, args.runs)
        run_peer(
            python, HERE / "peers" / "mlflow_b2.py", "populate", str(mlflow_db), str(args.runs)
        )
        with meshops_server(home) as (uri, token), mlflow_server(python, mlflow_db) as m_uri:
            for _ in range(args.rounds):
                with connect(uri, token=token) as remote:
                    lat, found = time_search(remote, args.repeats)
                    http_lat += lat
                with connect(home=home) as embedded:
                    lat, found_emb = time_search(embedded, args.repeats)
                    emb_lat += lat
                print(
                    f"meshops p95 so far: http {percentile(http_lat, 95) * 1000:.1f} ms, "
                    f"embedded {percentile(emb_lat, 95) * 1000:.1f} ms ({found} runs)",
                    flush=True,
                )
                peer = run_peer(
                    python,
                    HERE / "peers" / "mlflow_b2.py",
                    "search",
                    m_uri,
                    str(args.mlflow_repeats),
                )
                peer_lat += [float(x) for x in peer["latencies_s"]]  # type: ignore[attr-defined]
                print(
                    f"found meshops={found}/{found_emb} mlflow={peer['found']}; "
                    f"p95 http={percentile(http_lat, 95) * 1000:.1f} ms "
                    f"embedded={percentile(emb_lat, 95) * 1000:.1f} ms "
                    f"mlflow={percentile(peer_lat, 95) * 1000:.1f} ms",
                    flush=True,
                )
    record_rows(args, http_lat, emb_lat, percentile(peer_lat, 95) * 1000, kept=False)


def record_rows(
    args: argparse.Namespace,
    http_lat: list[float],
    emb_lat: list[float],
    mlflow_p95: float,
    *,
    kept: bool,
) -> None:
    rows = [
        Row(
            f"search {args.runs:,} runs, p95, SDK over HTTP",
            percentile(http_lat, 95) * 1000,
            mlflow_p95,
            "ms",
            higher_is_better=False,
            goal="< 100 ms, ≥ 20×",
        ),
        Row(
            f"search {args.runs:,} runs, p95, embedded SDK",
            percentile(emb_lat, 95) * 1000,
            mlflow_p95,
            "ms",
            higher_is_better=False,
            goal="< 100 ms",
        ),
    ]
    peer = "MLflow 3 server (SQLite)"
    command = "make bench or .venv/bin/python benchmarks/b2_search_runs.py"
    if kept:
        peer += ", p95 kept from an earlier full run (not re-run)"
        command = (
            f".venv/bin/python benchmarks/b2_search_runs.py --skip-peer "
            f"--kept-peer-ms {mlflow_p95:.0f} --repeats {args.repeats} --rounds {args.rounds}"
        )
    record(
        "B2",
        f"search_runs `{FILTER}` order by {ORDER[0]}, top 100",
        command,
        peer,
        rows,
    )


if __name__ == "__main__":
    main()
