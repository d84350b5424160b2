"""Peer helper (runs in the MLflow venv): save the benchmark's pickled scikit-learn model as
an MLflow model directory, so `mlflow models serve` serves the very same estimator."""

from __future__ import annotations

import json
import pickle
import sys

import mlflow.sklearn
import pandas as pd


def main() -> None:
    model_pickle, example_json, target = sys.argv[1:4]
    with open(model_pickle, "rb") as fh:
        model = pickle.load(fh)  # our own file, written by b5_serving.py a moment ago
    with open(example_json) as fh:
        example = pd.DataFrame(json.load(fh))
    mlflow.sklearn.save_model(model, target, input_example=example)
    print(json.dumps({"saved": target}))


if __name__ == "__main__":
    main()
