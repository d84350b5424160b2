"""The real MLflow client (its own virtualenv) against a real meshops server: experiments,
runs, metrics, params, tags, search, artifacts and logged models, then the same objects
read through the meshops SDK over HTTP and the embedded store."""

from __future__ import annotations

import hashlib
import math
from collections.abc import Iterator

import pytest

import meshops
from meshops.client import Platform
from meshops.governance.service import GovernanceService
from meshops.tracking.logged_models import LoggedModels
from tests.mlflow.conftest import DATA_SCIENTIST, MlflowWorld


@pytest.fixture
def sdk(mlflow_world: MlflowWorld) -> Iterator[Platform]:
    with meshops.connect(mlflow_world.url, token=mlflow_world.token("admin")) as platform:
        yield platform


def test_experiments_crud_restore_and_errors(mlflow_world: MlflowWorld, sdk: Platform) -> None:
    out = mlflow_world.run_json(
        """
        import json
        from mlflow import MlflowClient
        from mlflow.entities import ViewType
        from mlflow.exceptions import MlflowException

        c = MlflowClient()
        out = {}
        a = c.create_experiment("exp-alpha", tags={"team": "ml", "tier": "1"})
        b = c.create_experiment("exp-beta", tags={"team": "bi"})
        out["ids"] = [a, b]
        out["get"] = c.get_experiment(a).name
        out["by_name"] = c.get_experiment_by_name("exp-beta").experiment_id
        out["missing_by_name"] = c.get_experiment_by_name("nope") is None
        found = c.search_experiments(filter_string="tags.team = 'ml'")
        out["by_tag"] = [e.name for e in found]
        found = c.search_experiments(filter_string="name LIKE 'exp-%'", order_by=["name DESC"])
        out["ordered"] = [e.name for e in found]
        c.rename_experiment(b, "exp-gamma")
        c.set_experiment_tag(b, "owner", "dana")
        e = c.get_experiment(b)
        out["renamed"] = [e.name, e.tags]
        c.delete_experiment(a)
        out["active"] = [e.name for e in c.search_experiments()]
        deleted = c.search_experiments(view_type=ViewType.DELETED_ONLY)
        out["deleted"] = [(e.name, e.lifecycle_stage) for e in deleted]
        try:
            c.create_run(a)
        except MlflowException as exc:
            out["run_in_deleted"] = [exc.error_code, exc.message]
        c.restore_experiment(a)
        out["restored"] = c.get_experiment(a).lifecycle_stage
        for call in (
            lambda: c.create_experiment("exp-alpha"),
            lambda: c.get_experiment("0123456789abcdef0123456789abcdef"),
        ):
            try:
                call()
            except MlflowException as exc:
                out.setdefault("errors", []).append(
                    [exc.error_code, exc.get_http_status_code(), exc.message]
                )
        print(json.dumps(out))
        """
    )
    alpha, beta = out["ids"]
    assert out["get"] == "exp-alpha" and out["by_name"] == beta
    assert out["missing_by_name"] is True
    assert out["by_tag"] == ["exp-alpha"]
    assert out["ordered"] == ["exp-beta", "exp-alpha"]
    assert out["renamed"] == ["exp-gamma", {"team": "bi", "owner": "dana"}]
    assert "exp-alpha" not in out["active"] and "exp-gamma" in out["active"]
    assert out["deleted"] == [["exp-alpha", "deleted"]]
    assert out["restored"] == "active"
    code, message = out["run_in_deleted"]
    assert code == "INVALID_PARAMETER_VALUE" and "is deleted: restore it" in message
    (dup_code, dup_status, dup_msg), (miss_code, miss_status, _) = out["errors"]
    assert (dup_code, dup_status) == ("RESOURCE_ALREADY_EXISTS", 400)
    assert "experiment 'exp-alpha' already exists" in dup_msg
    assert (miss_code, miss_status) == ("RESOURCE_DOES_NOT_EXIST", 404)
    # The same experiments, read through the meshops SDK (same ids).
    assert sdk.tracking.get_experiment(alpha).name == "exp-alpha"
    gamma = sdk.tracking.get_experiment(beta)
    assert gamma.name == "exp-gamma" and gamma.tags == {"team": "bi", "owner": "dana"}


