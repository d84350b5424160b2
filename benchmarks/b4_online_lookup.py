"""B4: online feature lookup, 1 and 100 entities x 20 features: embedded SDK and over HTTP
(`POST /v1/features/online` at a paced 500 req/s), vs Feast `get_online_features` with its
SQLite online store on the same data (peer venv).

    .venv/bin/python benchmarks/b4_online_lookup.py [--entities 100000] [--calls 3000]
        [--rate 500] [--seconds 10] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import shutil
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from b1_metric_logging import meshops_server
from harness import DATA_DIR, HERE, Row, median, peer_python, percentile, record, run_peer

FEATURES, TTL_DAYS = 20, 7
NAMES = [f"f{j}" for j in range(FEATURES)]
REFS = [f"view0:{n}" for n in NAMES]


def generate(folder: Path, entities: int) -> Path:
    """One row per entity within the last day (fresh for the 7-day TTL)."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "view0.parquet"
    rng = np.random.default_rng(4)
    now_us = int(datetime.now(UTC).timestamp() * 1e6)
    columns: dict[str, Any] = {
        "entity_id": np.arange(entities, dtype=np.int64),
        "event_timestamp": pa.array(
            now_us - rng.integers(0, 86_400_000_000, entities), pa.timestamp("us", tz="UTC")
        ),
    }
    for name in NAMES:
        columns[name] = rng.random(entities)
    pq.write_table(pa.table(columns), path)
    return path


def setup_meshops(home: Path, path: Path) -> Any:
    from meshops.client import connect
    from meshops.features.models import Entity, Feature, FeatureRepo, FeatureView, SourceRef

    platform = connect(home=home)
    properties = [
        {"name": "entity_id", "logicalType": "integer"},
        {"name": "event_timestamp", "logicalType": "timestamp"},
    ] + [{"name": n, "logicalType": "number"} for n in NAMES]
    platform.mesh.publish_arrow(
        {"apiVersion": "v1.0.0", "kind": "DataProduct", "id": "bench.online", "name": "online",
         "domain": "bench", "version": "1.0.0", "status": "active",
                 "description": {"purpose": "benchmark data"},
                 "team": {"members": [{"username": "bench", "role": "owner"}]},
         "outputPorts": [{"name": "main", "version": "1.0.0", "contractId": "c"}]},
        {"main": {"apiVersion": "v3.0.2", "kind": "DataContract", "id": "c", "version": "1.0.0",
                  "status": "active", "schema": [{"name": "main", "properties": properties}]}},
        {"main": pq.read_table(path)},
    )  # fmt: skip
    view = FeatureView(
        name="view0", entities=["entity"], source=SourceRef(product="bench.online"),
        event_time="event_timestamp", ttl_seconds=TTL_DAYS * 86_400,
        features=[Feature(name=n, type="float64") for n in NAMES],
    )  # fmt: skip
    platform.features.apply(
        FeatureRepo(entities=[Entity(name="entity", join_keys=["entity_id"])], feature_views=[view])
    )
    platform.features.materialize()
    return platform


