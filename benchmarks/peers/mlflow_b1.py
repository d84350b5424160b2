"""B1 peer: MLflow metric logging against a running `mlflow server` (runs in the peer venv).

Usage: mlflow_b1.py <tracking_uri> <per_value_count> <batch_count> [<async_count>]
Prints one JSON line: per-value and log_batch values/s, and with <async_count> the
per-value calls in MLflow's asynchronous mode (`log_metric(..., synchronous=False)`: the
client queues values and a background thread sends them in batches), timed until every
call's returned operation is done (all values stored; `mlflow.flush_async_logging()` flushes
the fluent API's store, not this client's).
"""

from __future__ import annotations

import json
import sys
import time

from mlflow.entities import Metric
from mlflow.tracking import MlflowClient


def main() -> None:
    uri, per_value, batch_count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    client = MlflowClient(tracking_uri=uri)
    exp = client.get_experiment_by_name("b1") or client.get_experiment(
        client.create_experiment("b1")
    )
    run = client.create_run(exp.experiment_id)
    start = time.perf_counter()
    for i in range(per_value):
        client.log_metric(run.info.run_id, "loss", i * 0.001, step=i)
    per_value_s = time.perf_counter() - start
    client.set_terminated(run.info.run_id)

    run = client.create_run(exp.experiment_id)
    now = int(time.time() * 1000)
    start = time.perf_counter()
    for chunk in range(0, batch_count, 1000):
        metrics = [Metric("loss", i * 0.001, now, i) for i in range(chunk, chunk + 1000)]
        client.log_batch(run.info.run_id, metrics=metrics)
    batch_s = time.perf_counter() - start
    client.set_terminated(run.info.run_id)
    result = {"per_value_per_s": per_value / per_value_s, "batch_per_s": batch_count / batch_s}
    if len(sys.argv) > 4:
        result["async_per_s"] = asynchronous(client, exp.experiment_id, int(sys.argv[4]))
    print(json.dumps(result))


def asynchronous(client: MlflowClient, experiment_id: str, count: int) -> float:
    run = client.create_run(experiment_id)
    start = time.perf_counter()
    pending = [
        client.log_metric(run.info.run_id, "loss", i * 0.001, step=i, synchronous=False)
        for i in range(count)
    ]
    for operation in pending:  # each call's RunOperations: done once its batch is stored
        if operation is not None:
            operation.wait()
    elapsed = time.perf_counter() - start
    stored = len(client.get_metric_history(run.info.run_id, "loss"))
    assert stored == count, f"{stored} of {count} values stored"
    client.set_terminated(run.info.run_id)
    return count / elapsed


if __name__ == "__main__":
    main()
