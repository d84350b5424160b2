"""The training template trains any tabular task (issue 16): the project `meshops init
--template training-pipeline` writes, unmodified apart from its config
(`pipelines/training.toml`), goes from a raw file to a published product, a trained and
registered model, a served endpoint and a drift monitor, on three real datasets:
scikit-learn's iris (multiclass, species names as labels), scikit-learn's diabetes
(regression) and the cars data the vega_datasets package ships (a string category, missing
values, a datetime feature; a boolean label)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

import meshops
from meshops.client import Platform
from meshops.pipelines.models import RunStatus
from meshops.project import scaffold
from tests.support.git import commit_all

PNG = b"\x89PNG\r\n\x1a\n"


@pytest.fixture
def platform(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Platform]:
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.chdir(tmp_path)  # no meshops.toml of the working tree wins over the home's
    # Pipeline steps open the platform from the environment, like a worker's would.
    monkeypatch.setenv("MESHOPS_HOME", str(home))
    monkeypatch.setenv("MESHOPS_USER", "alice")
    monkeypatch.delenv("MESHOPS_URI", raising=False)
    monkeypatch.delenv("MESHOPS_DATABASE_URL", raising=False)
    with meshops.connect() as opened:
        yield opened


def _logical(series: pd.Series) -> str:
    if pd.api.types.is_bool_dtype(series):
        return "boolean"
    if pd.api.types.is_integer_dtype(series):
        return "integer"
    if pd.api.types.is_float_dtype(series):
        return "number"
    if pd.api.types.is_datetime64_any_dtype(series):
        return "timestamp"
    return "string"


def _yaml(value: Any) -> str:
    return json.dumps(value)  # JSON is YAML


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{" + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + "}"
    return json.dumps(value)  # strings, numbers, lists of strings: the same in TOML


def project(root: Path, name: str, frame: pd.DataFrame, config: dict[str, Any]) -> Path:
    """`meshops init --template training-pipeline`, a product `ml.<name>` built from the
    raw CSV file of `frame`, and the template's config; committed."""
    scaffold.init(root, template="training-pipeline", project="ml", owner="alice")
    domain = root / "domains" / "ml"
    folder = domain / "products" / name
    (folder / "data").mkdir(parents=True)
    (domain / "domain.yaml").write_text("description: Machine learning.\nowners: [alice]\n")
    frame.to_csv(folder / "data" / f"{name}.csv", index=False)
    columns = [
        f'CAST("{c}" AS TIMESTAMP) AS "{c}"' if _logical(frame[c]) == "timestamp" else f'"{c}"'
        for c in frame.columns
    ]
    (folder / "transform.sql").write_text(f"SELECT {', '.join(columns)} FROM raw\n")
    (folder / "build.yaml").write_text(
        f"inputs:\n  raw: {{path: data/{name}.csv, format: csv}}\n"
        "transform:\n  sql_file: transform.sql\n"
    )
    (folder / "dataproduct.yaml").write_text(
        "apiVersion: v1.0.0\nkind: DataProduct\n"
        f"id: ml.{name}\nname: {name}\ndomain: ml\nversion: 1.0.0\nstatus: active\n"
        f"description: {{purpose: the {name} dataset}}\n"
        "team: {name: ML, members: [{username: alice, role: owner}]}\n"
        f"outputPorts:\n  - {{name: {name}, type: tables, version: 1.0.0, "
        f"contractId: ml-{name}}}\n"
    )
    properties = "".join(
        f"      - {{name: {_yaml(c)}, logicalType: {_logical(frame[c])}, "
        f"required: {str(not frame[c].isna().any()).lower()}}}\n"
        for c in frame.columns
    )
    (folder / f"{name}.odcs.yaml").write_text(
        "apiVersion: v3.1.0\nkind: DataContract\n"
        f"id: ml-{name}\nname: {name}\nversion: 1.0.0\nstatus: active\ndomain: ml\n"
        f"dataProduct: {name}\nschema:\n  - name: {name}\n    physicalType: table\n"
        f"    quality: [{{metric: rowCount, mustBeGreaterThan: 0}}]\n"
        f"    properties:\n{properties}"
    )
    lines = [f"{key} = {_toml(value)}" for key, value in config.items()]
    (root / "pipelines" / "training.toml").write_text("\n".join(lines) + "\n")
    commit_all(root, f"{name}: product and training config")
    return root