def embedded(platform: Any, entities: int, calls: int, size: int, seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    times = []
    for _ in range(calls):
        rows = [{"entity_id": int(k)} for k in rng.integers(0, entities, size)]
        start = time.perf_counter()
        result = platform.features.online(rows, REFS)
        times.append(time.perf_counter() - start)
        assert result.rows[0].status == "ok"
    kept = times[len(times) // 10 :]  # first 10%: warm-up
    return {"p50": percentile(kept, 50) * 1000, "p99": percentile(kept, 99) * 1000}


async def paced_http(
    url: str, token: str, entities: int, rate: int, seconds: float
) -> dict[str, float]:
    """Open-loop load: one 1-entity request every 1/rate s for `seconds`; the latency of
    each (queueing included when the server falls behind), timeouts after 5 s."""
    import httpx

    rng = np.random.default_rng(5)
    total = int(rate * seconds)
    headers = {"authorization": f"Bearer {token}"}
    latencies: list[float] = []
    failed = 0
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    async with httpx.AsyncClient(
        base_url=url, headers=headers, limits=limits, timeout=5.0
    ) as client:

        async def one(i: int) -> None:
            nonlocal failed
            await asyncio.sleep(max(0.0, start + i / rate - time.perf_counter()))
            body = {"entity_rows": [{"entity_id": int(rng.integers(0, entities))}],
                    "features": REFS}  # fmt: skip
            sent = time.perf_counter()
            try:
                response = await client.post("/v1/features/online", json=body)
            except httpx.HTTPError:
                failed += 1
                return
            latencies.append(time.perf_counter() - sent)
            if response.status_code != 200:
                failed += 1

        warm = {"entity_rows": [{"entity_id": 1}], "features": REFS}
        for _ in range(100):
            await client.post("/v1/features/online", json=warm)
        start = time.perf_counter()
        await asyncio.gather(*(one(i) for i in range(total)))
        elapsed = time.perf_counter() - start
    return {
        "p50": percentile(latencies, 50) * 1000,
        "p99": percentile(latencies, 99) * 1000,
        "rate": len(latencies) / elapsed,
        "failed": float(failed),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    folder = DATA_DIR / f"b4_e{args.entities}"
    shutil.rmtree(folder, ignore_errors=True)
    path = generate(folder, args.entities)
    platform = setup_meshops(folder / "home", path)
    feast_python = peer_python("feast", ["feast"])
    mesh_one, mesh_hundred, feast_runs = [], [], []
    for round_ in range(args.rounds):
        mesh_one.append(embedded(platform, args.entities, args.calls, 1, round_))
        mesh_hundred.append(embedded(platform, args.entities, args.calls // 5, 100, round_))
        work = folder / f"feast{round_}"
        feast_runs.append(run_peer(
            feast_python, HERE / "peers" / "feast_b4.py", str(work), str(path), str(TTL_DAYS),
            str(args.calls), str(args.calls // 5),
        ))  # fmt: skip
        print(f"[b4] round {round_}: meshops 1={mesh_one[-1]} 100={mesh_hundred[-1]} "
              f"feast={feast_runs[-1]}", flush=True)  # fmt: skip
    platform.close()
    with meshops_server(folder / "home") as (url, token):
        http = asyncio.run(paced_http(url, token, args.entities, args.rate, args.seconds))
        light = asyncio.run(paced_http(url, token, args.entities, args.rate // 5, args.seconds))
    print(f"[b4] http: {http} at {args.rate // 5}/s: {light}", flush=True)

    def med(runs: list[Any], key: str, sub: str | None = None) -> float:
        return median([float(r[sub][key]) if sub else float(r[key]) for r in runs])

    rows = [
        Row("embedded, 1 entity × 20 features: p50", med(mesh_one, "p50"),
            med(feast_runs, "p50", "one"), "ms", higher_is_better=False, goal="≥ 5× Feast"),
        Row("embedded, 1 entity × 20 features: p99", med(mesh_one, "p99"),
            med(feast_runs, "p99", "one"), "ms", higher_is_better=False, goal="< 1 ms"),
        Row("embedded, 100 entities × 20 features: p50", med(mesh_hundred, "p50"),
            med(feast_runs, "p50", "hundred"), "ms", higher_is_better=False, goal="≥ 5× Feast"),
        Row("embedded, 100 entities × 20 features: p99", med(mesh_hundred, "p99"),
            med(feast_runs, "p99", "hundred"), "ms", higher_is_better=False),
        Row(f"HTTP, 1 entity, {args.rate} req/s offered (served {http['rate']:.0f}/s, "
            f"{http['failed']:.0f} failed): p99", http["p99"], None, "ms",
            higher_is_better=False, goal="< 5 ms"),
        Row(f"HTTP, 1 entity, {args.rate} req/s offered: p50", http["p50"], None, "ms",
            higher_is_better=False),
        Row(f"HTTP, 1 entity, {args.rate // 5} req/s offered (served {light['rate']:.0f}/s): "
            "p99", light["p99"], None, "ms", higher_is_better=False),
        Row(f"HTTP, 1 entity, {args.rate // 5} req/s offered: p50", light["p50"], None, "ms",
            higher_is_better=False),
    ]  # fmt: skip
    record(
        "B4",
        "online feature lookup (peer: Feast get_online_features, SQLite online store, embedded)",
        "python benchmarks/b4_online_lookup.py " + " ".join(sys.argv[1:]),
        "Feast",
        rows,
    )


if __name__ == "__main__":
    main()
