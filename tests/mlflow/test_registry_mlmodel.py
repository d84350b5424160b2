"""MLflow-format model folders read without mlflow (`registry.flavors.mlflow_model`): the
MLmodel file as MLflow 3.17 writes it, the flavor chosen from it, skops files checked
against the same allow-list as native sklearn models, pickles only with trust, and a
folder registered through the embedded registry. These need no MLflow client."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.datasets import load_iris
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

from meshops.client import Platform
from meshops.kernel.errors import Forbidden, InvalidInput
from meshops.registry.flavors import flavor_from_files, get_flavor
from meshops.registry.flavors.mlflow_model import (
    PICKLE,
    PYFUNC,
    SKOPS,
    flavor_of,
    parse_mlmodel,
)
from meshops.registry.models import ModelFile

# Written by mlflow 3.17.2: mlflow.sklearn.save_model(model, path, signature=...).
MLMODEL = """\
flavors:
  python_function:
    env:
      conda: conda.yaml
      virtualenv: python_env.yaml
    loader_module: mlflow.sklearn
    model_path: model.skops
    predict_fn: predict
    python_version: 3.11.7
  sklearn:
    code: null
    pickled_model: model.skops
    serialization_format: skops
    sklearn_version: 1.9.1
    skops_trusted_types: null