def train_and_serve(p: Platform, root: Path, name: str) -> dict[str, Any]:
    """Apply the project (publishes the product), run the scaffolded pipeline file as it is,
    and check what every template run must leave behind."""
    module = root / "pipelines" / "training.py"
    assert (
        module.read_bytes()
        == Path(
            scaffold._module_file(
                scaffold.PACKAGED_FILES["training-pipeline"]["pipelines/training.py"]
            )
        ).read_bytes()
    )
    applied = p.project.apply(root)
    assert f"ml.{name}" in {a.name for a in applied.applied}
    product = p.mesh.get_version(f"ml.{name}")
    detail = p.pipelines.run(f"{module}:training_pipeline")
    assert detail.run.status == RunStatus.SUCCEEDED, detail.run.error
    version = p.registry.get_version(name, 1)
    assert p.registry.resolve(f"models:/{name}@champion").version == 1
    assert version.tags["meshops.evaluated_against"] == "baseline"
    assert version.tags["meshops.training_set"] == product.urn
    assert product.urn in {e.upstream for e in p.lineage.upstream(version.urn, depth=4)}
    # the evaluation plot is an artifact of the training run, the card is written from it
    artifacts = {a.path for a in p.tracking.list_artifacts(version.run_id)}
    (plot,) = [a for a in artifacts if a.startswith("evaluation/")]
    assert p.tracking.read_artifact(version.run_id, plot).startswith(PNG)
    card = p.registry.get_model_card(name, 1)
    assert card.startswith(f"# {name} v1")
    assert product.urn in card and plot in card
    # the endpoint and the monitor the config asked for
    endpoint = p.serving.get_endpoint(f"{name}-api")
    assert endpoint.model == f"models:/{name}@champion"
    monitor = p.monitoring.get_monitor(f"{name}-drift")
    assert monitor.spec.endpoint == f"{name}-api"
    return {"version": version, "product": product, "plot": plot, "card": card}


def check_monitor(p: Platform, name: str, rows: int) -> Any:
    """The template's drift monitor runs on what the endpoint logged, every feature it
    watches (numeric and categorical) compared with the training data."""
    monitor = p.monitoring.get_monitor(f"{name}-drift")
    watched = [*monitor.spec.numerical, *monitor.spec.categorical]
    assert watched
    p.serving.flush()
    window = p.serving.prediction_window(f"{name}-api")
    result = p.monitoring.run_monitor(f"{name}-drift", current=window.select(watched))
    assert result.status in {"ok", "alert"}, result.summary
    assert result.current_rows >= rows and result.reference_rows > 50
    return monitor


def test_iris_multiclass_with_species_names(platform: Platform, tmp_path: Path) -> None:
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    frame = iris.frame.rename(columns=lambda c: c.replace(" (cm)", "").replace(" ", "_"))
    frame["species"] = [str(iris.target_names[t]) for t in frame.pop("target")]
    root = project(
        tmp_path / "repo",
        "iris",
        frame,
        {
            "model": "iris",
            "domain": "ml",
            "label_product": "ml.iris",
            "label_column": "species",
            "timestamp_column": "",
            "features": [],
            "estimator": "sklearn.linear_model.LogisticRegression",
            "estimator_params": {"max_iter": 500, "C": 10.0},
            "min_rows": 100,
            "endpoint": "iris-api",
            "monitor": "iris-drift",
        },
    )
    p = platform
    out = train_and_serve(p, root, "iris")
    version = out["version"]
    assert version.tags["meshops.task"] == "classification"
    assert version.tags["meshops.metric"] == "roc_auc"
    assert version.metrics["accuracy"] > 0.85
    assert version.metrics["roc_auc"] > 0.95  # one-vs-rest over three classes
    assert version.metrics["f1_macro"] > 0.85
    assert {"balanced_accuracy", "log_loss"} <= set(version.metrics)
    assert version.metrics["roc_auc_lift"] > 0  # over the prior baseline
    assert out["plot"] == "evaluation/confusion_matrix.png"
    assert "| sepal_length | numeric |" in out["card"]
    assert [c.name for c in version.signature.inputs] == [
        "sepal_length",
        "sepal_width",
        "petal_length",
        "petal_width",
    ]
    assert {c.type for c in version.signature.inputs} == {"float"}
    # served over the embedded endpoint client: species names come back
    records = frame.drop(columns="species").iloc[[0, 60, 120]].to_dict("records")
    served = p.serving.predict("iris-api", records)
    assert served.model_version == 1
    assert list(served.predictions) == ["setosa", "versicolor", "virginica"]
    probable = p.serving.predict("iris-api", records[:1], proba=True)
    (first,) = probable.predictions
    assert first["prediction"] == "setosa"
    assert set(first) >= {"proba_setosa", "proba_versicolor", "proba_virginica"}
    assert first["proba_setosa"] > 0.8
    check_monitor(p, "iris", rows=4)


