"""A hand-written retraining pipeline: plain @step functions that open the platform with
`meshops.connect()` (wherever the environment points: a home, or a server with a token),
train a scikit-learn model, track it, register it and put it behind the endpoint. No
template helpers, no explicit lineage calls: the step API links what the steps create
(tests/pipelines/test_step_lineage.py)."""

from __future__ import annotations

from typing import Any

import pandas as pd

import meshops
from meshops.pipelines import pipeline, step

FEATURES = ["sepal length (cm)", "sepal width (cm)", "petal length (cm)", "petal width (cm)"]


@step(cache=False)
def load_iris() -> pd.DataFrame:
    from sklearn.datasets import load_iris as iris

    frame: pd.DataFrame = iris(as_frame=True).frame
    return frame


@step(cache=False)
def train(frame: pd.DataFrame, model: str, source: str) -> dict[str, Any]:
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import accuracy_score
    from sklearn.model_selection import train_test_split

    x, y = frame[FEATURES], frame["target"]
    x_train, x_test, y_train, y_test = train_test_split(x, y, test_size=0.3, random_state=0)
    with meshops.connect() as platform:
        with platform.tracking.start_run("iris-retraining", name="logreg") as run:
            fitted = LogisticRegression(max_iter=500).fit(x_train, y_train)
            run.log_params({"max_iter": "500"})
            run.log_metric("accuracy", float(accuracy_score(y_test, fitted.predict(x_test))))
            run.log_input(source)
        version = platform.registry.log_model(
            model, fitted, input_example=x_test.head(5), run_id=run.id
        )
    return {"run": run.id, "version": version.version, "urn": version.urn}


@step(cache=False)
def deploy(trained: dict[str, Any], model: str, endpoint: str) -> str:
    with meshops.connect() as platform:
        platform.serving.set_traffic(endpoint, model=f"{model}/{trained['version']}")
    return endpoint


@pipeline
def retrain(model: str = "iris", endpoint: str = "iris-api", source: str = "") -> object:
    return deploy(train(load_iris(), model, source), model, endpoint)


@step(cache=False)
def publish_and_build(product: str, version: str, view: str) -> dict[str, str]:
    """Publishes a new version of a product (other content: a new version; the same
    content: the version that holds it), then builds a training set from its view."""
    import pyarrow as pa

    from tests.features.helpers import publish
    from tests.features.test_end_to_end import TS, hours, orders_v1

    entities = pa.table({"customer_id": [1, 2], "event_timestamp": pa.array([hours(12)] * 2, TS)})
    with meshops.connect() as platform:
        same = publish(platform, product, "1.0.5", orders_v1())  # as published: 1.0.0
        fresh = orders_v1()
        fresh = fresh.set_column(2, "orders_7d", pa.array([2, 3, 4, 11, 12]))
        published = publish(platform, product, version, fresh)
        built = platform.features.training_set(entities, [f"{view}:orders_7d"], name=f"{view}_step")
    return {"product": published.urn, "reused": same.urn, "training_set": built.info.urn}


@pipeline
def feature_build(product: str = "", version: str = "", view: str = "") -> object:
    return publish_and_build(product, version, view)
