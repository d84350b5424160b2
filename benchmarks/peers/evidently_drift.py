"""Peer side of B6: Evidently's DataDriftPreset on the same Parquet files.

Runs in the Evidently peer environment; prints one JSON line: the wall time of
`Report([DataDriftPreset()]).run(...)` (data already in pandas) and each column's verdict.
"""

from __future__ import annotations

import json
import sys
import time

import pandas as pd
from evidently import DataDefinition, Dataset, Report
from evidently.presets import DataDriftPreset

P_VALUE_METHODS = {"K-S p_value": "<=", "chi-square p_value": "<", "Z-test p_value": "<"}


def main() -> None:
    reference_path, current_path, columns_json = sys.argv[1:4]
    columns = json.loads(columns_json)
    reference = pd.read_parquet(reference_path)
    current = pd.read_parquet(current_path)
    definition = DataDefinition(
        numerical_columns=columns["numeric"], categorical_columns=columns["categorical"]
    )
    start, cpu_start = time.perf_counter(), time.process_time()
    snapshot = Report([DataDriftPreset()]).run(
        Dataset.from_pandas(current, data_definition=definition),
        Dataset.from_pandas(reference, data_definition=definition),
    )
    seconds = time.perf_counter() - start
    cpu_seconds = time.process_time() - cpu_start
    verdicts = {}
    for metric in snapshot.dict()["metrics"]:
        config = metric["config"]
        if not config["type"].endswith("ValueDrift"):
            continue
        method, threshold, score = config["method"], config["threshold"], metric["value"]
        op = P_VALUE_METHODS.get(method)
        if op == "<=":
            drifted = score <= threshold
        elif op == "<":
            drifted = score < threshold
        else:
            drifted = score >= threshold
        verdicts[config["column"]] = {
            "method": method,
            "threshold": threshold,
            "score": score,
            "drifted": bool(drifted),
        }
    print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds, "columns": verdicts}))


if __name__ == "__main__":
    main()
