"""`MlflowClient` registry calls against a real meshops server: registered models and
versions (from a logged model and from run artifacts), search with filters and order,
tags, aliases, stage transitions, delete; then the same objects read through the meshops
SDK. One client script does all the calls (starting the client costs seconds)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

import meshops
from meshops.client import Platform
from meshops.kernel.errors import Forbidden, InvalidInput, NotFound
from meshops.kernel.urn import model_version_urn, run_urn
from meshops.mlflow.registry import parse_filter
from meshops.mlflow.registry_lineage import product_input
from meshops.registry.models import VersionStatus
from tests.mlflow.conftest import MlflowWorld
from tests.support.products import data_contract, data_product

SCRIPT = """
import json, os, tempfile, warnings
warnings.filterwarnings("ignore")
import mlflow, mlflow.sklearn
from mlflow import MlflowClient
from mlflow.exceptions import MlflowException
from sklearn.datasets import load_breast_cancer
from sklearn.tree import DecisionTreeClassifier

X, y = load_breast_cancer(return_X_y=True, as_frame=True)
X = X.iloc[:, :5]
c = MlflowClient()
out = {}

def error(call):
    try:
        call()
    except MlflowException as exc:
        return [exc.error_code, exc.message]
    return None

rm = c.create_registered_model("churn-rf", tags={"team": "risk"}, description="churn model")
out["created"] = [rm.name, rm.description, rm.tags]
out["again"] = error(lambda: c.create_registered_model("churn-rf"))
c.create_registered_model("scratch")
mlflow.set_experiment("registry")
reqs = ["scikit-learn"]
TREE = ["sklearn.tree._tree.Tree"]  # MLflow asks; meshops checks the node arrays itself
ids = []
with mlflow.start_run() as run:
    for depth in (2, 4):
        model = DecisionTreeClassifier(max_depth=depth, random_state=0).fit(X, y)
        info = mlflow.sklearn.log_model(
            model, name=f"tree{depth}", pip_requirements=reqs, skops_trusted_types=TREE
        )
        ids.append(info.model_id)
        mv = mlflow.register_model(info.model_uri, "churn-rf", tags={"depth": str(depth)})
        out.setdefault("versions", []).append([mv.version, mv.source, mv.run_id])
    folder = os.path.join(tempfile.mkdtemp(), "exported")
    mlflow.sklearn.save_model(
        model, folder, serialization_format="cloudpickle", pip_requirements=reqs
    )
    mlflow.log_artifacts(folder, "exported")
    out["run_id"] = run.info.run_id
mv = c.create_model_version(
    "churn-rf", f"runs:/{out['run_id']}/exported", run_id=out["run_id"], description="pickled"
)
out["from_run"] = [mv.version, mv.source, mv.description]
out["ids"] = ids

out["like"] = [m.name for m in c.search_registered_models("name LIKE 'churn%'")]
out["by_tag"] = [m.name for m in c.search_registered_models("tags.team = 'risk'")]
out["ordered"] = [m.name for m in c.search_registered_models(order_by=["name DESC"])]
out["bad_filter"] = error(lambda: c.search_registered_models("name ~ 'x'"))
found = c.search_model_versions("name = 'churn-rf'", order_by=["version_number ASC"])
out["versions_asc"] = [v.version for v in found]
found = c.search_model_versions(f"run_id = '{out['run_id']}' AND tags.depth = '4'")
out["by_run_and_tag"] = [v.version for v in found]
page = c.search_model_versions("name = 'churn-rf'", max_results=2)
out["paged"] = [[v.version for v in page], bool(page.token)]

c.set_registered_model_tag("churn-rf", "stage", "pilot")
c.delete_registered_model_tag("churn-rf", "team")
c.update_registered_model("churn-rf", description="churn, tree models")
c.set_model_version_tag("churn-rf", "2", "validated", "yes")
c.delete_model_version_tag("churn-rf", "1", "depth")
c.update_model_version("churn-rf", "2", description="deeper tree")
rm = c.get_registered_model("churn-rf")
out["model_after"] = [rm.description, rm.tags]
v2 = c.get_model_version("churn-rf", "2")
out["v2"] = [v2.description, v2.tags, v2.current_stage, v2.status]
out["v1_tags"] = c.get_model_version("churn-rf", "1").tags