def test_run_lifecycle_logging_and_history(mlflow_world: MlflowWorld, sdk: Platform) -> None:
    out = mlflow_world.run_json(
        """
        import json, math
        import mlflow
        from mlflow import MlflowClient
        from mlflow.entities import Metric, Param, RunTag
        from mlflow.exceptions import MlflowException

        c = MlflowClient()
        mlflow.set_experiment("lifecycle")
        out = {}
        source = c.create_run(c.create_experiment("upstream")).info.run_id
        with mlflow.start_run(run_name="first", tags={"stage": "dev"}) as run:
            rid = run.info.run_id
            import pandas as pd
            df = pd.DataFrame({"a": [1, 2]})
            mlflow.log_input(mlflow.data.from_pandas(df, name="plain-frame"))
            named = mlflow.data.from_pandas(df, name=f"meshops:run:{source}")
            mlflow.log_input(named, context="eval")
            mlflow.log_param("model", "rf")
            mlflow.log_params({"depth": 4, "lr": 0.1})
            for step in range(6):
                stamp = 1_700_000_000_000 + step
                mlflow.log_metric("loss", 1.0 / (step + 1), step=step, timestamp=stamp)
            mlflow.log_metrics({"acc": 0.75, "auc": float("nan")})
            c.log_batch(
                rid,
                metrics=[Metric("batch", i * 0.5, 1_700_000_100_000 + i, i) for i in range(2500)],
                params=[Param("batch_param", "x")],
                tags=[RunTag("batch_tag", "y")],
            )
            mlflow.set_tag("temp", "1")
            mlflow.set_tags({"owner": "dana", "mlflow.note.content": "hello"})
            c.delete_tag(rid, "temp")
            try:
                mlflow.log_param("model", "gbm")
            except MlflowException as exc:
                out["param_change"] = [exc.error_code, exc.message]
        r = c.get_run(rid)
        i = r.info
        out["info"] = [i.run_name, i.status, i.lifecycle_stage, i.end_time is not None]
        out["params"] = r.data.params
        out["metrics"] = {k: (None if math.isnan(v) else v) for k, v in r.data.metrics.items()}
        out["tags"] = {k: v for k, v in r.data.tags.items() if not k.startswith("mlflow.source")}
        out["history"] = [[m.value, m.step, m.timestamp] for m in c.get_metric_history(rid, "loss")]
        out["batch_len"] = len(c.get_metric_history(rid, "batch"))
        c.update_run(rid, name="renamed")
        out["renamed"] = c.get_run(rid).info.run_name
        c.delete_run(rid)
        out["deleted"] = c.get_run(rid).info.lifecycle_stage
        exp = r.info.experiment_id
        out["visible_after_delete"] = len(c.search_runs([exp]))
        c.restore_run(rid)
        out["visible_after_restore"] = len(c.search_runs([exp]))
        failed = c.create_run(exp, run_name="broken")
        c.set_terminated(failed.info.run_id, status="FAILED")
        out["failed"] = c.get_run(failed.info.run_id).info.status
        out["ids"] = [rid, exp, source]
        out["inputs"] = [
            [i.dataset.name, i.dataset.source_type] for i in r.inputs.dataset_inputs
        ]
        print(json.dumps(out))
        """
    )
    run_id, experiment_id, source = out["ids"]
    assert out["info"] == ["first", "FINISHED", "active", True]
    assert out["params"] == {
        "model": "rf",
        "depth": "4",
        "lr": "0.1",
        "batch_param": "x",
    }
    assert out["metrics"]["loss"] == pytest.approx(1 / 6)
    assert out["metrics"]["acc"] == 0.75 and out["metrics"]["auc"] is None  # NaN round trip
    assert out["metrics"]["batch"] == 2499 * 0.5
    tags = out["tags"]
    assert tags["stage"] == "dev" and tags["owner"] == "dana" and tags["batch_tag"] == "y"
    assert "temp" not in tags and tags["mlflow.runName"] == "first"
    code, message = out["param_change"]
    assert code == "INVALID_PARAMETER_VALUE" and "params are immutable" in message
    assert out["history"] == [
        [pytest.approx(1 / (s + 1)), s, 1_700_000_000_000 + s] for s in range(6)
    ]
    assert out["batch_len"] == 2500
    assert out["renamed"] == "renamed" and out["deleted"] == "deleted"
    assert out["visible_after_delete"] == 0 and out["visible_after_restore"] == 1
    assert out["failed"] == "FAILED"
    # The same run is a meshops run: read through the SDK, values and steps as logged.
    run = sdk.tracking.get_run(run_id)
    assert run.name == "renamed" and run.status == "FINISHED"
    assert run.params["model"] == "rf" and run.tags["owner"] == "dana"
    assert run.user == mlflow_world.admin
    history = sdk.tracking.metric_history(run_id, "loss")
    assert [(m.step, m.timestamp) for m in history] == [
        (s, (1_700_000_000_000 + s) / 1000) for s in range(6)
    ]
    assert math.isnan(run.metrics["auc"])
    # log_input: a dataset naming a meshops object is the run's input (and lineage edge);
    # a plain data frame is no meshops object and is not recorded.
    assert [(i.urn, i.context) for i in run.inputs] == [(f"meshops:run:{source}", "eval")]
    assert out["inputs"] == [[f"meshops:run:{source}", "meshops"]]
    edges = sdk.lineage.upstream(f"meshops:run:{run_id}")
    assert (f"meshops:run:{source}", "input_to") in {(e.upstream, e.relation) for e in edges}
    assert sdk.tracking.get_experiment(experiment_id).name == "lifecycle"