is_signature_from_type_hint: false
mlflow_version: 3.17.2
model_id: null
model_size_bytes: 11081
model_uuid: c80a76882ec14d48a2218adc8f385cbc
prompts: null
signature:
  inputs: '[{"type": "double", "name": "sepal length (cm)", "required": true}, {"type":
    "double", "name": "sepal width (cm)", "required": true}, {"type": "double", "name":
    "petal length (cm)", "required": true}, {"type": "double", "name": "petal width
    (cm)", "required": true}]'
  outputs: '[{"type": "tensor", "tensor-spec": {"dtype": "int64", "shape": [-1]}}]'
  params: null
type_hint_from_example: false
utc_time_created: '2026-12-05 21:11:20.270214'
"""


@pytest.fixture(scope="module")
def iris() -> tuple[pd.DataFrame, LogisticRegression]:
    frame, target = load_iris(return_X_y=True, as_frame=True)
    return frame, LogisticRegression(max_iter=300).fit(frame, target)


def _folder(tmp: Path, model: object, fmt: str = "skops") -> Path:
    folder = tmp / f"model-{fmt}"
    folder.mkdir()
    if fmt == "skops":
        skops.io.dump(model, folder / "model.skops")
        text = MLMODEL
    else:
        import cloudpickle

        (folder / "model.pkl").write_bytes(cloudpickle.dumps(model))
        text = MLMODEL.replace("model.skops", "model.pkl").replace(
            "serialization_format: skops", f"serialization_format: {fmt}"
        )
    (folder / "MLmodel").write_text(text)
    (folder / "requirements.txt").write_text("scikit-learn\n")
    return folder


def test_the_mlmodel_file_as_mlflow_writes_it() -> None:
    model = parse_mlmodel(MLMODEL)
    assert sorted(model.flavors) == ["python_function", "sklearn"]
    assert model.model_id is None  # `null` is no id
    assert model.serialization_format == "skops"
    assert model.model_file == "model.skops"
    assert model.signature is not None
    assert model.signature.kind == "columns"
    assert model.signature.input_names == [
        "sepal length (cm)",
        "sepal width (cm)",
        "petal length (cm)",
        "petal width (cm)",
    ]
    assert {c.type for c in model.signature.inputs} == {"float"}
    assert model.signature.outputs == []  # a tensor of labels has no column form
    assert flavor_of(model) == SKOPS
    assert flavor_of(parse_mlmodel(MLMODEL.replace(": skops\n", ": cloudpickle\n"))) == PICKLE
    custom = "flavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n"
    assert flavor_of(parse_mlmodel(custom)) == PYFUNC


@pytest.mark.parametrize(
    ("text", "problem"),
    [
        ("flavors: [unclosed", "not YAML"),
        ("artifact_path: model\n", "no 'flavors' mapping"),
        ("- a list\n", "no 'flavors' mapping"),
    ],
)
def test_a_broken_mlmodel_is_refused_naming_the_file(text: str, problem: str) -> None:
    with pytest.raises(InvalidInput, match=problem) as caught:
        parse_mlmodel(text)
    assert caught.value.detail["file"] == "MLmodel"
    assert caught.value.detail["fix"]


def test_skops_folder_validates_loads_and_predicts_like_native_sklearn(
    tmp_path: Path, iris: tuple[pd.DataFrame, LogisticRegression]
) -> None:
    frame, model = iris
    folder = _folder(tmp_path, model)
    paths = sorted(p.name for p in folder.iterdir())
    flavor = flavor_from_files(paths)
    assert flavor.name == SKOPS  # before the bare .skops rule of the sklearn flavor
    flavor.validate(folder, {})
    raw = flavor.load(folder, {})
    predictor = flavor.predictor(raw, parse_mlmodel(MLMODEL).signature)
    assert np.array_equal(predictor.call(frame.head(10)), model.predict(frame.head(10)))


def test_skops_folder_with_a_function_outside_the_allow_list_is_refused(
    tmp_path: Path, iris: tuple[pd.DataFrame, LogisticRegression]
) -> None:
    _frame, model = iris
    sneaky = make_pipeline(FunctionTransformer(print), model)
    folder = _folder(tmp_path, sneaky)
    with pytest.raises(InvalidInput, match=r"builtins\.print"):
        get_flavor(SKOPS).validate(folder, {})
    with pytest.raises(Forbidden, match=r"builtins\.print"):
        get_flavor(SKOPS).load(folder, {})


def test_a_pickled_folder_loads_only_with_trust(
    tmp_path: Path, iris: tuple[pd.DataFrame, LogisticRegression]
) -> None:
    frame, model = iris
    folder = _folder(tmp_path, model, "cloudpickle")
    flavor = get_flavor(PICKLE)
    flavor.validate(folder, {})  # never unpickled at registration
    with pytest.raises(Forbidden, match="runs code from the file") as caught:
        flavor.load(folder, {})
    assert "serialization_format='skops'" in caught.value.detail["fix"]
    raw = flavor.load(folder, {"trust": True})
    assert np.array_equal(raw.predict(frame.head(5)), model.predict(frame.head(5)))
    (folder / "model.pkl").write_bytes(b"not a pickle")
    with pytest.raises(InvalidInput, match="not a pickle"):
        flavor.validate(folder, {})
    (folder / "model.pkl").unlink()
    with pytest.raises(InvalidInput, match="missing"):
        flavor.validate(folder, {})


def test_other_mlflow_flavors_are_kept_but_not_loaded(tmp_path: Path) -> None:
    folder = tmp_path / "custom"
    folder.mkdir()
    (folder / "MLmodel").write_text(
        "flavors:\n  python_function:\n    loader_module: mlflow.pyfunc.model\n"
    )
    flavor = get_flavor(PYFUNC)
    flavor.validate(folder, {})
    with pytest.raises(InvalidInput, match="sklearn flavor of MLflow models only"):
        flavor.load(folder, {})


def test_an_mlflow_folder_registered_natively_is_served_by_its_flavor(
    platform: Platform, tmp_path: Path, iris: tuple[pd.DataFrame, LogisticRegression]
) -> None:
    frame, model = iris
    folder = _folder(tmp_path, model)
    files = [
        ModelFile(
            path=p.name,
            digest=platform.registry.upload_file(p.read_bytes()),
            size=p.stat().st_size,
        )
        for p in sorted(folder.iterdir())
    ]
    version = platform.registry.register_files(
        "iris-mlflow", files, SKOPS, signature=parse_mlmodel(MLMODEL).signature
    )
    assert version.flavor == SKOPS
    loaded = platform.registry.load_model("models:/iris-mlflow/1")
    records = frame.head(3).to_dict(orient="records")
    assert list(loaded.predict(records)) == list(model.predict(frame.head(3)))


def test_a_pickled_mlflow_version_is_served_under_the_native_trust_rules(
    platform: Platform, tmp_path: Path, iris: tuple[pd.DataFrame, LogisticRegression]
) -> None:
    frame, model = iris
    folder = _folder(tmp_path, model, "cloudpickle")
    files = [
        ModelFile(
            path=p.name,
            digest=platform.registry.upload_file(p.read_bytes()),
            size=p.stat().st_size,
        )
        for p in sorted(folder.iterdir())
    ]
    platform.mesh.create_domain("ml")
    platform.registry.create_model("iris-pickle", domain="ml")
    platform.registry.register_files("iris-pickle", files, PICKLE)
    with pytest.raises(InvalidInput) as info:
        platform.serving.create_endpoint("pickle-api", "iris-pickle/1")
    assert info.value.detail["field"] == "trust_model_code"
    platform.serving.create_endpoint("pickle-api", "iris-pickle/1", trust_model_code=True)
    records = frame.head(4).to_dict(orient="records")
    if platform.is_remote:  # the API server runs no pickled model an admin did not name
        with pytest.raises(Forbidden, match="does not run in the API server"):
            platform.serving.predict("pickle-api", records)
        return
    answer = platform.serving.predict("pickle-api", records)
    assert answer.predictions == [int(p) for p in model.predict(frame.head(4))]
