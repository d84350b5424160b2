"""Hand-written pipelines for the OpenLineage tests: plain @step functions that open the
platform with `meshops.connect()` (the environment points at the test's home), publish a
data product, track a training run and register its model."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

import meshops
from meshops.pipelines import pipeline, step
from tests.support.products import data_contract, data_product

COLUMNS = [
    {"name": "x", "logicalType": "number", "required": True},
    {"name": "y", "logicalType": "integer", "required": True},
]


@step(cache=False)
def publish_points(product: str) -> str:
    table = pa.table({"x": [float(i) for i in range(40)], "y": [i % 2 for i in range(40)]})
    with meshops.connect() as platform:
        version = platform.mesh.publish_arrow(
            data_product(product, "points-contract", port="points"),
            {"points": data_contract("points-contract", "points", COLUMNS)},
            {"points": table},
        )
    return version.urn


@step(cache=False)
def train(source: str, model: str) -> int:
    from sklearn.linear_model import LogisticRegression

    with meshops.connect() as platform:
        table = platform.mesh.read(source.split(":")[2])
        frame = table.to_pandas()
        with platform.tracking.start_run("ol-training", name="logreg") as run:
            fitted = LogisticRegression().fit(frame[["x"]], frame["y"])
            run.log_metric("accuracy", float(fitted.score(frame[["x"]], frame["y"])))
            run.log_input(source)
        version = platform.registry.log_model(
            model, fitted, input_example=frame[["x"]].head(3), run_id=run.id
        )
    return version.version


@pipeline
def points_training(product: str = "lab.points", model: str = "points") -> object:
    return train(publish_points(product), model)


@step(cache=False)
def fine() -> int:
    return 1


@step(cache=False)
def broken(value: int) -> int:
    raise RuntimeError(f"broken on purpose after {value}")


@step(cache=False)
def never(value: int) -> int:
    return value


@pipeline
def failing() -> object:
    return never(broken(fine()))


def parameters() -> dict[str, Any]:
    return {"product": "lab.points", "model": "points"}
