"""B5: serve a scikit-learn model over HTTP to 64 concurrent clients, vs `mlflow models serve`
of the same model with the same worker count, and a bare uvicorn app calling the model.

meshops: `meshops serve ENDPOINT --workers W` (standalone data plane: signature validation,
request id, prediction log, Prometheus metrics) on `/v1/endpoints/bench/predict`; MLflow:
`mlflow models serve --env-manager local --workers W` on `/invocations` (peer venv); the
bare app: uvicorn with W workers, JSON -> numpy -> model.predict. One JSON record per
request. Rounds alternate the three servers; figures are medians over rounds.

The load generator (`b5_loadgen.py`, its own process, uvloop + httptools, a few tens of
microseconds of CPU per request) is the same for all three servers. Per server and round:

- throughput: CLIENTS connections in a closed loop for SECONDS. req/s is what the server
  does with the cores it shares with the load generator. Its latencies are queueing (by
  Little's law about CLIENTS / req/s for any server) and are reported only as such.
- latency: an open loop at a fixed --rate (default 50 req/s, well below every server's
  throughput here, MLflow's included) for SECONDS, each latency counted from the request's
  scheduled start. p50/p99 there is what a client sees at that load: the "p99 < 20 ms"
  goal is judged on it.

    .venv/bin/python benchmarks/b5_serving.py [--seconds 30] [--clients 64] [--workers 2]
        [--rate 50] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import os
import pickle
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import httpx
import numpy as np
import pandas as pd
from sklearn.linear_model import LogisticRegression

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import HERE, Row, median, peer_python, record, run_peer

ROOT = HERE.parent
PY = sys.executable
COLUMNS = [f"f{i}" for i in range(20)]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@contextmanager
def server(command: list[str], health: str, env: dict[str, str]) -> Iterator[None]:
    # stderr goes to a file, not a pipe: a server that logs per request would block on a
    # full pipe nobody reads (the bare app did, on sklearn's feature-name warning).
    with tempfile.TemporaryFile() as log:
        proc = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=log)
        try:
            _wait_healthy(proc, health, command, log)
            yield
        finally:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(60)
            except subprocess.TimeoutExpired:
                proc.kill()


def _wait_healthy(
    proc: subprocess.Popen[bytes], health: str, command: list[str], log: IO[bytes]
) -> None:
    deadline = time.monotonic() + 180
    while True:
        if proc.poll() is not None:
            log.seek(0)
            raise RuntimeError(f"{command[:4]} exited: {log.read().decode()[-3000:]}")
        try:
            if httpx.get(health, timeout=1).status_code < 500:
                return
        except httpx.HTTPError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{command[:4]} did not start")
        time.sleep(0.3)


def load(url: str, body: Path, args: argparse.Namespace) -> dict[str, float]:
    """Warm-up (connections, first-request costs), the closed-loop throughput run, then the
    open-loop latency run; one dict of figures (latency-run keys prefixed `open_`)."""
    loadgen = HERE / "b5_loadgen.py"
    run_peer(Path(PY), loadgen, url, str(body), "8", "1")
    seconds = str(args.seconds)
    closed = run_peer(Path(PY), loadgen, url, str(body), str(args.clients), seconds)
    rate = ["--rate", str(args.rate)]
    opened = run_peer(Path(PY), loadgen, url, str(body), str(args.clients), seconds, *rate)
    return {
        **{k: float(v) for k, v in closed.items() if isinstance(v, int | float)},
        **{f"open_{k}": float(v) for k, v in opened.items() if isinstance(v, int | float)},
    }


def prepare(work: Path) -> tuple[dict[str, str], Path, Path, Path]:
    """Train the model, register it in a fresh meshops home with an endpoint, pickle it for
    the bare app and save it as an MLflow model."""
    from meshops.client import Platform
    from meshops.kernel.config import load_settings
    from meshops.kernel.home import Home

    rng = np.random.default_rng(5)
    frame = pd.DataFrame(rng.normal(size=(5_000, len(COLUMNS))), columns=COLUMNS)
    target = (frame.sum(axis=1) > 0).astype(int)
    model = LogisticRegression().fit(frame, target)
    home_dir = work / "home"
    env = {**os.environ, "MESHOPS_HOME": str(home_dir), "MESHOPS_USER": "bench"}
    settings = load_settings(home=home_dir, env={"MESHOPS_USER": "bench"})
    with Platform(settings, home=Home(settings)) as platform:
        platform.registry.create_model("bench", domain="bench")
        # The default promotion gate wants evaluation metrics before a model reaches champion.
        accuracy = float(model.score(frame, target))
        platform.registry.log_model(
            "bench", model, input_example=frame.head(5), metrics={"accuracy": accuracy}
        )
        platform.registry.set_alias("bench", "champion", 1)
        platform.serving.create_endpoint("bench", "bench@champion")
    pickled = work / "model.pkl"
    pickled.write_bytes(pickle.dumps(model))
    example = work / "example.json"
    example.write_text(frame.head(5).to_json(orient="columns"))
    one = {c: float(v) for c, v in frame.iloc[0].items()}
    ours = work / "records.json"
    ours.write_text(json.dumps({"records": [one]}))
    theirs = work / "mlflow.json"
    theirs.write_text(json.dumps({"dataframe_records": [one]}))
    mlflow_python = peer_python("mlflow", ["mlflow"])
    run_peer(
        mlflow_python,
        HERE / "peers" / "mlflow_serve_model.py",
        str(pickled),
        str(example),
        str(work / "mlflow-model"),
    )
    env["B5_MODEL_PICKLE"] = str(pickled)
    env["B5_COLUMNS"] = json.dumps(COLUMNS)
    return env, ours, theirs, mlflow_python


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=30)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--rate", type=float, default=50.0, help="open-loop requests/s")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="meshops-b5-"))
    env, ours, theirs, mlflow_python = prepare(work)
    w = str(args.workers)
    results: dict[str, list[dict[str, float]]] = {"meshops": [], "mlflow": [], "bare": []}
    for _ in range(args.rounds):
        port = free_port()
        meshops_cmd = [PY, "-m", "meshops.cli.main", "serve", "bench", "--no-auth"]
        with server(
            [*meshops_cmd, "--port", str(port), "--workers", w],
            f"http://127.0.0.1:{port}/healthz",
            env,
        ):
            url = f"http://127.0.0.1:{port}/v1/endpoints/bench/predict"
            results["meshops"].append(load(url, ours, args))
        port = free_port()
        mlflow_cmd = [
            str(mlflow_python),
            "-m",
            "mlflow",
            "models",
            "serve",
            "-m",
            str(work / "mlflow-model"),
        ]
        mlflow_cmd += ["-h", "127.0.0.1", "-p", str(port), "-w", w, "--env-manager", "local"]
        # mlflow execs `uvicorn` by name: its venv's bin must come first on PATH.
        mlflow_env = {**env, "PATH": f"{mlflow_python.parent}:{env.get('PATH', '')}"}
        with server(mlflow_cmd, f"http://127.0.0.1:{port}/ping", mlflow_env):
            url = f"http://127.0.0.1:{port}/invocations"
            results["mlflow"].append(load(url, theirs, args))
        port = free_port()
        bare_cmd = [PY, "-m", "uvicorn", "--app-dir", str(HERE / "peers"), "bare_uvicorn_app:app"]
        bare_cmd += ["--port", str(port), "--workers", w, "--log-level", "warning"]
        with server(bare_cmd, f"http://127.0.0.1:{port}/", env):
            url = f"http://127.0.0.1:{port}/"
            results["bare"].append(load(url, ours, args))
    report(results, args, work)


def report(
    results: dict[str, list[dict[str, float]]], args: argparse.Namespace, work: Path
) -> None:
    def med(who: str, key: str) -> float:
        return median([r[key] for r in results[who]])

    for who, runs in results.items():
        print(who, json.dumps(runs))
    errors = {
        who: int(sum(r["errors"] + r["open_errors"] for r in runs)) for who, runs in results.items()
    }
    rate = f"at {args.rate:g} req/s (open loop)"
    rows = [
        Row(
            f"req/s, {args.clients} clients (closed loop) vs mlflow models serve",
            med("meshops", "rps"),
            med("mlflow", "rps"),
            "req/s",
            goal="≥ 3× MLflow",
        ),
        Row(
            f"req/s, {args.clients} clients vs bare uvicorn app (the limit)",
            med("meshops", "rps"),
            med("bare", "rps"),
            "req/s",
            goal="≥ 0.7× bare",
        ),
        Row(
            f"p99 latency {rate} vs mlflow",
            med("meshops", "open_p99_ms"),
            med("mlflow", "open_p99_ms"),
            "ms",
            higher_is_better=False,
            goal="p99 < 20 ms",
        ),
        Row(
            f"p99 latency {rate} vs bare app",
            med("meshops", "open_p99_ms"),
            med("bare", "open_p99_ms"),
            "ms",
            higher_is_better=False,
        ),
        Row(
            f"p50 latency {rate} vs mlflow",
            med("meshops", "open_p50_ms"),
            med("mlflow", "open_p50_ms"),
            "ms",
            higher_is_better=False,
        ),
        Row(
            f"p99 latency, {args.clients} clients (closed loop: queueing) vs mlflow",
            med("meshops", "p99_ms"),
            med("mlflow", "p99_ms"),
            "ms",
            higher_is_better=False,
        ),
    ]
    cmd = (
        f".venv/bin/python benchmarks/b5_serving.py --seconds {args.seconds:g} "
        f"--clients {args.clients} --workers {args.workers} --rate {args.rate:g} "
        f"--rounds {args.rounds}"
    )
    client_cpu = median([r["client_cpu_us"] for runs in results.values() for r in runs])
    record(
        "B5",
        f"model serving, {args.clients} clients, {args.workers} workers, "
        f"{args.seconds:g} s per run per server per round (errors: {errors}; load generator "
        f"{client_cpu:.0f} µs CPU per request)",
        cmd,
        "peer",
        rows,
    )


if __name__ == "__main__":
    main()
