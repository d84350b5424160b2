"""B2: search 100k runs (10 params, 10 metrics each) by a metric and a param filter, ordered
by a metric, top 100: p95 latency of meshops (SDK over HTTP, and embedded) vs MLflow
`search_runs` against `mlflow server`, on the same generated data (seed 42).

Both stores are populated with bulk INSERTs into their own schemas (meshops: the tracking
tables through SQLAlchemy Core; MLflow: see peers/mlflow_b2.py), not through 100k API calls.
`--batch-api` instead creates meshops's runs through the batch API over HTTP (the SDK's
`tracking.create_runs` against a `meshops server` process, `--batch-size` runs a request,
two requests in flight), timed, before the searches (issue #20's "1M runs in < 10 min"),
with the CPU seconds the server process, this client process and (on PostgreSQL) the
server's database backends spent on it: on a shared machine wall time follows the load.

    .venv/bin/python benchmarks/b2_search_runs.py [--runs 100000] [--repeats 30] [--skip-peer]
    .venv/bin/python benchmarks/b2_search_runs.py --runs 1000000 --database postgres --skip-peer
    .venv/bin/python benchmarks/b2_search_runs.py --runs 1000000 --skip-peer --batch-api

`--database postgres` keeps the home's metadata in a fresh schema of the PostgreSQL database
`--postgres-url` names (default: $MESHOPS_TEST_POSTGRES_URL), dropped afterwards. Runs are
written in chunks of 20,000 (one transaction each); the time to write them is reported.
`--api-sample N` also creates N runs through the public API over HTTP (create_run,
log_params, and the metrics of many runs per `log_metric_rows` batch) and reports the rate.

`--home DIR` keeps the home (its database) in DIR; `--search-only --home DIR --no-record`
then times the searches alone on the runs an earlier run left there (the database is not
changed, but its tables are not rebuilt either: at 1M runs on SQLite it is ~5 GB).

`--skip-peer` times meshops only (quick iteration; nothing is recorded in RESULTS.md) unless
`--kept-peer-ms` gives MLflow's p95 from an earlier full run, recorded as such.

MLflow took minutes per search at 100k runs here (see RESULTS.md), so it runs `--mlflow-repeats`
searches per round (its p95 over few samples is close to its max).
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from b1_metric_logging import meshops_server, mlflow_server
from harness import HERE, Row, peer_python, percentile, record, run_peer

FILTER = "metrics.m1 < 0.5 and params.p2 = 'v3'"
ORDER = ["metrics.m0 DESC"]


CHUNK = 20_000  # runs per transaction while populating


def populate_meshops(home: Path, count: int) -> float:
    """The runs, written straight into the tracking tables; returns the seconds it took."""
    from meshops.client import connect
    from meshops.tracking import store

    with connect(home=home) as platform:
        experiment = platform.tracking.create_experiment("b2")
        assert platform.home is not None
        rng = np.random.default_rng(42)
        start = datetime.now(UTC)
        began = time.perf_counter()
        for first in range(0, count, CHUNK):
            ids = range(first, min(count, first + CHUNK))
            metrics = rng.random((len(ids), 10))
            tables = {
                store.runs: [
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
                        "lifecycle_stage": "active",
                    }
                    for i in ids
                ],
                store.params: [
                    {"run_id": f"{i:032x}", "key": f"p{j}", "value": f"v{(i * 7 + j) % 10}"}
                    for i in ids
                    for j in range(10)
                ],
                store.latest_metrics: [
                    {
                        "run_id": f"{i:032x}",
                        "key": f"m{j}",
                        "value": float(metrics[i - first, j]),
                        "step": 0,
                        "timestamp": 0.0,
                    }
                    for i in ids
                    for j in range(10)
                ],
            }
            with platform.home.db.begin() as conn:
                for table, rows in tables.items():
                    write_rows(conn, table, rows)
            if (first // CHUNK) % 10 == 9:
                print(f"[b2] {first + len(ids):,} runs in {time.perf_counter() - began:.0f}s")
        if platform.home.db.dialect == "postgresql":
            # Statistics and the visibility map, as autovacuum gives a table at rest (the
            # search's index-only scans need the latter).
            with platform.home.db.engine.connect() as raw:
                autocommit = raw.execution_options(isolation_level="AUTOCOMMIT")
                for table in (store.runs, store.params, store.latest_metrics):
                    autocommit.exec_driver_sql(f"VACUUM ANALYZE {table.name}")
        return time.perf_counter() - began


def write_rows(conn: Any, table: Any, rows: list[dict[str, Any]]) -> None:
    """INSERT on SQLite; COPY on PostgreSQL (its executemany is several times slower)."""
    if conn.dialect.name != "postgresql":
        conn.execute(table.insert(), rows)
        return
    columns = list(rows[0])
    names = ", ".join(f'"{c}"' for c in columns)
    cursor = conn.connection.driver_connection.cursor()
    with cursor.copy(f"COPY {table.name} ({names}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([row[c] for c in columns])


def batch_specs(
    first: int, count: int, metrics: np.ndarray[Any, Any], start: datetime
) -> list[Any]:
    """The same runs `populate_meshops` writes (names, params, metrics), as batch items."""
    from meshops.tracking.models import Metric, RunSpec

    return [
        RunSpec(
            experiment="b2",
            name=f"r{i}",
            status="FINISHED",
            start_time=start + timedelta(milliseconds=i),
            end_time=start + timedelta(milliseconds=i + 1),
            params={f"p{j}": f"v{(i * 7 + j) % 10}" for j in range(10)},
            metrics=[
                Metric(key=f"m{j}", value=float(metrics[i - first, j]), step=0, timestamp=0.0)
                for j in range(10)
            ],
        )
        for i in range(first, first + count)
    ]


@dataclass
class Creation:
    """Seconds that creating the runs took: wall time, and CPU time of each process."""

    wall: float
    server_cpu: float  # the `meshops server` process group
    client_cpu: float  # this process (building, encoding and sending the requests)
    database_cpu: float | None  # the server's PostgreSQL backends (None on SQLite)


def populate_through_batch_api(uri: str, token: str, count: int, batch_size: int) -> Creation:
    """The runs created through `tracking.create_runs` over HTTP; returns the seconds it
    took, from building the first request to the last answer. A thread builds the requests
    ahead while two senders keep two requests in flight (one is parsed and checked while
    the other is written); a sender takes a built request at once, so its keep-alive
    connection never idles long enough for the server to close it under a reuse."""
    import queue
    from concurrent.futures import ThreadPoolExecutor

    import httpx

    from meshops.client import connect

    ready: queue.Queue[list[Any] | None] = queue.Queue(maxsize=2)
    sent = [0]

    def build() -> None:
        rng = np.random.default_rng(42)
        start = datetime.now(UTC)
        for first in range(0, count, batch_size):
            size = min(batch_size, count - first)
            ready.put(batch_specs(first, size, rng.random((size, 10)), start))
        for _ in range(SENDERS):
            ready.put(None)

    def send(platform: Any) -> None:
        failure: Exception | None = None
        while (specs := ready.get()) is not None:
            if failure is not None:
                continue  # drained, so the builder never blocks on a full queue
            try:
                platform.tracking.create_runs(specs)
            except Exception as exc:  # raised once the builder is done
                failure = exc
                continue
            sent[0] += len(specs)
            if sent[0] % (20 * batch_size) < len(specs):
                took = time.perf_counter() - began
                print(f"[b2] {sent[0]:,} runs created in {took:.0f}s", flush=True)
        if failure is not None:
            raise failure

    server = server_group(uri)
    with connect(uri, token=token) as platform, ThreadPoolExecutor(1 + SENDERS) as pool:
        # A 5,000-run request waits for the other one in flight to commit first: on SQLite
        # at 700k runs and load ~20 one passed the SDK's 60 s read timeout (#20).
        platform.http.client.timeout = httpx.Timeout(IMPORT_TIMEOUT_S, connect=10.0)
        server_before, database_before = group_cpu_seconds(server), database_cpu_seconds()
        client_before = time.process_time()
        began = time.perf_counter()
        jobs = [pool.submit(build)] + [pool.submit(send, platform) for _ in range(SENDERS)]
        for job in jobs:
            job.result()
        wall = time.perf_counter() - began
        database_after = database_cpu_seconds()
        return Creation(
            wall,
            group_cpu_seconds(server) - server_before,
            time.process_time() - client_before,
            _spent(database_before, database_after),
        )


SENDERS = 2
IMPORT_TIMEOUT_S = 900.0  # seconds a batch request may take to answer
# The application name of this run's PostgreSQL connections (set by `database`), by which
# the server's backends are found to read their CPU time.
APPLICATION_NAME: list[str] = []


def server_group(uri: str) -> int:
    """The process group of the `meshops server` serving `uri` (it runs in a session of
    its own), found by its command line in /proc."""
    port = uri.rsplit(":", 1)[1].encode()
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"server" in args and b"--port" in args and port in args:
            return os.getpgid(int(cmdline.parent.name))
    raise RuntimeError(f"no meshops server process for {uri}")


def _cpu_ticks(stat: Path) -> int:
    fields = stat.read_text().rpartition(")")[2].split()  # from "state" on
    return int(fields[11]) + int(fields[12])  # utime, stime


def group_cpu_seconds(group: int) -> float:
    """CPU time (user + system) used so far by the processes of a process group."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            if int(stat.read_text().rpartition(")")[2].split()[2]) == group:
                ticks += _cpu_ticks(stat)
        except (OSError, IndexError):  # the process ended meanwhile
            continue
    return ticks / os.sysconf("SC_CLK_TCK")