def test_search_runs_filter_order_and_pages(mlflow_world: MlflowWorld) -> None:
    out = mlflow_world.run_json(
        """
        import json
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        c = MlflowClient()
        exp = c.create_experiment("search")
        for i in range(12):
            family = "even" if i % 2 == 0 else "odd"
            run = c.create_run(exp, run_name=f"r{i:02d}", tags={"family": family})
            c.log_param(run.info.run_id, "model", "rf" if i < 6 else "gbm")
            c.log_metric(run.info.run_id, "score", i / 10)
            if i % 3:
                c.set_terminated(run.info.run_id)
        names = lambda runs: [r.info.run_name for r in runs]
        out = {}
        find = lambda f, o=(): names(c.search_runs([exp], f, order_by=list(o)))
        out["gt"] = find("metrics.score > 0.55", ["metrics.score DESC"])
        out["and"] = find(
            "params.model = 'rf' and tags.family = 'even'", ["attributes.run_name ASC"])
        out["like"] = find(
            "tags.`family` LIKE 'od%' and metrics.score <= 0.5", ["metrics.score ASC"])
        out["status"] = names(c.search_runs(
            [exp], "attributes.status = 'RUNNING'", order_by=["run_name DESC"]))
        out["run_name"] = names(c.search_runs([exp], "run_name = 'r07'"))
        out["in"] = names(c.search_runs(
            [exp], "attributes.run_name IN ('r01', 'r02') and attributes.start_time > 0",
            order_by=["tags.`mlflow.runName` DESC"]))
        pages, token = [], None
        while True:
            page = c.search_runs(
                [exp], "", order_by=["metrics.score ASC"], max_results=5, page_token=token)
            pages.append(names(page))
            token = page.token
            if not token:
                break
        out["pages"] = pages
        try:
            c.search_runs([exp], "metrics.score >> 1")
        except MlflowException as exc:
            out["bad"] = [exc.error_code, exc.get_http_status_code(), exc.message]
        print(json.dumps(out))
        """
    )
    assert out["gt"] == ["r11", "r10", "r09", "r08", "r07", "r06"]
    assert out["and"] == ["r00", "r02", "r04"]
    assert out["like"] == ["r01", "r03", "r05"]
    assert out["status"] == ["r09", "r06", "r03", "r00"]
    assert out["run_name"] == ["r07"]
    assert out["in"] == ["r02", "r01"]
    assert out["pages"] == [
        ["r00", "r01", "r02", "r03", "r04"],
        ["r05", "r06", "r07", "r08", "r09"],
        ["r10", "r11"],
    ]
    code, status, message = out["bad"]
    assert (code, status) == ("INVALID_PARAMETER_VALUE", 400)
    assert "position" in message and "metrics.score >> 1" in message


