"""B1: log 100k metric values to one run, per value and batched, vs MLflow.

meshops: `meshops server` (subprocess, temp home) and the SDK over HTTP; MLflow: `mlflow
server` with a SQLite backend and MlflowClient, in the peer venv. Also the embedded SDK
(no server). Rounds alternate meshops and MLflow; figures are medians.

    .venv/bin/python benchmarks/b1_metric_logging.py [--values 100000] [--mlflow-values 2000]
    .venv/bin/python benchmarks/b1_metric_logging.py --embedded-only   # no servers, not recorded
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

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
    args = parser.parse_args()
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