def database_cpu_seconds() -> dict[int, float] | None:
    """{pid: CPU seconds} of the PostgreSQL backends serving this run's homes (their
    connections carry APPLICATION_NAME), when the database is PostgreSQL on this machine."""
    url = os.environ.get("MESHOPS_DATABASE_URL")
    if not url or not APPLICATION_NAME:
        return None
    from sqlalchemy import create_engine, text

    engine = create_engine(url.split("?")[0])
    try:
        with engine.connect() as conn:
            query = text("SELECT pid FROM pg_stat_activity WHERE application_name = :name")
            pids = conn.execute(query, {"name": APPLICATION_NAME[0]}).scalars().all()
    finally:
        engine.dispose()
    spent: dict[int, float] = {}
    for pid in pids:
        try:
            spent[pid] = _cpu_ticks(Path(f"/proc/{pid}/stat")) / os.sysconf("SC_CLK_TCK")
        except OSError:
            continue
    return spent


def _spent(before: dict[int, float] | None, after: dict[int, float] | None) -> float | None:
    """CPU seconds the backends alive at the end spent since `before` (a backend that
    closed meanwhile is not counted: the server's pool keeps its connections open)."""
    if before is None or after is None:
        return None
    return sum(seconds - before.get(pid, 0.0) for pid, seconds in after.items())


