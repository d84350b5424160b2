"""Refusals through the MLflow client, each an MlflowException carrying meshops's own
message: no token, a consumer's token, and an alias move (or stage transition) that the
promotion gate refuses, with the same message the native SDK gets for the same move."""

from __future__ import annotations

from typing import Any

import pytest

import meshops
from meshops.kernel.errors import Forbidden
from tests.mlflow.conftest import CONSUMER, MlflowWorld

SCRIPT = """
import json, os, warnings
warnings.filterwarnings("ignore")
import mlflow, mlflow.sklearn
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression

c = MlflowClient()
out = {}

def error(call):
    try:
        call()
    except MlflowException as exc:
        return [exc.error_code, exc.message]
    return None

admin = os.environ["MLFLOW_TRACKING_TOKEN"]
# 1. no token at all
del os.environ["MLFLOW_TRACKING_TOKEN"]
out["no_token_search"] = error(lambda: c.search_registered_models())
out["no_token_create"] = error(lambda: c.create_registered_model("anon"))
# 2. a consumer (no role): may not register
os.environ["MLFLOW_TRACKING_TOKEN"] = os.environ["CONSUMER_TOKEN"]
out["consumer_create"] = error(lambda: c.create_registered_model("carls"))
# 3. the promotion gate: champion and production are protected aliases
os.environ["MLFLOW_TRACKING_TOKEN"] = admin
X, y = load_iris(return_X_y=True, as_frame=True)
mlflow.set_experiment("gated")
with mlflow.start_run():
    for c_value in (0.1, 1.0):
        model = LogisticRegression(C=c_value, max_iter=300).fit(X, y)
        # A version copies its run's metrics; a policy wants some before production.
        mlflow.log_metric("accuracy", model.score(X, y))
        mlflow.sklearn.log_model(
            model, name=f"lr{c_value}", registered_model_name="gated",
            pip_requirements=["scikit-learn"],
        )
os.environ["MLFLOW_TRACKING_TOKEN"] = os.environ["CONSUMER_TOKEN"]
out["consumer_search"] = error(lambda: c.search_registered_models())
out["consumer_version_create"] = error(
    lambda: c.create_model_version("gated", "models:/m-" + "0" * 32)
)
out["consumer_alias"] = error(lambda: c.set_registered_model_alias("gated", "candidate", "1"))
os.environ["MLFLOW_TRACKING_TOKEN"] = admin
c.set_registered_model_alias("gated", "champion", "1")  # a first holder: allowed
c.transition_model_version_stage("gated", "1", "Production")
out["champion_move"] = error(lambda: c.set_registered_model_alias("gated", "champion", "2"))
out["production_move"] = error(
    lambda: c.transition_model_version_stage("gated", "2", "Production")
)
out["champion"] = c.get_model_version_by_alias("gated", "champion").version
out["v1_stage"] = c.get_model_version("gated", "1").current_stage
out["v2_stage"] = c.get_model_version("gated", "2").current_stage
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def refused(mlflow_world: MlflowWorld) -> dict[str, Any]:
    out: dict[str, Any] = mlflow_world.run_json(
        SCRIPT, env={"CONSUMER_TOKEN": mlflow_world.token("consumer")}
    )
    return out


def test_no_token_is_unauthenticated_with_meshops_message(refused: dict[str, Any]) -> None:
    for key in ("no_token_search", "no_token_create"):
        code, message = refused[key]
        assert code == "UNAUTHENTICATED"
        assert "token" in message.lower()


def test_a_consumer_cannot_register(refused: dict[str, Any]) -> None:
    # A principal with no role binding: not even the registry is readable to it.
    code, message = refused["consumer_search"]
    assert code == "PERMISSION_DENIED"
    assert f"{CONSUMER} may not registry.read" in message
    for key in ("consumer_create", "consumer_version_create"):
        code, message = refused[key]
        assert code == "PERMISSION_DENIED"
        assert f"{CONSUMER} may not registry.write" in message
    # The client reads the model first (is it a prompt?): refused at that read already.
    code, message = refused["consumer_alias"]
    assert code == "PERMISSION_DENIED"
    assert f"{CONSUMER} may not registry." in message


def test_the_promotion_gate_refuses_through_the_mlflow_api_as_natively(
    refused: dict[str, Any], mlflow_world: MlflowWorld
) -> None:
    assert refused["champion"] == "1"
    assert refused["v1_stage"] == "Production"
    assert refused["v2_stage"] == "None"
    with meshops.connect(mlflow_world.url, token=mlflow_world.token("admin")) as sdk:
        with pytest.raises(Forbidden) as native:
            sdk.registry.set_alias("gated", "champion", 2)
        moves = sdk.registry.alias_history("gated", "champion")
    assert [m.to_version for m in moves] == [1]  # nothing moved
    code, message = refused["champion_move"]
    assert code == "PERMISSION_DENIED"
    assert native.value.message in message
    assert "comparison" in message
    code, message = refused["production_move"]
    assert code == "PERMISSION_DENIED"
    assert native.value.message.replace("champion", "production") in message