def test_diabetes_regression(platform: Platform, tmp_path: Path) -> None:
    from sklearn.datasets import load_diabetes

    frame = load_diabetes(as_frame=True, scaled=False).frame
    root = project(
        tmp_path / "repo",
        "diabetes",
        frame,
        {
            "model": "diabetes",
            "domain": "ml",
            "label_product": "ml.diabetes",
            "label_column": "target",
            "timestamp_column": "",
            "features": [],
            "estimator": "hist_gradient_boosting",
            "estimator_params": {"max_iter": 40, "learning_rate": 0.1},
            "endpoint": "diabetes-api",
            "monitor": "diabetes-drift",
        },
    )
    p = platform
    out = train_and_serve(p, root, "diabetes")
    version = out["version"]
    assert version.tags["meshops.task"] == "regression"
    assert version.tags["meshops.metric"] == "rmse"
    assert {"rmse", "mae", "r2"} <= set(version.metrics)
    assert "accuracy" not in version.metrics
    assert version.metrics["r2"] > 0.2
    assert version.metrics["rmse_lift"] > 0  # lower than the mean's RMSE
    assert out["plot"] == "evaluation/residuals.png"
    run = p.tracking.get_run(version.run_id)
    assert run.params["estimator"] == "sklearn.ensemble.HistGradientBoostingRegressor"
    records = frame.drop(columns="target").head(3).to_dict("records")
    served = p.serving.predict("diabetes-api", records)
    assert len(served.predictions) == 3
    assert all(isinstance(v, float) and 25 < v < 350 for v in served.predictions)
    check_monitor(p, "diabetes", rows=3)
    # retraining with a much weaker estimator: compared with the champion on the same
    # holdout (a recorded comparison), not promoted
    module = root / "pipelines" / "training.py"
    weaker = p.pipelines.run(f"{module}:training_pipeline", {"estimator_params": {"max_iter": 1}})
    assert weaker.run.status == RunStatus.SUCCEEDED, weaker.run.error
    v2 = p.registry.get_version("diabetes", 2)
    assert v2.tags["meshops.evaluated_against"] == "1"
    assert v2.metrics["rmse"] > v2.metrics["champion_rmse"]
    assert p.registry.resolve("models:/diabetes@champion").version == 1
    (comparison,) = [
        c for c in p.registry.list_comparisons("diabetes") if c.challenger_version == 2
    ]
    assert comparison.champion_version == 1 and comparison.metric == "rmse"
    assert comparison.challenger_score > (comparison.champion_score or 0)