def vacuum_analyze(home: Path) -> None:
    """Statistics and the visibility map on PostgreSQL, as autovacuum gives a table at rest
    (the search's index-only scans need the latter)."""
    from meshops.client import connect
    from meshops.tracking import store

    with connect(home=home) as platform:
        assert platform.home is not None
        if platform.home.db.dialect != "postgresql":
            return
        with platform.home.db.engine.connect() as raw:
            autocommit = raw.execution_options(isolation_level="AUTOCOMMIT")
            for table in (store.runs, store.params, store.latest_metrics, store.metric_chunks):
                autocommit.exec_driver_sql(f"VACUUM ANALYZE {table.name}")


def api_sample(uri: str, token: str, count: int) -> float:
    """Runs created through the public API over HTTP (10 params, 10 metrics each; the
    metrics of 100 runs per batch); returns runs per second."""
    from meshops.client import connect

    with connect(uri, token=token) as platform:
        tracking = platform.tracking
        began = time.perf_counter()
        rows: list[tuple[str, str, float, int, float]] = []
        for i in range(count):
            run = tracking.create_run("b2-api", name=f"a{i}", capture_environment=False)
            tracking.log_params(run.id, {f"p{j}": f"v{(i * 7 + j) % 10}" for j in range(10)})
            rows += [(run.id, f"m{j}", (i * j % 97) / 97, 0, time.time()) for j in range(10)]
            if len(rows) >= 1000:
                tracking.log_metric_rows(rows)
                rows = []
        if rows:
            tracking.log_metric_rows(rows)
        return count / (time.perf_counter() - began)


