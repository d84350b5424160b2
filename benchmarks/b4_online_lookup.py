"""B4: online feature lookup, 1 and 100 entities x 20 features: embedded SDK and over HTTP
(`POST /v1/features/online` at a paced 500 req/s against `meshops server --workers N`), vs
Feast `get_online_features` with its SQLite online store on the same data (peer venv).

The HTTP load generator runs in its own process on the same cores as the server; it is a
minimal open-loop client (prepared request bytes on uvloop streams) so that it takes little
of them, and it reports the rate it offered next to the rate served.

    .venv/bin/python benchmarks/b4_online_lookup.py [--entities 100000] [--calls 3000]
        [--rate 500] [--seconds 5] [--rounds 2] [--workers 2] [--http-only]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import resource
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from b1_metric_logging import MESHOPS, _wait_http, free_port_number, stop_group
from harness import DATA_DIR, HERE, Row, median, peer_python, percentile, record, run_peer

FEATURES, TTL_DAYS = 20, 7
NAMES = [f"f{j}" for j in range(FEATURES)]
REFS = [f"view0:{n}" for n in NAMES]
REFS_JSON = json.dumps(REFS, separators=(",", ":"))
MAX_CONNECTIONS = 64
WARM_UP = 200


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


@contextmanager
def meshops_server(home: Path, workers: int) -> Iterator[tuple[str, str, int]]:
    """`meshops server --workers N` on a served home, with an API token for the benchmark;
    yields the URL, the token and the server's process group (its workers included)."""
    from meshops.client import connect

    with connect(home=home) as owner:
        token = owner.governance.create_token("bench").token
    port = free_port_number()
    env = {**os.environ, "MESHOPS_HOME": str(home)}
    env.pop("MESHOPS_URI", None)
    proc = subprocess.Popen(
        [str(MESHOPS), "server", "--port", str(port), "--workers", str(workers)],
        env=env, stdout=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/healthz", proc)
        yield url, token, proc.pid
    finally:
        stop_group(proc)


def group_cpu_seconds(group: int) -> float:
    """CPU time (user + system) used so far by the processes of a process group (Linux)."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rpartition(")")[2].split()
        except OSError:  # the process ended meanwhile
            continue
        if int(fields[2]) == group:  # fields from "state": state, ppid, pgrp, ...
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


class _Connection:
    """One keep-alive HTTP/1.1 connection that sends prepared request bytes and reads the
    reply (status line, Content-Length body). The load generator shares the machine's cores
    with the server, so it must cost as little CPU per request as possible: no client
    library objects per request, just bytes on asyncio streams (uvloop)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def call(self, request: bytes) -> int:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        length = 0
        for line in head.split(b"\r\n"):
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
        await self.reader.readexactly(length)
        return int(head[9:12])


def _request(host: str, token: str, entity_id: int) -> bytes:
    body = b'{"entity_rows":[{"entity_id":%d}],"features":%s}' % (entity_id, REFS_JSON.encode())
    return (
        b"POST /v1/features/online HTTP/1.1\r\nhost: %s\r\nauthorization: Bearer %s\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
    ) % (host.encode(), token.encode(), len(body), body)


async def paced_http(
    url: str, token: str, entities: int, rate: int, seconds: float
) -> dict[str, float]:
    """Open-loop load: one 1-entity request due every 1/rate s for `seconds`, on up to 64
    keep-alive connections (a new one opens when all are busy). Latency runs from the time
    a request was due, so time spent waiting for a connection or in the server's queue
    counts (no coordinated omission); requests that fail or take over 5 s count as failed."""
    host, _, port = url.removeprefix("http://").partition(":")
    rng = np.random.default_rng(5)
    keys = rng.integers(0, entities, int(rate * seconds)).tolist()
    idle: list[_Connection] = []
    opened = 0
    latencies: list[float] = []
    failed = 0

    async def connection() -> _Connection | None:
        nonlocal opened
        if idle:
            return idle.pop()
        if opened >= MAX_CONNECTIONS:
            return None
        opened += 1
        return _Connection(*await asyncio.open_connection(host, int(port)))

    async def one(due: float, key: int) -> None:
        nonlocal failed, opened
        conn = await connection()
        while conn is None:  # every connection busy: wait for one (the clock runs)
            await asyncio.sleep(0.0005)
            conn = await connection()
        try:
            status = await asyncio.wait_for(conn.call(_request(host, token, key)), 5.0)
        except (OSError, TimeoutError, asyncio.IncompleteReadError):
            failed += 1
            opened -= 1
            conn.writer.close()
            return
        latencies.append(time.perf_counter() - due)
        idle.append(conn)
        if status != 200:
            failed += 1

    for _ in range(WARM_UP):  # connections, caches, the server's first requests
        await one(time.perf_counter(), 1)
    latencies.clear()
    failed = 0
    pending = set()
    start = time.perf_counter()
    for i, key in enumerate(keys):
        due = start + i / rate
        delay = due - time.perf_counter()
        if delay > 0:
            await asyncio.sleep(delay)
        task = asyncio.create_task(one(due, key))
        pending.add(task)
        task.add_done_callback(pending.discard)
    offered_for = time.perf_counter() - start
    while pending:
        await asyncio.wait(set(pending))
    elapsed = time.perf_counter() - start
    for conn in idle:
        conn.writer.close()
    return {
        "p50": percentile(latencies, 50) * 1000,
        "p99": percentile(latencies, 99) * 1000,
        "offered": len(keys) / offered_for,
        "rate": len(latencies) / elapsed,
        "failed": float(failed),
        "connections": float(opened),
        "requests": float(len(keys) + WARM_UP),
    }


def loadgen_process(
    url: str, token: str, *, group: int, entities: int, rate: int, seconds: float
) -> Any:
    """Run the load generator in its own process (uvloop), as a user's clients would be;
    adds the CPU the server (all workers) and the load generator (its start included) used
    per request, from the kernel's accounting."""
    server_before = group_cpu_seconds(group)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [sys.executable, __file__, "--loadgen", url, token, str(entities), str(rate),
         str(seconds)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    server = group_cpu_seconds(group) - server_before
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    client = after.ru_utime + after.ru_stime - children.ru_utime - children.ru_stime
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    requests = result["requests"]
    result["server_cpu_ms"] = server / requests * 1000
    result["loadgen_cpu_ms"] = client / requests * 1000
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--http-only", action="store_true", help="skip embedded and Feast")
    parser.add_argument("--loadgen", nargs=5, metavar=("URL", "TOKEN", "N", "RATE", "S"))
    args = parser.parse_args()
    if args.loadgen:
        import uvloop

        url, token, entities, rate, seconds = args.loadgen
        result = uvloop.run(paced_http(url, token, int(entities), int(rate), float(seconds)))
        print(json.dumps(result))
        return
    folder = DATA_DIR / f"b4_e{args.entities}"
    shutil.rmtree(folder, ignore_errors=True)
    path = generate(folder, args.entities)
    platform = setup_meshops(folder / "home", path)
    mesh_one, mesh_hundred, feast_runs = [], [], []
    for round_ in range(0 if args.http_only else args.rounds):
        mesh_one.append(embedded(platform, args.entities, args.calls, 1, round_))
        mesh_hundred.append(embedded(platform, args.entities, args.calls // 5, 100, round_))
        work = folder / f"feast{round_}"
        feast_runs.append(run_peer(
            peer_python("feast", ["feast"]), HERE / "peers" / "feast_b4.py", str(work),
            str(path), str(TTL_DAYS), str(args.calls), str(args.calls // 5),
        ))  # fmt: skip
        print(f"[b4] round {round_}: meshops 1={mesh_one[-1]} 100={mesh_hundred[-1]} "
              f"feast={feast_runs[-1]}", flush=True)  # fmt: skip
    platform.close()
    with meshops_server(folder / "home", args.workers) as (url, token, group):
        runs = {"group": group, "entities": args.entities, "seconds": args.seconds}
        light = loadgen_process(url, token, rate=args.rate // 5, **runs)
        http = loadgen_process(url, token, rate=args.rate, **runs)
    print(f"[b4] http ({args.workers} workers): at {args.rate}/s: {http} "
          f"at {args.rate // 5}/s: {light}", flush=True)  # fmt: skip
    if args.http_only:
        return

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
        Row(f"HTTP ({args.workers} workers), 1 entity, {args.rate} req/s "
            f"(offered {http['offered']:.0f}/s, served {http['rate']:.0f}/s, "
            f"{http['failed']:.0f} failed): p99", http["p99"], None, "ms",
            higher_is_better=False, goal="< 5 ms"),
        Row(f"HTTP, 1 entity, {args.rate} req/s offered: p50", http["p50"], None, "ms",
            higher_is_better=False),
        Row(f"HTTP, 1 entity, {args.rate} req/s: server CPU per request (all workers; load "
            f"generator {http['loadgen_cpu_ms']:.2f} ms incl. its start)", http["server_cpu_ms"],
            None, "ms", higher_is_better=False),
        Row(f"HTTP ({args.workers} workers), 1 entity, {args.rate // 5} req/s "
            f"(offered {light['offered']:.0f}/s, served {light['rate']:.0f}/s): p99",
            light["p99"], None, "ms", higher_is_better=False),
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
