"""B4: online feature lookup, 1 and 100 entities x 20 features: embedded SDK and over HTTP
(`POST /v1/features/online` at a paced 500 req/s against `meshops server --workers N`), vs
Feast `get_online_features` with its SQLite online store on the same data (peer venv).

The HTTP load generator runs in its own process on the same cores as the server; it is a
minimal open-loop client (prepared request bytes on uvloop streams) so that it takes little
of them, and it reports the rate it offered next to the rate served.

    .venv/bin/python benchmarks/b4_online_lookup.py [--entities 100000] [--calls 3000]
        [--rate 500] [--seconds 5] [--rounds 2] [--workers 2] [--http-only]

Scale-out (#20, section B4-scaleout): the same data on a home whose metadata store is
PostgreSQL (its own database, dropped and created) and online store Redis (its own key
prefix), served by `meshops server --workers 2`, next to a home on the embedded defaults
served alike; embedded lookups on each, then 1 and 100 entities over HTTP at 500 req/s and
at saturation (closed loop), every request's outcome counted (access logs, load generator):

    .venv/bin/python benchmarks/b4_online_lookup.py --scaleout [--entities 100000]
        [--seconds 5] [--connections 32] [--pg-database h7_bench]
        [--redis-url redis://127.0.0.1:6379/13]
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
from collections import Counter
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


def _request(host: str, token: str, entity_ids: list[int]) -> bytes:
    rows = b",".join(b'{"entity_id":%d}' % k for k in entity_ids)
    body = b'{"entity_rows":[%s],"features":%s}' % (rows, REFS_JSON.encode())
    return (
        b"POST /v1/features/online HTTP/1.1\r\nhost: %s\r\nauthorization: Bearer %s\r\n"
        b"content-type: application/json\r\ncontent-length: %d\r\n\r\n%s"
    ) % (host.encode(), token.encode(), len(body), body)


async def paced_http(
    url: str, token: str, entities: int, rate: int, seconds: float, *, size: int = 1
) -> dict[str, Any]:
    """Open-loop load: one request of `size` entities due every 1/rate s for `seconds`, on
    up to 64 keep-alive connections (a new one opens when all are busy). Latency runs from
    the time a request was due, so time spent waiting for a connection or in the server's
    queue counts (no coordinated omission); requests that fail or take over 5 s count as
    failed, by kind."""
    host, _, port = url.removeprefix("http://").partition(":")
    rng = np.random.default_rng(5)
    keys = rng.integers(0, entities, (int(rate * seconds), size)).tolist()
    idle: list[_Connection] = []
    opened = 0
    latencies: list[float] = []
    failed: Counter[str] = Counter()

    async def connection() -> _Connection | None:
        nonlocal opened
        if idle:
            return idle.pop()
        if opened >= MAX_CONNECTIONS:
            return None
        opened += 1
        return _Connection(*await asyncio.open_connection(host, int(port)))

    async def one(due: float, key: list[int]) -> None:
        nonlocal opened
        conn = await connection()
        while conn is None:  # every connection busy: wait for one (the clock runs)
            await asyncio.sleep(0.0005)
            conn = await connection()
        outcome = await _call(conn, _request(host, token, key))
        kind = _failure(outcome)
        if kind:
            failed[kind] += 1
        if isinstance(outcome, str):
            opened -= 1
            conn.writer.close()
            return
        latencies.append(time.perf_counter() - due)
        idle.append(conn)

    for _ in range(WARM_UP):  # connections, caches, the server's first requests
        await one(time.perf_counter(), [1] * size)
    latencies.clear()
    failed.clear()
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
        **_summary(latencies, failed, elapsed),
        "offered": len(keys) / offered_for,
        "connections": float(opened),
        "requests": float(len(keys) + WARM_UP),
    }


async def saturated_http(
    url: str, token: str, entities: int, seconds: float, *, size: int, connections: int
) -> dict[str, Any]:
    """Closed-loop load: `connections` keep-alive connections each send their next request
    of `size` entities as soon as the previous answer is in, for `seconds`: the rate served
    is the server's throughput at saturation (latency here is mostly queueing)."""
    host, _, port = url.removeprefix("http://").partition(":")
    rng = np.random.default_rng(6)
    latencies: list[float] = []
    failed: Counter[str] = Counter()
    sent = 0

    async def loop(stop_at: float) -> None:
        nonlocal sent
        conn = _Connection(*await asyncio.open_connection(host, int(port)))
        while time.perf_counter() < stop_at:
            key = rng.integers(0, entities, size).tolist()
            began = time.perf_counter()
            outcome = await _call(conn, _request(host, token, key))
            sent += 1
            kind = _failure(outcome)
            if kind:
                failed[kind] += 1
            if isinstance(outcome, str):
                conn.writer.close()
                conn = _Connection(*await asyncio.open_connection(host, int(port)))
                continue
            latencies.append(time.perf_counter() - began)
        conn.writer.close()

    await asyncio.gather(*(loop(time.perf_counter() + 1.0) for _ in range(connections)))
    latencies.clear()  # the first second warmed connections and caches
    failed.clear()
    sent = 0
    start = time.perf_counter()
    await asyncio.gather(*(loop(start + seconds) for _ in range(connections)))
    elapsed = time.perf_counter() - start
    return {
        **_summary(latencies, failed, elapsed),
        "offered": float("nan"),
        "connections": float(connections),
        "requests": float(sent),
    }


