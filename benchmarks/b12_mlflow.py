"""B12: the same MLflow client script against a meshops server and an `mlflow server`.

The script (`b12_mlflow_client.py`, run with the MLflow client of .venv-mlflow, `make
mlflow-client`) does 1,000 fluent `mlflow.log_metric` calls, one `MlflowClient().log_batch`
of 10,000 metric values, and `search_runs` (filter + order, top 100; and every run, paged
by 1000) over 10,000 runs. The 10,000 runs are made first by the same client
(`create_run` + `log_batch`, on a few threads), timed separately. meshops: `meshops server`
(temp home, an API token as MLFLOW_TRACKING_TOKEN); MLflow: `mlflow server` from the same
virtualenv with a SQLite backend. Rounds alternate; figures are medians.

    .venv/bin/python benchmarks/b12_mlflow.py [--runs 10000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import subprocess
import sys
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

sys.path.insert(0, str(Path(__file__).resolve().parent))
from b1_metric_logging import meshops_server, mlflow_server
from harness import HERE, Row, median, record

ROOT = HERE.parent
MLFLOW_PYTHON = ROOT / ".venv-mlflow" / "bin" / "python"
CLIENT = HERE / "b12_mlflow_client.py"


class _NoOp(BaseHTTPRequestHandler):
    """Answers every MLflow call at once (the client's floor): a run for runs/create and
    runs/get, an experiment for experiments/*, for runs/search the very answer meshops gave
    that search (`SEARCHES`, recorded by `record_searches`: the client then parses the same
    bytes), `{}` otherwise."""

    protocol_version = "HTTP/1.1"
    RUN: ClassVar[dict[str, Any]] = {
        "run": {
            "info": {
                "run_id": "0" * 32,
                "run_uuid": "0" * 32,
                "experiment_id": "1",
                "run_name": "floor",
                "user_id": "b12",
                "status": "RUNNING",
                "start_time": 1,
                "artifact_uri": "mlflow-artifacts:/1/0/artifacts",
                "lifecycle_stage": "active",
            },
            "data": {},
            "inputs": {},
        }
    }
    SEARCHES: ClassVar[dict[tuple[str, str], bytes]] = {}  # (filter, page token) -> answer
    EXPERIMENT: ClassVar[dict[str, Any]] = {
        "experiment_id": "1",
        "experiment": {"experiment_id": "1", "name": "b12", "lifecycle_stage": "active"},
    }

    def setup(self) -> None:
        super().setup()
        self.request.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def _answer(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        sent = self.rfile.read(length) if length else b""
        path = self.path
        body: dict[str, Any] = {}
        if "/runs/create" in path or "/runs/get" in path:
            body = self.RUN
        elif "/experiments/" in path:
            body = self.EXPERIMENT
        data = json.dumps(body).encode()
        if "/runs/search" in path:
            asked = json.loads(sent or b"{}")
            data = self.SEARCHES[(asked.get("filter", ""), asked.get("page_token", ""))]
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    do_GET = do_POST = do_PATCH = _answer  # noqa: N815 - http.server names the methods

    def log_message(self, format: str, *args: Any) -> None:
        return None


@contextmanager
def noop_server() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _NoOp)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def record_searches(url: str, token: str, runs: int) -> None:
    """meshops's answers to the script's searches, for the no-op server to give back."""
    import httpx

    with httpx.Client(
        base_url=url, headers={"authorization": f"Bearer {token}"}, timeout=600
    ) as http:
        found = http.get(
            "/api/2.0/mlflow/experiments/get-by-name", params={"experiment_name": "b12-search"}
        )
        experiment = found.json()["experiment"]["experiment_id"]
        base = {"experiment_ids": [experiment], "run_view_type": "ACTIVE_ONLY"}
        top = {**base, "filter": FILTER_TEXT, "max_results": 100, "order_by": ["metrics.m0 DESC"]}
        answer = http.post("/api/2.0/mlflow/runs/search", json=top)
        _NoOp.SEARCHES[(FILTER_TEXT, "")] = answer.content
        token_in, seen = "", 0
        while True:
            page = {**base, "max_results": 1000, **({"page_token": token_in} if token_in else {})}
            answer = http.post("/api/2.0/mlflow/runs/search", json=page)
            _NoOp.SEARCHES[("", token_in)] = answer.content
            body = answer.json()
            seen += len(body.get("runs", []))
            token_in = body.get("next_page_token", "")
            if not token_in:
                break
        assert seen == runs, (seen, runs)


def client(url: str, token: str | None, *args: str) -> dict[str, float]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "MESHOPS_"))}
    env.update({"MLFLOW_TRACKING_URI": url, "GIT_PYTHON_REFRESH": "quiet"})
    if token:
        env["MLFLOW_TRACKING_TOKEN"] = token
    proc = subprocess.run(
        [str(MLFLOW_PYTHON), str(CLIENT), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=7200,
        check=False,
    )
    if proc.returncode != 0:
        raise RuntimeError(f"the MLflow client failed against {url}:\n{proc.stderr[-4000:]}")
    result: dict[str, float] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=1_000)
    parser.add_argument("--batch", type=int, default=10_000)
    parser.add_argument("--searches", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--no-record", action="store_true", help="print, do not record")
    args = parser.parse_args()
    if not MLFLOW_PYTHON.exists():
        sys.exit("the MLflow client virtualenv is missing: run `make mlflow-client`")
    load_before = os.getloadavg()[0]
    measured: dict[str, dict[str, list[float]]] = {"meshops": {}, "mlflow": {}, "floor": {}}
    setup: dict[str, float] = {}
    version = ""
    with tempfile.TemporaryDirectory() as tmp_dir:
        tmp = Path(tmp_dir)
        with (
            meshops_server(tmp / "home") as (mesh_url, token),
            mlflow_server(MLFLOW_PYTHON, tmp / "mlflow.db") as mlflow_url,
            noop_server() as floor_url,
        ):
            targets = {"meshops": (mesh_url, token), "mlflow": (mlflow_url, None)}
            for name, (url, tok) in targets.items():
                done = client(url, tok, "setup", str(args.runs), str(args.threads))
                setup[name] = done["setup_s"]
                print(f"[b12] setup {name}: {args.runs} runs in {done['setup_s']:.1f}s", flush=True)
            record_searches(mesh_url, token, args.runs)
            for round_no in range(args.rounds):
                for name, (url, tok) in targets.items():
                    got = client(
                        url, tok, "measure", str(args.calls), str(args.batch), str(args.searches)
                    )
                    version = str(got.pop("mlflow_version", version))
                    assert got["all_pages_runs"] == args.runs, got
                    for key, value in got.items():
                        measured[name].setdefault(key, []).append(float(value))
                    print(f"[b12] round {round_no} {name}: {got}", flush=True)
                got = client(
                    floor_url, None, "floor", str(args.calls), str(args.batch), str(args.searches)
                )
                for key, value in got.items():
                    measured["floor"].setdefault(key, []).append(float(value))
                print(f"[b12] round {round_no} client floor: {got}", flush=True)
    mesh = {k: median(v) for k, v in measured["meshops"].items()}
    peer = {k: median(v) for k, v in measured["mlflow"].items()}
    rows = [
        Row(
            f"{args.calls:,} fluent mlflow.log_metric calls",
            mesh["log_metric_s"] * 1000,
            peer["log_metric_s"] * 1000,
            "ms",
            higher_is_better=False,
            goal="≥ 10×",
        ),
        Row(
            f"MlflowClient().log_batch of {args.batch:,} metric values",
            mesh["log_batch_s"] * 1000,
            peer["log_batch_s"] * 1000,
            "ms",
            higher_is_better=False,
            goal="≥ 10×",
        ),
        Row(
            f"search_runs over {args.runs:,} runs: `{FILTER_TEXT}` order by metrics.m0 DESC, "
            "top 100 (median)",
            mesh["search_s"] * 1000,
            peer["search_s"] * 1000,
            "ms",
            higher_is_better=False,
            goal="≥ 10×",
        ),
        Row(
            f"search_runs, every one of the {args.runs:,} runs (pages of 1000)",
            mesh["all_pages_s"] * 1000,
            peer["all_pages_s"] * 1000,
            "ms",
            higher_is_better=False,
            goal="≥ 10×",
        ),
        Row(
            f"setup (not a goal): {args.runs:,} runs by create_run + log_batch, "
            f"{args.threads} client threads",
            setup["meshops"],
            setup["mlflow"],
            "s",
            higher_is_better=False,
        ),
    ]
    if args.no_record:
        for row in rows:
            print(row, f"ratio {row.ratio}")
        return
    command = ".venv/bin/python benchmarks/b12_mlflow.py " + " ".join(sys.argv[1:])
    section = record(
        "B12",
        f"the same MLflow {version} client script against meshops and `mlflow server`",
        command.strip(),
        f"mlflow server {version} (SQLite)",
        rows,
    )
    floor = {k: median(v) for k, v in measured["floor"].items()}
    note = (
        f"Rounds: {args.rounds}; load average {load_before:.2f} before, "
        f"{os.getloadavg()[0]:.2f} after (shared 2-core machine). **The client's floor**: the "
        "same script against a no-op server answering at once (for searches, with meshops's "
        "own answer bytes, so the client parses the same runs), in the same run: "
        + ", ".join(
            f"{phase} {floor[key] * 1000:,.0f} ms (the ratio a server answering in no time "
            f"would reach: {peer[key] / floor[key]:.1f}×; server share: meshops "
            f"{share(mesh[key], floor[key])}, MLflow {share(peer[key], floor[key])})"
            for phase, key in (
                ("log_metric", "log_metric_s"),
                ("log_batch", "log_batch_s"),
                ("search top-100", "search_s"),
                ("all pages", "all_pages_s"),
            )
        )
        + "."
    )
    print(note)
    text = (HERE / "RESULTS.md").read_text()
    (HERE / "RESULTS.md").write_text(
        text.replace(section, section.replace("<!-- /B12 -->", note + "\n<!-- /B12 -->"))
    )


def share(total_s: float, floor_s: float) -> str:
    """A server's share of a phase: its time beyond the client's floor (the floor is
    measured in its own pass, so a share within its noise shows as ≈ 0)."""
    extra = (total_s - floor_s) * 1000
    return f"{extra:,.0f} ms" if extra > 0 else f"≈ 0 ms ({extra:,.0f} ms: within the noise)"


FILTER_TEXT = "metrics.m1 < 0.5 and params.p2 = 'v3'"

if __name__ == "__main__":
    main()