@contextmanager
def database(kind: str, postgres_url: str | None) -> Iterator[None]:
    """MESHOPS_DATABASE_URL for the homes of this run (and the server it starts)."""
    if kind == "sqlite":
        yield
        return
    if not postgres_url:
        sys.exit("--database postgres needs --postgres-url or $MESHOPS_TEST_POSTGRES_URL")
    from sqlalchemy import create_engine, text

    schema = f"b2_{uuid.uuid4().hex[:10]}"
    engine = create_engine(postgres_url)
    with engine.begin() as conn:
        conn.execute(text(f"CREATE SCHEMA {schema}"))
    sep = "&" if "?" in postgres_url else "?"
    APPLICATION_NAME[:] = [schema]
    os.environ["MESHOPS_DATABASE_URL"] = (
        f"{postgres_url}{sep}options=-csearch_path%3D{schema}&application_name={schema}"
    )
    try:
        yield
    finally:
        os.environ.pop("MESHOPS_DATABASE_URL", None)
        APPLICATION_NAME.clear()
        with engine.begin() as conn:
            conn.execute(text(f"DROP SCHEMA {schema} CASCADE"))
        engine.dispose()


def time_search(platform: object, repeats: int) -> tuple[list[float], int]:
    """`repeats` timed searches after one untimed one: a fresh server's first search opens
    its connection pool and reads the indexes' pages into the cache (~260 ms at 1M runs
    against ~52 ms after), which with 30 samples would set the p95 by itself. MLflow's
    searches (peers/mlflow_b2.py) get no such warm-up: each takes seconds or more, where a
    first call's ~0.2 s is noise, and a second untimed one would add minutes."""
    tracking = platform.tracking  # type: ignore[attr-defined]
    start = time.perf_counter()
    tracking.search_runs(["b2"], FILTER, ORDER, 100)
    print(f"[b2] first (untimed) search: {(time.perf_counter() - start) * 1000:.0f} ms", flush=True)
    latencies, found = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        page = tracking.search_runs(["b2"], FILTER, ORDER, 100)
        latencies.append(time.perf_counter() - start)
        found = len(page.runs)
    return latencies, found


@contextmanager
def home_dir(kept: Path | None) -> Iterator[Path]:
    """The home of a run: `kept` (left in place afterwards), or one in a temporary folder."""
    if kept is not None:
        yield kept
        return
    with tempfile.TemporaryDirectory(dir=os.environ.get("B2_TMP")) as tmp_dir:
        yield Path(tmp_dir) / "home"


