"""B2 peer: MLflow `search_runs` over 100k runs (runs in the peer venv).

`populate <db_path> <runs>` creates the MLflow schema with its SqlAlchemyStore, then writes
the runs, params and latest metrics with bulk SQL INSERTs into that schema (calling
create_run/log_batch 100k times would take hours); the data matches b2_search_runs.py.
`search <tracking_uri> <repeats>` times `MlflowClient.search_runs` against a running
`mlflow server` on that database and prints the latencies as one JSON line.
"""

from __future__ import annotations

import json
import sqlite3
import sys
import time

FILTER = "metrics.m1 < 0.5 and params.p2 = 'v3'"
ORDER = ["metrics.m0 DESC"]


def populate(db_path: str, count: int) -> None:
    import numpy as np
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(f"sqlite:///{db_path}", "/tmp/mlflow-b2-artifacts")
    exp_id = int(store.create_experiment("b2"))
    store.engine.dispose()
    metrics = np.random.default_rng(42).random((count, 10))
    now = int(time.time() * 1000)
    db = sqlite3.connect(db_path)
    db.executemany(
        "INSERT INTO runs (run_uuid, name, source_type, source_name, entry_point_name, user_id,"
        " status, start_time, end_time, source_version, lifecycle_stage, artifact_uri,"
        " experiment_id) VALUES (?, ?, 'LOCAL', '', '', 'bench', 'FINISHED', ?, ?, '', 'active',"
        " '', ?)",
        [(f"{i:032x}", f"r{i}", now + i, now + i + 1, exp_id) for i in range(count)],
    )
    db.executemany(
        "INSERT INTO params (key, value, run_uuid) VALUES (?, ?, ?)",
        [(f"p{j}", f"v{(i * 7 + j) % 10}", f"{i:032x}") for i in range(count) for j in range(10)],
    )
    db.executemany(
        "INSERT INTO latest_metrics (key, value, timestamp, step, is_nan, run_uuid)"
        " VALUES (?, ?, ?, 0, 0, ?)",
        [
            (f"m{j}", float(metrics[i, j]), now, f"{i:032x}")
            for i in range(count)
            for j in range(10)
        ],
    )
    db.executemany(
        "INSERT INTO metrics (key, value, timestamp, step, is_nan, run_uuid)"
        " VALUES (?, ?, ?, 0, 0, ?)",
        [
            (f"m{j}", float(metrics[i, j]), now, f"{i:032x}")
            for i in range(count)
            for j in range(10)
        ],
    )
    db.commit()
    db.close()
    print(json.dumps({"populated": count}))


def search(uri: str, repeats: int) -> None:
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=uri)
    exp_id = client.get_experiment_by_name("b2").experiment_id
    latencies, found = [], 0
    for _ in range(repeats):
        start = time.perf_counter()
        runs = client.search_runs([exp_id], FILTER, order_by=ORDER, max_results=100)
        latencies.append(time.perf_counter() - start)
        found = len(runs)
    print(json.dumps({"latencies_s": latencies, "found": found}))


if __name__ == "__main__":
    if sys.argv[1] == "populate":
        populate(sys.argv[2], int(sys.argv[3]))
    else:
        search(sys.argv[2], int(sys.argv[3]))