def test_artifacts_round_trip(mlflow_world: MlflowWorld, sdk: Platform) -> None:
    out = mlflow_world.run_json(
        """
        import hashlib, json, os
        import mlflow
        from mlflow import MlflowClient

        os.makedirs("data/nested", exist_ok=True)
        blobs = {"data/a.bin": os.urandom(300_000), "data/nested/b.txt": b"hello\\n"}
        for path, data in blobs.items():
            with open(path, "wb") as f:
                f.write(data)
        with open("single.json", "w") as f:
            f.write('{"k": 1}')
        c = MlflowClient()
        with mlflow.start_run(experiment_id=c.create_experiment("artifacts")) as run:
            mlflow.log_artifact("single.json")
            mlflow.log_artifacts("data", artifact_path="inputs")
            mlflow.log_text("some text", "notes/readme.md")
        rid = run.info.run_id
        out = {"run_id": rid}
        out["root"] = [[f.path, f.is_dir] for f in c.list_artifacts(rid)]
        out["inputs"] = [[f.path, f.is_dir, f.file_size] for f in c.list_artifacts(rid, "inputs")]
        folder = mlflow.artifacts.download_artifacts(
            run_id=rid, artifact_path="inputs", dst_path="dl")
        got = {}
        for root, _, files in os.walk(folder):
            for name in files:
                full = os.path.join(root, name)
                digest = hashlib.sha256(open(full, "rb").read()).hexdigest()
                got[os.path.relpath(full, folder)] = digest
        out["downloaded"] = got
        out["sent"] = {
            os.path.relpath(p, "data"): hashlib.sha256(d).hexdigest() for p, d in blobs.items()
        }
        out["text"] = mlflow.artifacts.load_text(f"runs:/{rid}/notes/readme.md")
        print(json.dumps(out))
        """
    )
    assert out["root"] == [["inputs", True], ["notes", True], ["single.json", False]]
    assert out["inputs"] == [["inputs/a.bin", False, 300_000], ["inputs/nested", True, None]]
    assert out["downloaded"] == out["sent"]
    assert out["text"] == "some text"
    # The meshops SDK reads the same files.
    listed = {a.path: a for a in sdk.tracking.list_artifacts(out["run_id"])}
    assert set(listed) == {"single.json", "inputs/a.bin", "inputs/nested/b.txt", "notes/readme.md"}
    data = sdk.tracking.read_artifact(out["run_id"], "inputs/a.bin")
    assert hashlib.sha256(data).hexdigest() == out["sent"]["a.bin"]


def test_sklearn_log_model_makes_a_logged_model(mlflow_world: MlflowWorld) -> None:
    out = mlflow_world.run_json(
        """
        import json
        import mlflow, numpy as np
        from mlflow import MlflowClient
        from sklearn.linear_model import LogisticRegression

        X = np.random.RandomState(0).rand(60, 3)
        y = (X[:, 0] > 0.5).astype(int)
        mlflow.set_experiment("sklearn")
        with mlflow.start_run() as run:
            model = LogisticRegression().fit(X, y)
            info = mlflow.sklearn.log_model(model, name="clf", input_example=X[:2])
        c = MlflowClient()
        logged = c.get_logged_model(info.model_id)
        out = {
            "model_id": info.model_id,
            "run_id": run.info.run_id,
            "uri": info.model_uri,
            "status": str(logged.status),
            "source_run": logged.source_run_id,
            "name": logged.name,
            "expected": model.predict(X[:5]).tolist(),
            "by_model_uri": mlflow.sklearn.load_model(info.model_uri).predict(X[:5]).tolist(),
            "by_run_uri": mlflow.pyfunc.load_model(f"runs:/{run.info.run_id}/clf")
                .predict(X[:5]).tolist(),
            "outputs": [o.model_id for o in c.get_run(run.info.run_id).outputs.model_outputs],
            "found": [m.model_id for m in c.search_logged_models(
                experiment_ids=[run.info.experiment_id], filter_string="name = 'clf'")],
        }
        print(json.dumps(out))
        """
    )
    assert out["uri"] == f"models:/{out['model_id']}"
    assert out["status"] == "READY" and out["source_run"] == out["run_id"]
    assert out["by_model_uri"] == out["expected"] == out["by_run_uri"]
    assert out["found"] == [out["model_id"]]
    assert out["outputs"] == [out["model_id"]]  # the run's outputs name its logged model
    files = {f.path for f in LoggedModels(mlflow_world.home.context()).list_files(out["model_id"])}
    assert {"MLmodel", "requirements.txt", "python_env.yaml"} <= files
    assert any(f.startswith("model.") for f in files)  # the serialised estimator


def test_tokens_roles_and_audit(mlflow_world: MlflowWorld) -> None:
    script = """
        import json
        from mlflow import MlflowClient
        from mlflow.exceptions import MlflowException

        out = {}
        try:
            out["id"] = MlflowClient().create_experiment("by-token")
        except MlflowException as exc:
            out["error"] = [exc.error_code, exc.get_http_status_code(), exc.message]
        print(json.dumps(out))
        """
    anonymous = mlflow_world.run(script, token=None).json()
    assert anonymous["error"][:2] == ["UNAUTHENTICATED", 401]
    consumer = mlflow_world.run(script, token="consumer").json()
    assert consumer["error"][:2] == ["PERMISSION_DENIED", 403]
    assert "tracking.write" in consumer["error"][2]
    created = mlflow_world.run(script, token="data_scientist").json()
    assert "id" in created
    events = GovernanceService(mlflow_world.home.context()).audit_events(actor=DATA_SCIENTIST)
    assert any(e.action == "tracking.create_experiment" for e in events)