c.set_registered_model_alias("churn-rf", "candidate", "2")
out["alias"] = c.get_model_version_by_alias("churn-rf", "candidate").version
out["aliases"] = c.get_registered_model("churn-rf").aliases
c.transition_model_version_stage("churn-rf", "1", "Staging")
out["staging"] = [v.version for v in c.get_latest_versions("churn-rf", stages=["Staging"])]
out["v1_stage"] = c.get_model_version("churn-rf", "1").current_stage
loaded = mlflow.sklearn.load_model("models:/churn-rf/latest")
out["latest_depth"] = int(loaded.get_params()["max_depth"])
pickled = mlflow.sklearn.load_model("models:/churn-rf/3")
out["pickled_depth"] = int(pickled.get_params()["max_depth"])
c.transition_model_version_stage("churn-rf", "3", "Archived")
out["v3_stage"] = c.get_model_version("churn-rf", "3").current_stage
c.delete_registered_model_alias("churn-rf", "candidate")
out["alias_gone"] = error(lambda: c.get_model_version_by_alias("churn-rf", "candidate"))
out["rename"] = error(lambda: c.rename_registered_model("churn-rf", "churn-2"))
c.delete_model_version("churn-rf", "3")
out["v3_gone"] = error(lambda: c.get_model_version("churn-rf", "3"))
out["after_delete"] = [v.version for v in c.search_model_versions("name = 'churn-rf'")]
c.delete_registered_model("scratch")
out["scratch_gone"] = error(lambda: c.get_registered_model("scratch"))
out["models_left"] = [m.name for m in c.search_registered_models()]
print(json.dumps(out))
"""


@pytest.fixture(scope="module")
def done(mlflow_world: MlflowWorld) -> dict[str, Any]:
    out: dict[str, Any] = mlflow_world.run_json(SCRIPT)
    return out


@pytest.fixture
def sdk(mlflow_world: MlflowWorld) -> Iterator[Platform]:
    with meshops.connect(mlflow_world.url, token=mlflow_world.token("admin")) as platform:
        yield platform


def test_registered_models_and_versions_through_the_client(done: dict[str, Any]) -> None:
    assert done["created"] == ["churn-rf", "churn model", {"team": "risk"}]
    assert done["again"] == [
        "RESOURCE_ALREADY_EXISTS",
        "RESOURCE_ALREADY_EXISTS: Registered Model (name=churn-rf) already exists.",
    ]
    run_id = done["run_id"]
    assert done["versions"] == [
        ["1", f"models:/{done['ids'][0]}", run_id],
        ["2", f"models:/{done['ids'][1]}", run_id],
    ]
    version, source, description = done["from_run"]
    assert (version, description) == ("3", "pickled")
    assert source == f"runs:/{run_id}/exported"


def test_search_filters_order_and_pages(done: dict[str, Any]) -> None:
    assert done["like"] == ["churn-rf"]
    assert done["by_tag"] == ["churn-rf"]
    assert done["ordered"] == ["scratch", "churn-rf"]
    code, message = done["bad_filter"]
    assert code == "INVALID_PARAMETER_VALUE"
    assert "name LIKE 'churn%'" in message  # the error shows the syntax
    assert done["versions_asc"] == ["1", "2", "3"]
    assert done["by_run_and_tag"] == ["2"]
    assert done["paged"] == [["3", "2"], True]


def test_tags_aliases_stages_and_deletes(done: dict[str, Any]) -> None:
    assert done["model_after"] == ["churn, tree models", {"stage": "pilot"}]
    assert done["v2"] == ["deeper tree", {"depth": "4", "validated": "yes"}, "None", "READY"]
    assert done["v1_tags"] == {}
    assert done["alias"] == "2"
    assert done["aliases"] == {"candidate": "2"}
    assert done["staging"] == ["1"]
    assert done["v1_stage"] == "Staging"
    assert done["latest_depth"] == 4  # models:/churn-rf/latest: v3, the newest
    assert done["pickled_depth"] == 4
    assert done["v3_stage"] == "Archived"
    assert done["alias_gone"][0] == "INVALID_PARAMETER_VALUE"
    code, message = done["rename"]
    assert code == "INVALID_PARAMETER_VALUE"
    assert "does not rename" in message
    assert done["v3_gone"] == [
        "RESOURCE_DOES_NOT_EXIST",
        "RESOURCE_DOES_NOT_EXIST: Model Version (name=churn-rf, version=3) not found",
    ]
    assert done["after_delete"] == ["2", "1"]
    assert done["scratch_gone"][0] == "RESOURCE_DOES_NOT_EXIST"
    assert done["models_left"] == ["churn-rf"]


def test_the_same_objects_through_the_meshops_sdk(done: dict[str, Any], sdk: Platform) -> None:
    model = sdk.registry.get_model("churn-rf")
    assert model.tags == {"stage": "pilot"}
    assert model.aliases == {"staging": 1}  # the Staging stage is the alias `staging`
    versions = {v.version: v for v in sdk.registry.list_versions("churn-rf")}
    assert sorted(versions) == [1, 2, 3]
    assert versions[1].flavor == versions[2].flavor == "mlflow-sklearn"
    assert versions[3].flavor == "mlflow-sklearn-pickle"  # a code flavor: needs trust
    # Deleted through MLflow: kept for lineage and audit, archived.
    assert versions[3].status == VersionStatus.ARCHIVED
    assert versions[3].tags["mlflow.deleted"] == "true"
    assert versions[2].tags["validated"] == "yes"
    # The MLflow facts of a version are kept as mlflow.* tags (not listed as MLflow tags).
    assert versions[1].tags["mlflow.model_id"] == done["ids"][0]
    assert versions[1].tags["mlflow.source"] == f"models:/{done['ids'][0]}"
    assert versions[2].description == "deeper tree"
    for number in (1, 2, 3):
        assert versions[number].run_id == done["run_id"]
        edges = sdk.lineage.upstream(model_version_urn("churn-rf", number))
        assert run_urn(done["run_id"]) in {e.upstream for e in edges}
    moves = sdk.registry.alias_history("churn-rf")
    assert {(m.alias, m.to_version) for m in moves} >= {("candidate", 2), ("staging", 1)}
    scratch = sdk.registry.get_model("scratch")
    assert scratch.tags["mlflow.deleted"] == "true"


def test_pickled_mlflow_version_loads_only_with_trust(done: dict[str, Any], sdk: Platform) -> None:
    with pytest.raises(Forbidden, match="runs code from the file"):
        sdk.registry.load_model("models:/churn-rf/3")
    loaded = sdk.registry.load_model("models:/churn-rf/3", trust=True)
    assert loaded.raw.get_params()["max_depth"] == 4
    safe = sdk.registry.load_model("models:/churn-rf/1")  # skops: no trust needed
    assert safe.raw.get_params()["max_depth"] == 2


def test_filter_syntax_is_parsed_or_refused_naming_the_syntax() -> None:
    keys = frozenset({"name", "run_id"})
    clauses = parse_filter("name ILIKE '%Churn%' AND tags.`my tag` IN ('a', \"b\")", keys)
    assert [(c.key, c.op, c.values) for c in clauses] == [
        ("name", "ILIKE", ("%Churn%",)),
        ("tags.my tag", "IN", ("a", "b")),
    ]
    for bad in ("name =", "name = 'a' OR name = 'b'", "owner = 'x'", "name IN 'a'"):
        with pytest.raises(Exception, match="Invalid filter"):
            parse_filter(bad, keys)


def test_log_input_of_a_product_names_its_version(sdk: Platform, mlflow_world: MlflowWorld) -> None:
    contract = data_contract("orders-c", "orders", [{"name": "n", "logicalType": "integer"}])
    sdk.mesh.create_domain("sales")
    published = sdk.mesh.publish_arrow(
        data_product("sales.orders", "orders-c", port="orders"),
        {"orders": contract},
        {"orders": pa.table({"n": [1, 2, 3]})},
    )
    ctx = mlflow_world.home.context()
    for dataset in (
        {"name": "meshops://sales.orders@1.0.0", "source": "{}", "digest": "f00"},
        {"name": "orders", "source": '{"url": "meshops://sales.orders"}', "digest": "f00"},
        {"name": "orders", "source": f'{{"uri": "{published.urn}"}}', "digest": "f00"},
    ):
        found = product_input(ctx, dataset, {"mlflow.data.context": "train"})
        assert found is not None
        assert (found.urn, found.digest, found.context) == (
            published.urn,
            published.digest,
            "train",
        )
    assert product_input(ctx, {"name": "iris.csv", "source": '{"url": "s3://b/k"}'}) is None
    with pytest.raises(NotFound):
        product_input(ctx, {"name": "meshops://sales.returns@1.0.0"})
    with pytest.raises(InvalidInput, match="does not name a data product"):
        product_input(ctx, {"name": "meshops://orders"})


def test_a_native_version_names_how_to_load_it(sdk: Platform, mlflow_world: MlflowWorld) -> None:
    from sklearn.linear_model import LinearRegression

    from meshops.mlflow.common import MlflowApiError
    from meshops.mlflow.registry import get_model_version_download_uri, version_json

    native = sdk.registry.log_model("native-lr", LinearRegression().fit([[0.0], [1.0]], [0, 1]))
    shape = version_json(native)
    assert (shape["source"], shape["current_stage"]) == ("models:/native-lr/1", "None")
    ctx = mlflow_world.home.context()
    with pytest.raises(MlflowApiError, match="not in MLflow's format") as caught:
        get_model_version_download_uri(ctx, {"name": "native-lr", "version": "1"})
    assert "platform.registry.load_model('models:/native-lr/1')" in caught.value.message