async def _call(conn: _Connection, request: bytes) -> int | str:
    """The status of one exchange, or the kind of its failure (in transport, or no answer
    within 5 s); a failed connection is not used again."""
    try:
        return await asyncio.wait_for(conn.call(request), 5.0)
    except TimeoutError:
        return "timeout (> 5 s)"
    except (OSError, asyncio.IncompleteReadError) as exc:
        return f"transport {type(exc).__name__}"


def _failure(outcome: int | str) -> str | None:
    """The failure kind of an outcome, None for a 2xx answer."""
    if isinstance(outcome, str):
        return outcome
    return None if outcome < 300 else f"HTTP {outcome}"


def _summary(latencies: list[float], failed: Counter[str], elapsed: float) -> dict[str, Any]:
    return {
        "p50": percentile(latencies, 50) * 1000,
        "p99": percentile(latencies, 99) * 1000,
        "rate": len(latencies) / elapsed,
        "failed": float(sum(failed.values())),
        "failures": dict(failed),
    }


def loadgen_process(
    url: str,
    token: str,
    *,
    group: int,
    entities: int,
    rate: int,
    seconds: float,
    size: int = 1,
    connections: int = MAX_CONNECTIONS,
) -> Any:
    """Run the load generator in its own process (uvloop), as a user's clients would be;
    adds the CPU the server (all workers) and the load generator (its start included) used
    per request, from the kernel's accounting."""
    server_before = group_cpu_seconds(group)
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    proc = subprocess.run(
        [sys.executable, __file__, "--loadgen", url, token, str(entities), str(rate),
         str(seconds), str(size), str(connections)],
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


# --- scale-out (#20): PostgreSQL + Redis behind `meshops server --workers 2` ---

SCALEOUT_SIZES = (1, 100)  # entities per request


def scaleout(args: argparse.Namespace) -> None:
    """Section B4-scaleout: the same lookups against a home on PostgreSQL with Redis and a
    home on the embedded defaults (SQLite, SQLite online store), both served by `meshops
    server --workers N`; every request's outcome counted (access logs, load generator)."""
    from scaleout import DEFAULT_REDIS_URL, bench_home, clear_redis_prefix, fresh_postgres_database

    load_before = os.getloadavg()
    folder = Path(args.work or DATA_DIR) / f"b4_scaleout_e{args.entities}"
    shutil.rmtree(folder, ignore_errors=True)
    path = generate(folder, args.entities)
    redis_url = args.redis_url or DEFAULT_REDIS_URL
    clear_redis_prefix(redis_url)
    homes = {
        "pg": bench_home(folder / "pg-home", fresh_postgres_database(args.pg_database), redis_url),
        "sqlite": bench_home(folder / "sqlite-home"),
    }
    results: dict[str, dict[str, Any]] = {}
    try:
        for name, home in homes.items():
            results[name] = _scaleout_one(args, home, path, folder / f"{name}.log")
    finally:
        cleared = clear_redis_prefix(redis_url)
        shutil.rmtree(folder, ignore_errors=True)
    _record_scaleout(args, results, (load_before, os.getloadavg()), cleared)


def _scaleout_one(args: argparse.Namespace, home: Any, path: Path, log: Path) -> dict[str, Any]:
    """Embedded lookups on the home, then the HTTP loads against its server."""
    from scaleout import meshops_server as served

    with home.configured():
        platform = setup_meshops(home.home, path)
        result: dict[str, Any] = {
            "emb1": embedded(platform, args.entities, args.calls, 1, 0),
            "emb100": embedded(platform, args.entities, args.calls // 5, 100, 0),
        }
        platform.close()
    token = home.create_token()
    with served(home.env, args.workers, log) as server:
        offset = server.log_offset()
        for size, rate in [(n, r) for r in (args.rate, 0) for n in SCALEOUT_SIZES]:  # 0: saturation
            result[f"http{size}@{rate}"] = loadgen_process(
                server.url, token, group=server.group, entities=args.entities, rate=rate,
                seconds=args.seconds, size=size, connections=args.connections,
            )  # fmt: skip
            print(f"[b4-scaleout] {home.home.name} {size} entities at {rate or 'saturation'}: "
                  f"{result[f'http{size}@{rate}']}", flush=True)  # fmt: skip
        time.sleep(0.5)  # the workers write their last access lines
        result["answers"] = server.outcomes(offset)
    return result


def _record_scaleout(
    args: argparse.Namespace,
    results: dict[str, dict[str, Any]],
    loads: tuple[tuple[float, float, float], tuple[float, float, float]],
    cleared: int,
) -> None:
    from scaleout import describe

    pg, sqlite = results["pg"], results["sqlite"]

    def ms(label: str, key: str, stat: str, goal: str = "") -> Row:
        return Row(label, pg[key][stat], sqlite[key][stat], "ms", higher_is_better=False, goal=goal)

    def http(size: int, rate: int, stat: str, goal: str = "") -> Row:
        run, ref = pg[f"http{size}@{rate}"], sqlite[f"http{size}@{rate}"]
        load = f"{rate} req/s offered" if rate else f"saturation ({args.connections} connections)"
        label = (
            f"HTTP, {size} entit{'y' if size == 1 else 'ies'} × 20 features, {load}: {stat} "
            f"(served {run['rate']:.0f}/s vs {ref['rate']:.0f}/s; failed {run['failed']:.0f} "
            f"vs {ref['failed']:.0f})"
        )
        if stat == "req/s":
            return Row(label, run["rate"], ref["rate"], "req/s", goal=goal)
        return Row(label, run[stat], ref[stat], "ms", higher_is_better=False, goal=goal)

    rows = [
        ms("embedded, 1 entity × 20 features: p50", "emb1", "p50"),
        ms("embedded, 1 entity × 20 features: p99", "emb1", "p99", "< 1 ms (B4)"),
        ms("embedded, 100 entities × 20 features: p50", "emb100", "p50"),
        ms("embedded, 100 entities × 20 features: p99", "emb100", "p99"),
        http(1, args.rate, "p50"),
        http(1, args.rate, "p99", "< 5 ms (B4); 0 failed"),
        http(100, args.rate, "p50"),
        http(100, args.rate, "p99", "0 failed"),
        http(1, 0, "req/s", "0 failed"),
        http(1, 0, "p99"),
        http(100, 0, "req/s", "0 failed"),
        http(100, 0, "p99"),
    ]
    command = ".venv/bin/python benchmarks/b4_online_lookup.py " + " ".join(sys.argv[1:])
    section_id = "B4-scaleout" if args.rate == 500 else f"B4-scaleout-{args.rate}"
    section = record(
        section_id,
        f"online feature lookup against `meshops server --workers {args.workers}` on "
        "PostgreSQL with Redis",
        command.strip(),
        f"`meshops server --workers {args.workers}` on the embedded defaults (SQLite, SQLite "
        "online store), same run",
        rows,
    )
    before, after = loads
    outcome_lines = "".join(
        f"- {name}: answered {describe(result['answers'])}; load generator failures: "
        + (
            "; ".join(
                f"{key} {result[key]['failures']}"
                for key in result
                if key.startswith("http") and result[key]["failures"]
            )
            or "none"
        )
        + "\n"
        for name, result in results.items()
    )
    note = (
        f"{args.entities:,} entities; {args.seconds:g} s per load after a warm-up; the load "
        "generator is one uvloop process on the same 2 cores as the server (CPU per request: "
        + "; ".join(
            f"{name} {key} server {result[key]['server_cpu_ms']:.2f} ms"
            for name, result in results.items()
            for key in result
            if key.startswith("http")
        )
        + f"). Load average (1/5/15 min) {before[0]:.1f}/{before[1]:.1f}/{before[2]:.1f} "
        f"before, {after[0]:.1f}/{after[1]:.1f}/{after[2]:.1f} after (shared machine). "
        "Every request the servers answered (access logs: route, status), and what the "
        f"load generator saw fail:\n\n{outcome_lines}"
        f"Redis: {cleared} keys under the benchmark's prefix removed at the end.\n"
    )
    text = (HERE / "RESULTS.md").read_text()
    end = f"<!-- /{section_id} -->"
    (HERE / "RESULTS.md").write_text(text.replace(section, section.replace(end, note + end)))


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--calls", type=int, default=3000)
    parser.add_argument("--rate", type=int, default=500)
    parser.add_argument("--seconds", type=float, default=5)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--workers", type=int, default=2, help="server worker processes")
    parser.add_argument("--http-only", action="store_true", help="skip embedded and Feast")
    parser.add_argument("--scaleout", action="store_true", help="section B4-scaleout (#20)")
    parser.add_argument("--connections", type=int, default=32, help="saturation connections")
    parser.add_argument("--pg-database", default="h7_bench", help="dropped and recreated")
    parser.add_argument("--redis-url", default="", help="default redis://127.0.0.1:6379/13")
    parser.add_argument("--work", default=None, help="data folder (default benchmarks/.data)")
    parser.add_argument("--loadgen", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.loadgen:
        import uvloop

        url, token, entities, rate, seconds, size, conns = args.loadgen
        if int(rate) > 0:
            load = paced_http(url, token, int(entities), int(rate), float(seconds), size=int(size))
        else:  # rate 0: saturation, closed loop
            load = saturated_http(
                url, token, int(entities), float(seconds), size=int(size), connections=int(conns)
            )
        result = uvloop.run(load)
        print(json.dumps(result))
        return
    if args.scaleout:
        scaleout(args)
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
