"""B1: log 100k metric values to one run, per value and batched, vs MLflow.

meshops: `meshops server` (subprocess, temp home) and the SDK over HTTP; MLflow: `mlflow
server` with a SQLite backend and MlflowClient, in the peer venv. Also the embedded SDK
(no server). Rounds alternate meshops and MLflow; figures are medians.

    .venv/bin/python benchmarks/b1_metric_logging.py [--values 100000] [--mlflow-values 2000]
    .venv/bin/python benchmarks/b1_metric_logging.py --embedded-only   # no servers, not recorded

Scale-out (#20, section B1-scaleout): the same clients against `meshops server --workers 2`
whose metadata store is PostgreSQL and online store Redis, side by side with `meshops
server` on a SQLite home (1 worker, the B1 set-up): several client processes each log to
their own run (SDK per-value calls, and the batch API), then one HTTP request per value
from many connections (no SDK buffer). Every request's outcome is counted from the
server's access log and the clients' errors; any failure is listed by kind.

    .venv/bin/python benchmarks/b1_metric_logging.py --scaleout [--clients 4]
        [--values 25000] [--requests 4000] [--connections 32] [--pg-database h7_bench]
        [--redis-url redis://127.0.0.1:6379/13]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import HERE, Row, median, peer_python, record, run_peer

ROOT = HERE.parent
MESHOPS = ROOT / ".venv" / "bin" / "meshops"
# The MLflow client of tests/mlflow (`make mlflow-client`), used when present.
MLFLOW_CLIENT_PYTHON = ROOT / ".venv-mlflow" / "bin" / "python"


def free_port_number() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _wait_http(url: str, proc: subprocess.Popen[bytes], timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"server exited with {proc.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"{url} did not come up")


@contextmanager
def meshops_server(home: Path) -> Iterator[tuple[str, str]]:
    """A served home with an API token for the benchmark (a served home requires one)."""
    from meshops.client import connect

    with connect(home=home) as owner:
        token = owner.governance.create_token("bench").token
    port = free_port_number()
    env = {**os.environ, "MESHOPS_HOME": str(home)}
    env.pop("MESHOPS_URI", None)
    proc = subprocess.Popen(
        [str(MESHOPS), "server", "--port", str(port)],
        env=env,
        stdout=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/healthz", proc)
        yield url, token
    finally:
        stop_group(proc)


@contextmanager
def mlflow_server(python: Path, db: Path) -> Iterator[str]:
    port = free_port_number()
    proc = subprocess.Popen(
        [
            str(python.parent / "mlflow"),
            "server",
            "--backend-store-uri",
            f"sqlite:///{db}",
            "--default-artifact-root",
            str(db.parent / "artifacts"),
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--workers",
            "1",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its workers join our process group, stopped together
    )
    try:
        url = f"http://127.0.0.1:{port}"
        _wait_http(f"{url}/health", proc)
        yield url
    finally:
        stop_group(proc)


def stop_group(proc: subprocess.Popen[bytes]) -> None:
    """Stop a server we started and the workers it forked (its own process group)."""
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    except ProcessLookupError:
        pass


def meshops_per_value(uri: str, token: str, values: int) -> float:
    from meshops.client import connect

    with connect(uri, token=token) as platform:
        start = time.perf_counter()
        with platform.tracking.start_run("b1", capture_environment=False) as run:
            for i in range(values):
                run.log_metric("loss", i * 0.001, step=i)
        elapsed = time.perf_counter() - start  # includes the final flush at run end
        assert len(platform.tracking.metric_history(run.id, "loss")) == values
    return values / elapsed


def meshops_batch(uri: str, token: str, values: int) -> float:
    from meshops.client import connect

    with connect(uri, token=token) as platform:
        run = platform.tracking.create_run("b1", capture_environment=False)
        now = time.time()
        start = time.perf_counter()
        for chunk in range(0, values, 1000):
            rows = [(run.id, "loss", i * 0.001, i, now) for i in range(chunk, chunk + 1000)]
            platform.tracking.log_metric_rows(rows)
        elapsed = time.perf_counter() - start
        platform.tracking.end_run(run.id)
    return values / elapsed


def meshops_embedded(home: Path, values: int) -> float:
    from meshops.client import connect

    with connect(home=home) as platform:
        start = time.perf_counter()
        with platform.tracking.start_run("b1", capture_environment=False) as run:
            for i in range(values):
                run.log_metric("loss", i * 0.001, step=i)
        elapsed = time.perf_counter() - start
    return values / elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--values", type=int, default=100_000)
    parser.add_argument("--mlflow-values", type=int, default=2_000)
    parser.add_argument("--mlflow-async-values", type=int, default=10_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument(
        "--embedded-only", action="store_true", help="embedded SDK only, not recorded"
    )
    parser.add_argument("--scaleout", action="store_true", help="section B1-scaleout (#20)")
    parser.add_argument("--clients", type=int, default=4, help="scale-out client processes")
    parser.add_argument("--requests", type=int, default=4000, help="scale-out HTTP requests")
    parser.add_argument("--connections", type=int, default=32, help="scale-out connections")
    parser.add_argument("--pg-database", default="h7_bench", help="dropped and recreated")
    parser.add_argument("--redis-url", default="", help="default redis://127.0.0.1:6379/13")
    parser.add_argument("--work", default=None, help="scale-out temp folder's parent")
    parser.add_argument("--client", nargs=6, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.client:
        mode, uri, token, count, start_at, conns = args.client
        client_main(mode, uri, token, count=int(count), start_at=float(start_at), conns=int(conns))
        return
    if args.scaleout:
        scaleout(args)
        return
    if args.embedded_only:
        with tempfile.TemporaryDirectory() as tmp_dir:
            rates = [
                meshops_embedded(Path(tmp_dir) / f"emb{n}", args.values) for n in range(args.rounds)
            ]
        print(f"embedded per-value log_metric: median {median(rates):,.0f} values/s ({rates})")
        return
    python = (
        MLFLOW_CLIENT_PYTHON if MLFLOW_CLIENT_PYTHON.exists() else peer_python("mlflow", ["mlflow"])
    )
    load_before = os.getloadavg()
    results: dict[str, list[float]] = {
        k: [] for k in ("pv", "batch", "emb", "mpv", "mbatch", "masync")
    }
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        with (
            meshops_server(tmp / "server-home") as (uri, token),
            mlflow_server(python, tmp / "m.db") as m,
        ):
            for round_no in range(args.rounds):
                results["pv"].append(meshops_per_value(uri, token, args.values))
                results["batch"].append(meshops_batch(uri, token, args.values))
                results["emb"].append(meshops_embedded(tmp / f"emb{round_no}", args.values))
                peer = run_peer(
                    python,
                    HERE / "peers" / "mlflow_b1.py",
                    m,
                    str(args.mlflow_values),
                    str(args.values),
                    str(args.mlflow_async_values),
                )
                results["mpv"].append(float(peer["per_value_per_s"]))  # type: ignore[arg-type]
                results["mbatch"].append(float(peer["batch_per_s"]))  # type: ignore[arg-type]
                results["masync"].append(float(peer["async_per_s"]))  # type: ignore[arg-type]
                print({k: round(v[-1]) for k, v in results.items()}, flush=True)
    rows = [
        Row(
            f"per-value log_metric over HTTP ({args.values:,} meshops / "
            f"{args.mlflow_values:,} MLflow calls)",
            median(results["pv"]),
            median(results["mpv"]),
            "values/s",
            goal="≥ 50×",
        ),
        Row(
            f"per-value log_metric over HTTP vs MLflow's asynchronous mode "
            f"(`synchronous=False`, {args.mlflow_async_values:,} MLflow calls, timed until all "
            "are stored)",
            median(results["pv"]),
            median(results["masync"]),
            "values/s",
            goal="≥ 10×",
        ),
        Row(
            f"batch API over HTTP ({args.values:,} values, chunks of 1000)",
            median(results["batch"]),
            median(results["mbatch"]),
            "values/s",
            goal="≥ 5×",
        ),
        Row(
            f"embedded per-value log_metric ({args.values:,} values, no server)",
            median(results["emb"]),
            None,
            "values/s",
            goal="≥ 500k/s",
        ),
    ]
    command = ".venv/bin/python benchmarks/b1_metric_logging.py " + " ".join(sys.argv[1:])
    section = record(
        "B1", "metric logging to one run", command.strip(), "MLflow 3 server (SQLite)", rows
    )
    load_after = os.getloadavg()
    note = (
        f"Rounds: {args.rounds}; load average (1/5/15 min) {load_before[0]:.1f}/"
        f"{load_before[1]:.1f}/{load_before[2]:.1f} before, {load_after[0]:.1f}/"
        f"{load_after[1]:.1f}/{load_after[2]:.1f} after (shared 2-core machine). MLflow "
        f"{peer_version(python)} client and server from `{python.parent.parent.name}`. "
        "Per-round values/s: "
        + "; ".join(f"{k} {[round(v) for v in vals]}" for k, vals in results.items())
        + "."
    )
    text = (HERE / "RESULTS.md").read_text()
    (HERE / "RESULTS.md").write_text(
        text.replace(section, section.replace("<!-- /B1 -->", note + "\n<!-- /B1 -->"))
    )


# --- scale-out (#20): client processes against a served home, every outcome counted ---

CLIENT_MODES = ("sdk", "batch", "http")
REQUEST_TIMEOUT = 30.0  # an answer slower than this counts as a hang


def client_main(
    mode: str, uri: str, token: str, *, count: int, start_at: float, conns: int
) -> None:
    """One client process: waits for the common start time, logs `count` values to its own
    run in `mode`, and prints one JSON object: values, end time, values stored, errors."""
    from meshops.client import connect

    errors: dict[str, int] = {}
    with connect(uri, token=token) as platform:
        run = platform.tracking.create_run("b1-scaleout", capture_environment=False)
        time.sleep(max(0.0, start_at - time.time()))
        try:
            if mode == "sdk":
                _sdk_per_value(platform, run.id, count)
            elif mode == "batch":
                _batch(platform, run.id, count)
            else:
                errors = _http_per_value(uri, token, run.id, count, conns)
        except Exception as exc:  # every failure is reported by kind, none is hidden
            errors[f"{type(exc).__name__}: {str(exc)[:200]}"] = 1
        ended = time.time()
        platform.tracking.end_run(run.id)
        stored = len(platform.tracking.metric_history(run.id, "loss"))
    print(json.dumps({"values": count, "ended": ended, "stored": stored, "errors": errors}))


def _sdk_per_value(platform: Any, run_id: str, count: int) -> None:
    for i in range(count):
        platform.tracking.log_metric(run_id, "loss", i * 0.001, step=i)
    platform.tracking.flush()


def _batch(platform: Any, run_id: str, count: int) -> None:
    now = time.time()
    for chunk in range(0, count, 1000):
        end = min(count, chunk + 1000)
        platform.tracking.log_metric_rows(
            [(run_id, "loss", i * 0.001, i, now) for i in range(chunk, end)]
        )


def _http_per_value(uri: str, token: str, run_id: str, count: int, conns: int) -> dict[str, int]:
    """One `POST /v1/metrics/batch` of one value per request, `conns` keep-alive
    connections each sending its share back to back (prepared bytes, uvloop)."""
    import uvloop

    return uvloop.run(_http_clients(uri, token, run_id, count, conns))


async def _http_clients(
    uri: str, token: str, run_id: str, count: int, conns: int
) -> dict[str, int]:
    host, _, port = uri.removeprefix("http://").partition(":")
    head = (
        f"POST /v1/metrics/batch HTTP/1.1\r\nhost: {host}:{port}\r\n"
        f"authorization: Bearer {token}\r\ncontent-type: application/json\r\n"
    ).encode()
    errors: Counter[str] = Counter()

    async def connection(first: int) -> None:
        reader, writer = await asyncio.open_connection(host, int(port))
        for i in range(first, count, conns):
            body = b'{"rows":[["%s","loss",%r,%d,%r]]}' % (
                run_id.encode(),
                i * 0.001,
                i,
                time.time(),
            )
            request = head + b"content-length: %d\r\n\r\n%s" % (len(body), body)
            try:
                status = await asyncio.wait_for(_exchange(reader, writer, request), REQUEST_TIMEOUT)
            except TimeoutError:
                errors["timeout"] += 1
                status = None
            except (OSError, asyncio.IncompleteReadError) as exc:
                errors[f"transport {type(exc).__name__}"] += 1
                status = None
            if status is None:  # the connection is in an unknown state: a new one
                writer.close()
                reader, writer = await asyncio.open_connection(host, int(port))
            elif status >= 300:
                errors[f"HTTP {status}"] += 1
        writer.close()

    await asyncio.gather(*(connection(first) for first in range(conns)))
    return dict(errors)


async def _exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        if line[:15].lower() == b"content-length:":
            length = int(line[15:])
    await reader.readexactly(length)
    return int(head[9:12])


def run_clients(
    server_url: str, token: str, mode: str, *, processes: int, count: int, conns: int
) -> tuple[float, Counter[str]]:
    """`processes` client processes in `mode`, started together; returns the aggregate
    values/s, from the common start to the last one's end, and the errors by kind (a
    client process that failed, values missing from a run afterwards included)."""
    start_at = time.time() + 8.0  # every process imported and connected by then
    command = [sys.executable, __file__, "--client", mode, server_url, token, str(count)]
    command += [str(start_at), str(conns)]
    procs = [subprocess.Popen(command, stdout=subprocess.PIPE, text=True) for _ in range(processes)]
    errors: Counter[str] = Counter()
    values, ended = 0, start_at
    for proc in procs:
        out, _ = proc.communicate(timeout=3600)
        if proc.returncode != 0:
            errors[f"client process exited {proc.returncode}"] += 1
            continue
        result = json.loads(out.strip().splitlines()[-1])
        errors.update(result["errors"])
        if result["stored"] != result["values"]:
            errors[f"values lost: stored {result['stored']} of {result['values']}"] += 1
        values += result["values"]
        ended = max(ended, result["ended"])
    return values / max(ended - start_at, 1e-9), errors


@dataclass
class Phase:
    """One workload against one server, over the rounds: rates and every outcome."""

    rates: list[float] = field(default_factory=list)
    client_errors: Counter[str] = field(default_factory=Counter)
    answers: Counter[str] = field(default_factory=Counter)

    def failed(self) -> dict[str, int]:
        from scaleout import failures

        return {**failures(self.answers), **self.client_errors}


def scaleout(args: argparse.Namespace) -> None:
    from scaleout import DEFAULT_REDIS_URL, bench_home, clear_redis_prefix, fresh_postgres_database
    from scaleout import meshops_server as served

    load_before = os.getloadavg()
    work = Path(tempfile.mkdtemp(prefix="b1-scaleout-", dir=args.work))
    redis_url = args.redis_url or DEFAULT_REDIS_URL
    homes = {
        "sqlite": bench_home(work / "sqlite-home"),
        "pg": bench_home(work / "pg-home", fresh_postgres_database(args.pg_database), redis_url),
    }
    tokens = {name: home.create_token() for name, home in homes.items()}
    phases = {(s, w): Phase() for s in homes for w in CLIENT_MODES}
    emb: list[float] = []
    try:
        with (
            served(homes["sqlite"].env, 1, work / "sqlite.log") as sqlite_server,
            served(homes["pg"].env, 2, work / "pg.log") as pg_server,
        ):
            servers = {"sqlite": sqlite_server, "pg": pg_server}
            for round_no in range(args.rounds):
                order = ["sqlite", "pg"] if round_no % 2 == 0 else ["pg", "sqlite"]
                for mode in CLIENT_MODES:
                    for name in order:
                        _phase(args, servers[name], tokens[name], mode, phases[(name, mode)])
                emb.append(meshops_embedded(work / f"emb{round_no}", args.values))
    finally:
        cleared = clear_redis_prefix(redis_url)
        shutil.rmtree(work, ignore_errors=True)
    _record_scaleout(args, phases, emb, (load_before, os.getloadavg()), cleared)


def _phase(args: argparse.Namespace, server: Any, token: str, mode: str, phase: Phase) -> None:
    """One workload against one server: its rate, and every outcome it caused."""
    processes, count = (1, args.requests) if mode == "http" else (args.clients, args.values)
    offset = server.log_offset()
    rate, errors = run_clients(
        server.url, token, mode, processes=processes, count=count, conns=args.connections
    )
    time.sleep(0.5)  # the workers write their last access lines
    phase.rates.append(rate)
    phase.client_errors.update(errors)
    phase.answers.update(server.outcomes(offset))
    print(f"[b1-scaleout] {server.url} {mode}: {rate:,.0f} values/s, errors {dict(errors)}")


def _record_scaleout(
    args: argparse.Namespace,
    phases: dict[tuple[str, str], Phase],
    emb: list[float],
    loads: tuple[tuple[float, float, float], tuple[float, float, float]],
    cleared: int,
) -> None:
    from scaleout import describe

    load_before, load_after = loads

    def row(workload: str, label: str) -> Row:
        pg, sqlite = phases[("pg", workload)], phases[("sqlite", workload)]
        failed = sum(pg.failed().values()) + sum(sqlite.failed().values())
        return Row(
            f"{label} — failed requests: {failed}",
            median(pg.rates),
            median(sqlite.rates),
            "values/s",
            goal="reported; 0 failed",
        )

    clients, values = args.clients, args.values
    rows = [
        row("sdk", f"SDK per-value log_metric, {clients} client processes × {values:,} values, "
                   "each to its own run"),
        row("batch", f"batch API (chunks of 1000), {clients} client processes × {values:,} "
                     "values, each to its own run"),
        row("http", f"one HTTP request per value (`POST /v1/metrics/batch` of 1 row), "
                    f"{args.requests:,} requests on {args.connections} connections"),
        Row(f"embedded per-value log_metric ({values:,} values, no server), same run",
            median(emb), None, "values/s", goal="≥ 500k/s (B1)"),
    ]  # fmt: skip
    command = ".venv/bin/python benchmarks/b1_metric_logging.py " + " ".join(sys.argv[1:])
    section = record(
        "B1-scaleout",
        "metric logging against `meshops server --workers 2` on PostgreSQL with Redis",
        command.strip(),
        "`meshops server` on a SQLite home, 1 worker (same clients, same run)",
        rows,
    )
    outcome_lines = "".join(
        f"- {server} {workload}: answered {describe(phase.answers)}; client-side errors: "
        f"{dict(phase.client_errors) or 'none'}\n"
        for (server, workload), phase in sorted(phases.items())
    )
    note = (
        f"Rounds: {args.rounds} (the two servers alternate); load average (1/5/15 min) "
        f"{load_before[0]:.1f}/{load_before[1]:.1f}/{load_before[2]:.1f} before, "
        f"{load_after[0]:.1f}/{load_after[1]:.1f}/{load_after[2]:.1f} after (shared 2-core "
        "machine; the servers and the client processes share the cores). Per-round values/s: "
        + "; ".join(
            f"{s} {w} {[round(v) for v in p.rates]}" for (s, w), p in sorted(phases.items())
        )
        + f"; embedded {[round(v) for v in emb]}. Every request the servers answered, from "
        f"their access logs (route, status), and the clients' own errors:\n\n{outcome_lines}"
        f"Each client process checked afterwards that its run holds every value it logged. "
        f"Redis: {cleared} keys under the benchmark's prefix removed at the end.\n"
    )
    text = (HERE / "RESULTS.md").read_text()
    end = "<!-- /B1-scaleout -->"
    (HERE / "RESULTS.md").write_text(text.replace(section, section.replace(end, note + end)))


def peer_version(python: Path) -> str:
    out = subprocess.run(
        [str(python), "-c", "import mlflow; print(mlflow.__version__)"],
        capture_output=True,
        text=True,
        check=False,
    )
    return out.stdout.strip() or "?"


if __name__ == "__main__":
    main()