def test_cars_categories_missing_values_and_dates(platform: Platform, tmp_path: Path) -> None:
    from vega_datasets import data

    cars = data.cars()  # the file vega_datasets ships (local_data), no network
    assert cars["Horsepower"].isna().any() and cars["Miles_per_Gallon"].isna().any()
    frame = cars.assign(heavy=cars["Weight_in_lbs"] > 3000).drop(columns="Weight_in_lbs")
    root = project(
        tmp_path / "repo",
        "cars",
        frame,
        {
            "model": "cars",
            "domain": "ml",
            "label_product": "ml.cars",
            "label_column": "heavy",
            "timestamp_column": "",
            "features": [],
            "exclude_columns": ["Name"],
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "estimator_params": {"n_estimators": 30, "max_depth": 6},
            "min_rows": 100,
            "endpoint": "cars-api",
            "monitor": "cars-drift",
        },
    )
    p = platform
    out = train_and_serve(p, root, "cars")
    version = out["version"]
    assert version.tags["meshops.task"] == "classification"
    assert version.metrics["roc_auc"] > 0.9
    assert {"f1", "brier"} <= set(version.metrics)  # two classes
    kinds = {c.name: c.type for c in version.signature.inputs}
    assert kinds["Origin"] == "string"
    assert kinds["Year"] == "datetime"
    assert kinds["Horsepower"] == "float"
    assert "Name" not in kinds
    assert "| Year | datetime |" in out["card"] and "| Origin | categorical |" in out["card"]
    validation_note = p.registry.get_model("cars")
    assert validation_note.aliases["champion"] == 1
    # a record with missing numbers and a category never seen in training: the model
    # decides (the pipeline imputes, the encoder ignores the unknown origin)
    record = {
        "Miles_per_Gallon": 31.0,
        "Cylinders": 4,
        "Displacement": 98.0,
        "Horsepower": None,
        "Acceleration": 16.0,
        "Year": "1980-01-01T00:00:00",
        "Origin": "Atlantis",
    }
    served = p.serving.predict("cars-api", [record, {**record, "Origin": "Japan"}])
    assert [bool(v) for v in served.predictions] == [False, False]
    # the raw holdout with nulls scores in the training process through the saved model
    loaded = p.registry.load_model("models:/cars@champion")
    nulls = frame[frame["Horsepower"].isna()].drop(columns=["heavy", "Name"])
    assert len(loaded.predict(nulls)) == len(nulls)
    # a batch of real rows as JSON clients send them: null for NaN, ISO strings for dates
    sample = frame.drop(columns=["heavy", "Name"]).sample(40, random_state=0)
    sample = pd.concat([sample, frame[frame["Horsepower"].isna()].drop(columns=["heavy", "Name"])])
    batch = json.loads(sample.to_json(orient="records", date_format="iso"))
    assert any(r["Horsepower"] is None for r in batch)
    assert len(p.serving.predict("cars-api", batch).predictions) == len(batch)
    monitor = check_monitor(p, "cars", rows=len(batch))
    assert monitor.spec.categorical == ["Origin"]
    assert "Year" not in monitor.spec.numerical and "Name" not in monitor.spec.numerical


def test_validation_refuses_what_training_cannot_use(platform: Platform, tmp_path: Path) -> None:
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True).frame.rename(columns=lambda c: c.split(" (")[0])
    iris.columns = [c.replace(" ", "_") for c in iris.columns]
    root = project(
        tmp_path / "repo",
        "flowers",
        iris,
        {
            "model": "flowers",
            "label_product": "ml.flowers",
            "label_column": "target",
            "timestamp_column": "",
            "features": [],
            "task": "regression",
            "estimator": "sklearn.ensemble.RandomForestClassifier",
            "min_rows": 1000,
        },
    )
    p = platform
    p.project.apply(root)
    detail = p.pipelines.run(f"{root / 'pipelines' / 'training.py'}:training_pipeline")
    assert detail.run.status == RunStatus.FAILED
    error = detail.run.error or ""
    assert error.startswith("step validate_data failed: InvalidInput: data validation failed")
    assert "150 rows, fewer than the minimum 1000 (min_rows)" in error
    # a declared regression with a classifier is refused when the estimator is made
    again = p.pipelines.run(
        f"{root / 'pipelines' / 'training.py'}:training_pipeline", {"min_rows": 100}
    )
    assert again.run.status == RunStatus.FAILED
    assert "is a classifier and the task is regression" in (again.run.error or "")
    assert "flowers" not in {m.name for m in p.registry.list_models()}


def test_options_come_from_params_then_config_then_defaults(tmp_path: Path) -> None:
    from meshops.kernel.errors import InvalidInput
    from meshops.pipelines.templates import training

    config = tmp_path / "training.toml"
    config.write_text('model = "m"\ntask = "regression"\nestimator_params = {alpha = 0.5}\n')
    options = training.load_options({"task": "classification", "model": None}, str(config))
    assert options["model"] == "m"
    assert options["task"] == "classification"
    assert options["estimator_params"] == {"alpha": 0.5}
    assert options["alias"] == training.DEFAULTS["alias"]
    scaffolded = tmp_path / "ml"
    scaffold.init(scaffolded, template="training-pipeline", git=False)
    shipped = training.load_options({}, str(scaffolded / "pipelines" / "training.toml"))
    assert shipped["features"] == [] and shipped["timestamp_column"] == ""
    assert shipped["task"] == "auto" and shipped["estimator_params"] == {}
    config.write_text('modle = "m"\n')
    with pytest.raises(InvalidInput, match="unknown option"):
        training.load_options({}, str(config))
    with pytest.raises(InvalidInput, match="task="):
        training.load_options({"task": "clustering"})


