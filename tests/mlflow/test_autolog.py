"""A fluent-API training script with `mlflow.sklearn.autolog()` against a real meshops
server: `log_model(..., registered_model_name=...)`, an alias, `models:/name@alias` and
`models:/name/version` loaded back by the MLflow client; then the same objects read
through the meshops SDK (the version IS a meshops version, its run linked in lineage), and
a meshops endpoint serving that version over HTTP. The training data is a meshops data
product (`mlflow.log_input` of `meshops://ml.iris`): lineage runs product -> run -> version."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pyarrow as pa
import pytest

import meshops
from meshops.client import Platform
from meshops.kernel.urn import model_version_urn, run_urn
from meshops.mesh.models import DataProductVersion
from tests.mlflow.conftest import MlflowWorld
from tests.support.products import data_contract, data_product

TRAIN = """
import json, os, warnings
warnings.filterwarnings("ignore")
import mlflow, mlflow.sklearn
from mlflow import MlflowClient
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

iris = load_iris(as_frame=True)
X, y = iris.data, iris.target
mlflow.set_experiment("iris-autolog")
c = MlflowClient()
# The meshops domain of the model, given as a tag (endpoints serving it default to it).
c.create_registered_model("iris", tags={"meshops.domain": "ml"})
mlflow.sklearn.autolog(log_models=False)
out = {}
with mlflow.start_run(run_name="autolog") as run:
    # The training data is a meshops data product: named by its meshops:// URI.
    mlflow.log_input(mlflow.data.from_pandas(X, name="meshops://ml.iris"), context="training")
    model = LogisticRegression(max_iter=500).fit(X, y)
    info = mlflow.sklearn.log_model(
        model,
        name="model",
        registered_model_name="iris",
        input_example=X.head(3),
        pip_requirements=["scikit-learn"],  # no requirement inference (a slow subprocess)
    )
    out["run_id"] = run.info.run_id
    out["model_id"] = info.model_id
    out["registered_version"] = info.registered_model_version
out["model_tags"] = c.get_registered_model("iris").tags
r = c.get_run(out["run_id"])
out["params"] = sorted(k for k in r.data.params if k in ("C", "max_iter"))
out["metrics"] = sorted(k for k in r.data.metrics if k.startswith("training_"))
try:  # a data scientist registers; moving aliases is an ml_engineer's (as natively)
    c.set_registered_model_alias("iris", "candidate", out["registered_version"])
except mlflow.exceptions.MlflowException as exc:
    out["ds_alias_refused"] = [exc.error_code, exc.message]
os.environ["MLFLOW_TRACKING_TOKEN"] = os.environ["ADMIN_TOKEN"]
c.set_registered_model_alias("iris", "candidate", out["registered_version"])
by_alias = mlflow.pyfunc.load_model("models:/iris@candidate")
out["alias_predict"] = [int(p) for p in by_alias.predict(X.head(5))]
native = mlflow.sklearn.load_model(f"models:/iris/{out['registered_version']}")
out["version_predict"] = [int(p) for p in native.predict(X.tail(5))]
out["expected"] = [int(p) for p in model.predict(X.head(5))] + [
    int(p) for p in model.predict(X.tail(5))
]
out["by_alias_version"] = c.get_model_version_by_alias("iris", "candidate").version
out["download_uri"] = c.get_model_version_download_uri("iris", out["registered_version"])
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def product(mlflow_world: MlflowWorld) -> DataProductVersion:
    with meshops.connect(mlflow_world.url, token=mlflow_world.token("admin")) as platform:
        platform.mesh.create_domain("ml")
        contract = data_contract("iris-c", "iris", [{"name": "n", "logicalType": "integer"}])
        return platform.mesh.publish_arrow(
            data_product("ml.iris", "iris-c", port="iris"),
            {"iris": contract},
            {"iris": pa.table({"n": [1, 2, 3]})},
        )


@pytest.fixture(scope="module")
def trained(mlflow_world: MlflowWorld, product: DataProductVersion) -> dict[str, Any]:
    out: dict[str, Any] = mlflow_world.run_json(
        TRAIN, token="data_scientist", env={"ADMIN_TOKEN": mlflow_world.token("admin")}
    )
    return out


@pytest.fixture
def sdk(mlflow_world: MlflowWorld) -> Iterator[Platform]:
    with meshops.connect(mlflow_world.url, token=mlflow_world.token("admin")) as platform:
        yield platform


def test_autolog_log_model_registers_and_loads_through_models_uris(
    trained: dict[str, Any],
) -> None:
    assert trained["registered_version"] == "1"
    assert trained["params"] == ["C", "max_iter"]
    assert "training_accuracy_score" in trained["metrics"]
    assert trained["by_alias_version"] == "1"
    code, message = trained["ds_alias_refused"]
    assert code == "PERMISSION_DENIED"
    assert "dana may not registry.alias" in message
    assert trained["alias_predict"] + trained["version_predict"] == trained["expected"]
    assert trained["download_uri"].startswith("mlflow-artifacts:/")
    assert trained["download_uri"].endswith(f"/models/{trained['model_id']}/artifacts")


def test_the_mlflow_version_is_a_meshops_version(
    trained: dict[str, Any], sdk: Platform, product: DataProductVersion
) -> None:
    version = sdk.registry.get_version("iris", 1)
    assert version.flavor == "mlflow-sklearn"  # skops, MLflow 3's default format
    assert version.run_id == trained["run_id"]
    assert version.aliases == ["candidate"]
    assert version.created_by == "dana"
    assert {f.path for f in version.files} >= {"MLmodel", "model.skops"}
    assert version.signature is not None
    assert version.signature.input_names[:2] == ["sepal length (cm)", "sepal width (cm)"]
    assert "training_accuracy_score" in version.metrics
    model = sdk.registry.get_model("iris")
    assert model.aliases == {"candidate": 1}
    assert model.domain == "ml"
    assert model.tags == {}  # the domain tag is the model's domain, not a tag
    assert trained["model_tags"] == {"meshops.domain": "ml"}
    run = sdk.tracking.get_run(trained["run_id"])
    assert run.params["max_iter"] == "500"
    # Lineage: product version -> run -> model version (and product -> version directly).
    assert [d.urn for d in run.inputs] == [product.urn]
    assert [(d.urn, d.digest) for d in version.input_datasets] == [(product.urn, product.digest)]
    edges = sdk.lineage.upstream(model_version_urn("iris", 1))
    assert {run_urn(trained["run_id"]), product.urn} <= {e.upstream for e in edges}


def test_a_meshops_endpoint_serves_the_mlflow_version(
    trained: dict[str, Any], sdk: Platform, mlflow_world: MlflowWorld
) -> None:
    endpoint = sdk.serving.create_endpoint("iris-mlflow", "models:/iris@candidate")
    assert endpoint.domain == "ml"  # the model's
    rows = [
        {
            "sepal length (cm)": 5.1,
            "sepal width (cm)": 3.5,
            "petal length (cm)": 1.4,
            "petal width (cm)": 0.2,
        },
        {
            "sepal length (cm)": 6.7,
            "sepal width (cm)": 3.0,
            "petal length (cm)": 5.2,
            "petal width (cm)": 2.3,
        },
    ]
    answer = httpx.post(
        f"{mlflow_world.url}/v1/endpoints/iris-mlflow/predict",
        json={"records": rows},
        headers={"authorization": f"Bearer {mlflow_world.token('admin')}"},
        timeout=60,
    )
    assert answer.status_code == 200, answer.text
    assert [int(p) for p in answer.json()["predictions"]] == [0, 2]