def meshops_only(
    count: int,
    repeats: int,
    rounds: int,
    api_runs: int = 0,
    batch_size: int = 0,
    *,
    kept_home: Path | None = None,
    search_only: bool = False,
) -> tuple[list[float], list[float], float, float | None, Creation | None]:
    """With `batch_size`, the runs are created through the batch API over HTTP. With
    `search_only`, `kept_home` already holds them: only the searches run."""
    from meshops.client import connect

    http_lat: list[float] = []
    emb_lat: list[float] = []
    populate_s = 0.0
    with home_dir(kept_home) as home:
        if not batch_size and not search_only:
            populate_s = populate_meshops(home, count)
            print(f"[b2] {count:,} runs written in {populate_s:.0f}s", flush=True)
        api_rate, creation = None, None
        with meshops_server(home) as (uri, token):
            if batch_size and not search_only:
                creation = populate_through_batch_api(uri, token, count, batch_size)
                populate_s = creation.wall
                print(f"[b2] {count:,} runs created (batch API): {creation}", flush=True)
                vacuum_analyze(home)
            if api_runs:
                api_rate = api_sample(uri, token, api_runs)
                print(f"[b2] API: {api_rate:,.0f} runs/s ({api_runs} runs)", flush=True)
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
    return http_lat, emb_lat, populate_s, api_rate, creation


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=30)
    parser.add_argument("--mlflow-repeats", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--skip-peer", action="store_true", help="meshops only")
    parser.add_argument("--kept-peer-ms", type=float, help="with --skip-peer: record this")
    parser.add_argument("--database", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--postgres-url", default=os.environ.get("MESHOPS_TEST_POSTGRES_URL"))
    parser.add_argument("--api-sample", type=int, default=0, help="runs made through the API")
    parser.add_argument("--no-record", action="store_true", help="print, do not record")
    parser.add_argument("--batch-api", action="store_true", help="create runs via create_runs")
    parser.add_argument("--batch-size", type=int, default=5_000, help="runs per request")
    parser.add_argument("--home", type=Path, help="keep the home here (default: a temp dir)")
    parser.add_argument(
        "--search-only", action="store_true", help="only search the runs --home already has"
    )
    args = parser.parse_args()
    if args.search_only and (args.home is None or not args.no_record):
        sys.exit("--search-only needs --home (a home an earlier run kept) and --no-record")
    if args.home is not None and not args.search_only and args.home.exists():
        sys.exit(f"--home {args.home} exists: give a new folder, or add --search-only")
    if args.skip_peer:
        with database(args.database, args.postgres_url):
            http_lat, emb_lat, populate_s, api_rate, creation = meshops_only(
                args.runs,
                args.repeats,
                args.rounds,
                args.api_sample,
                args.batch_size if args.batch_api else 0,
                kept_home=args.home,
                search_only=args.search_only,
            )
        if args.no_record:
            return
        if args.kept_peer_ms:
            record_rows(args, http_lat, emb_lat, args.kept_peer_ms, kept=True)
        elif args.runs != 100_000 or args.database != "sqlite":
            record_scale(args, http_lat, emb_lat, populate_s, api_rate, creation=creation)
        return
    if args.database != "sqlite":
        sys.exit("the MLflow peer runs on SQLite: use --skip-peer with --database postgres")
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


def write_row(args: argparse.Namespace, populate_s: float) -> Row:
    if args.batch_api:
        workload = (
            f"create {args.runs:,} runs × (10 params + 10 metrics) through the batch API "
            f"over HTTP (SDK `create_runs`, {args.batch_size:,} runs a request)"
        )
    else:
        workload = (
            f"write {args.runs:,} runs × (10 params + 10 metrics), tracking tables in "
            f"transactions of {CHUNK:,} runs"
        )
    return Row(workload, populate_s, None, "s", higher_is_better=False, goal="< 600 s")


def cpu_rows(creation: Creation | None) -> list[Row]:
    """The CPU seconds behind the creation's wall time, per process."""
    if creation is None:
        return []
    spent = [
        ("the `meshops server` process", creation.server_cpu),
        ("the client process (builds, encodes and sends the requests)", creation.client_cpu),
    ]
    if creation.database_cpu is not None:
        spent.append(("the server's PostgreSQL backends", creation.database_cpu))
    return [
        Row(f"… CPU time of {who}", seconds, None, "s", higher_is_better=False)
        for who, seconds in spent
    ]


def record_scale(
    args: argparse.Namespace,
    http_lat: list[float],
    emb_lat: list[float],
    populate_s: float,
    api_rate: float | None,
    *,
    creation: Creation | None,
) -> None:
    """meshops alone at a scale the peer does not reach (MLflow takes ~20 min a search at
    100k runs): its own section, B2-<runs>-<database>."""
    rows = [
        Row(
            f"search {args.runs:,} runs, p95, SDK over HTTP ({args.database})",
            percentile(http_lat, 95) * 1000,
            None,
            "ms",
            higher_is_better=False,
            goal="< 100 ms",
        ),
        Row(
            f"search {args.runs:,} runs, p50, SDK over HTTP ({args.database})",
            percentile(http_lat, 50) * 1000,
            None,
            "ms",
            higher_is_better=False,
        ),
        Row(
            f"search {args.runs:,} runs, p95, embedded SDK ({args.database})",
            percentile(emb_lat, 95) * 1000,
            None,
            "ms",
            higher_is_better=False,
            goal="< 100 ms",
        ),
        write_row(args, populate_s),
        *cpu_rows(creation),
    ]
    if api_rate is not None:
        rows.append(
            Row(
                f"runs created through the public API over HTTP ({args.api_sample:,}: "
                "create_run + log_params + metric batches)",
                api_rate,
                None,
                "runs/s",
            )
        )
    command = ".venv/bin/python benchmarks/b2_search_runs.py " + " ".join(sys.argv[1:])
    record(
        f"B2-{args.runs}-{args.database}",
        f"search_runs `{FILTER}` order by {ORDER[0]}, top 100, {args.runs:,} runs on "
        f"{args.database}",
        command,
        "no peer (MLflow: see B2)",
        rows,
    )


if __name__ == "__main__":
    main()
