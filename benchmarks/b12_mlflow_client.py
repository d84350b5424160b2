"""B12 client: the SAME MLflow client script against meshops and against `mlflow server`.

Runs in the MLflow client's virtualenv (.venv-mlflow); MLFLOW_TRACKING_URI (and, for
meshops, MLFLOW_TRACKING_TOKEN) say which server. Prints one JSON line of seconds.

    b12_mlflow_client.py setup <runs> <threads>   # the 10k runs search_runs reads
    b12_mlflow_client.py measure <log_metric calls> <log_batch values> <searches>
    b12_mlflow_client.py floor <log_metric calls> <log_batch values> <searches>  # no-op server
"""

from __future__ import annotations

import json
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

from mlflow.entities import Metric, Param, RunTag

import mlflow
from mlflow import MlflowClient

SEARCH_EXPERIMENT = "b12-search"
FILTER = "metrics.m1 < 0.5 and params.p2 = 'v3'"
ORDER = ["metrics.m0 DESC"]


def experiment_id(client: MlflowClient, name: str) -> str:
    found = client.get_experiment_by_name(name)
    return found.experiment_id if found else client.create_experiment(name)


def setup(runs: int, threads: int) -> dict[str, float]:
    client = MlflowClient()
    exp = experiment_id(client, SEARCH_EXPERIMENT)
    now = int(time.time() * 1000)

    def one(i: int) -> None:
        run = client.create_run(exp, run_name=f"r{i}", tags={"team": f"t{i % 7}"})
        client.log_batch(
            run.info.run_id,
            metrics=[
                Metric("m0", (i * 7919 % 10007) / 10007, now, 0),
                Metric("m1", (i * 104729 % 10009) / 10009, now, 0),
            ],
            params=[Param("p1", str(i % 13)), Param("p2", f"v{i % 10}")],
            tags=[RunTag("seed", str(i))],
        )

    start = time.perf_counter()
    with ThreadPoolExecutor(threads) as pool:
        list(pool.map(one, range(runs)))
    return {"setup_s": time.perf_counter() - start, "runs": runs}


def measure(calls: int, batch_values: int, searches: int) -> dict[str, float]:
    client = MlflowClient()
    mlflow.set_experiment("b12")
    # 1. fluent log_metric, one HTTP call each (the client's default: synchronous)
    with mlflow.start_run() as run:
        start = time.perf_counter()
        for i in range(calls):
            mlflow.log_metric("loss", i * 0.001, step=i)
        log_metric_s = time.perf_counter() - start
    assert len(client.get_metric_history(run.info.run_id, "loss")) == calls
    # 2. one MlflowClient().log_batch of `batch_values` values (the client splits it into
    # requests of 1000 metrics, MLflow's per-request limit)
    batch_run = client.create_run(run.info.experiment_id)
    now = int(time.time() * 1000)
    metrics = [Metric("loss", i * 0.001, now, i) for i in range(batch_values)]
    start = time.perf_counter()
    client.log_batch(batch_run.info.run_id, metrics=metrics)
    log_batch_s = time.perf_counter() - start
    client.set_terminated(batch_run.info.run_id)
    return {
        "log_metric_s": log_metric_s,
        "log_batch_s": log_batch_s,
        **search(client, searches),
        "mlflow_version": mlflow.__version__,
    }


def search(client: MlflowClient, searches: int) -> dict[str, float]:
    """3. search_runs over the setup's runs: filter + order, top 100; then every run, paged."""
    exp = client.get_experiment_by_name(SEARCH_EXPERIMENT)
    assert exp is not None, "run `setup` first"
    times, found = [], 0
    for _ in range(searches):
        start = time.perf_counter()
        found = len(
            client.search_runs([exp.experiment_id], FILTER, order_by=ORDER, max_results=100)
        )
        times.append(time.perf_counter() - start)
    start = time.perf_counter()
    total, token = 0, None
    while True:
        page = client.search_runs([exp.experiment_id], max_results=1000, page_token=token)
        total += len(page)
        token = page.token
        if not token:
            break
    return {
        "search_s": statistics.median(times),
        "search_found": found,
        "all_pages_s": time.perf_counter() - start,
        "all_pages_runs": total,
    }


def floor(calls: int, batch_values: int, searches: int) -> dict[str, float]:
    """The same phases against a server that answers at once (searches: with meshops's
    recorded answers): the client's own time, the best any server can give this script."""
    mlflow.set_experiment("b12")
    with mlflow.start_run() as run:
        start = time.perf_counter()
        for i in range(calls):
            mlflow.log_metric("loss", i * 0.001, step=i)
        log_metric_s = time.perf_counter() - start
    now = int(time.time() * 1000)
    metrics = [Metric("loss", i * 0.001, now, i) for i in range(batch_values)]
    start = time.perf_counter()
    MlflowClient().log_batch(run.info.run_id, metrics=metrics)
    log_batch_s = time.perf_counter() - start
    return {
        "log_metric_s": log_metric_s,
        "log_batch_s": log_batch_s,
        **search(MlflowClient(), searches),
    }


if __name__ == "__main__":
    if sys.argv[1] == "floor":
        result = floor(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    elif sys.argv[1] == "setup":
        result = setup(int(sys.argv[2]), int(sys.argv[3]))
    else:
        result = measure(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    print(json.dumps(result))