def test_task_detection_and_estimators() -> None:
    from sklearn.ensemble import HistGradientBoostingRegressor

    from meshops.kernel.errors import InvalidInput
    from meshops.pipelines.templates import training

    assert training.detect_task(pa.array(["a", "b"]), "auto", 50) == "classification"
    assert training.detect_task(pa.array([True, False]), "auto", 50) == "classification"
    assert training.detect_task(pa.array([0, 1, 2]), "auto", 50) == "classification"
    assert training.detect_task(pa.array([0.5, 1.0]), "auto", 50) == "regression"
    assert training.detect_task(pa.array(range(100)), "auto", 50) == "regression"
    assert training.detect_task(pa.array([0, 1]), "regression", 50) == "regression"
    model = training.make_estimator("hist_gradient_boosting", {"max_iter": 5}, "regression", 3)
    assert isinstance(model, HistGradientBoostingRegressor)
    assert model.max_iter == 5 and model.random_state == 3
    with pytest.raises(InvalidInput, match="no parameter"):
        training.make_estimator("sklearn.linear_model.Ridge", {"depth": 3}, "regression", 0)
    with pytest.raises(InvalidInput, match="cannot import"):
        training.make_estimator("sklearn.nothing.Here", {}, "regression", 0)
    with pytest.raises(InvalidInput, match="no regression variant"):
        training.make_estimator("logistic_regression", {}, "regression", 0)


def test_the_converters_are_trusted_by_exact_name_and_nothing_else_is() -> None:
    import numpy as np
    import skops.io
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import FunctionTransformer

    from meshops.registry.flavors import skops_types, tabular

    assert skops_types.allowed_types() >= tabular.TRUSTED_TYPES
    frame = pd.DataFrame(
        {
            "n": [1.0, None, 3.0],
            "c": [True, None, False],
            "t": pd.to_datetime(["2024-01-02", None, "2024-03-04 05:00"], format="mixed"),
        }
    )
    numbers = tabular.AsNumbers().fit(frame[["n", "c"]]).transform(frame[["n", "c"]])
    assert np.isnan(numbers[1]).all() and numbers[0].tolist() == [1.0, 1.0]
    categories = tabular.AsCategories().fit(frame[["c"]]).transform(frame[["c"]])
    assert categories[0, 0] == "True" and categories[1, 0] != categories[1, 0]  # NaN
    parts = tabular.DatetimeParts().fit(frame[["t"]]).transform(frame[["t"]])
    assert parts.shape == (3, 6) and parts[2, :5].tolist() == [2024, 3, 4, 0, 5]
    with pytest.raises(ValueError, match="not a date"):
        tabular.DatetimeParts().fit(frame[["t"]]).transform(pd.DataFrame({"t": ["soon"]}))
    dumped = skops.io.dumps(Pipeline([("n", tabular.AsNumbers())]).fit(frame[["n"]]))
    assert (
        skops_types.refused_names(dumped, skops.io.get_untrusted_types(data=dumped), frozenset())
        == []
    )
    sneaky = skops.io.dumps(FunctionTransformer(func=print).fit(frame[["n"]]))
    assert "builtins.print" in skops_types.refused_names(
        sneaky, skops.io.get_untrusted_types(data=sneaky), frozenset()
    )


def test_decimal_labels_are_a_numeric_target() -> None:
    from decimal import Decimal

    from meshops.pipelines.templates import training

    prices = pa.array([Decimal("1.25"), Decimal("2.50"), Decimal("3.75")] * 40)
    assert training.detect_task(prices, "auto", 50) == "regression"
    table = pa.table({"price": prices, "x": pa.array(range(120), pa.int64())})
    assert training.labels_of(table, "price").dtype.kind == "f"
