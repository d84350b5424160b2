"""Models in MLflow's format (a folder with an `MLmodel` file), as `mlflow.<flavor>.log_model`
writes them, read without the mlflow library.

Which meshops flavor a folder gets depends on what `MLmodel` says (`flavor_of`):

- `mlflow-sklearn`: the `sklearn` flavor saved with `serialization_format: skops` (the
  default of MLflow 3 outside Databricks). The `.skops` file is checked and loaded exactly
  like a native `sklearn` version (the explicit allow-list of `skops_types`, the tree
  checks), so it is served with no trust flag.
- `mlflow-sklearn-pickle`: the `sklearn` flavor saved with `pickle` or `cloudpickle`.
  Unpickling runs code from the file, so it loads under the same two keys as a native
  `python` model (`trust=True`, and in the API server only models an admin names in
  `[serving] trusted_code_models`; see `serving.trust`).
- `mlflow-pyfunc`: any other MLflow flavor (a custom `python_function`, xgboost, ...):
  stored and downloadable by the MLflow client (`models:/...` loads it there), but not
  loaded by meshops, which does not run the mlflow library.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from meshops.kernel.errors import Forbidden, InvalidInput
from meshops.registry.flavors.base import Predictor
from meshops.registry.flavors.sklearn import SklearnFlavor
from meshops.registry.models import ColumnSpec, ColumnType, Signature

MLMODEL = "MLmodel"
MAX_MLMODEL_BYTES = 1_000_000
SKOPS = "mlflow-sklearn"
PICKLE = "mlflow-sklearn-pickle"
PYFUNC = "mlflow-pyfunc"
PICKLE_FORMATS = ("pickle", "cloudpickle")

# MLflow's column types (mlflow.types.DataType) in meshops's signature types.
_TYPES: dict[str, ColumnType] = {
    "boolean": "boolean",
    "integer": "integer",
    "long": "integer",
    "float": "float",
    "double": "float",
    "string": "string",
    "datetime": "datetime",
    "binary": "object",
}


@dataclass(frozen=True)
class MLmodel:
    """What meshops reads from an MLmodel file."""

    flavors: dict[str, Any]
    signature: Signature | None = None
    model_id: str | None = None
    run_id: str | None = None
    raw: dict[str, Any] = field(default_factory=dict)

    @property
    def sklearn(self) -> dict[str, Any] | None:
        found = self.flavors.get("sklearn")
        return found if isinstance(found, dict) else None

    @property
    def serialization_format(self) -> str | None:
        return str(self.sklearn.get("serialization_format") or "") if self.sklearn else None

    @property
    def model_file(self) -> str | None:
        if not self.sklearn:
            return None
        value = self.sklearn.get("pickled_model")
        return str(value) if value else None


def _invalid(reason: str, fix: str) -> InvalidInput:
    return InvalidInput(f"{MLMODEL}: {reason}", {"field": "files", "file": MLMODEL, "fix": fix})


def parse_mlmodel(text: str | bytes) -> MLmodel:
    """Read an MLmodel document (YAML); InvalidInput naming the problem when it is not one."""
    import yaml

    if len(text) > MAX_MLMODEL_BYTES:
        raise _invalid("the file is larger than 1 MB", "log the model with mlflow's log_model")
    try:
        # BaseLoader: every scalar stays a string (no implicit dates or numbers).
        doc = yaml.load(text, Loader=yaml.BaseLoader)
    except yaml.YAMLError as exc:
        raise _invalid(f"not YAML: {exc}", "log the model with mlflow's log_model") from exc
    if not isinstance(doc, dict) or not isinstance(doc.get("flavors"), dict):
        raise _invalid("no 'flavors' mapping", "log the model with mlflow's log_model")
    return MLmodel(
        flavors=doc["flavors"],
        signature=_signature(doc.get("signature")),
        model_id=_text(doc.get("model_id")),
        run_id=_text(doc.get("run_id")),
        raw=doc,
    )


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) and value and value != "null" else None


def _signature(value: Any) -> Signature | None:
    """MLflow's column signature (`inputs`/`outputs` as JSON text) as a meshops signature;
    None when there is none or it uses a form meshops does not map (tensors, objects)."""
    if not isinstance(value, dict) or not _text(value.get("inputs")):
        return None
    try:
        inputs = json.loads(value["inputs"])
        outputs = json.loads(value["outputs"]) if _text(value.get("outputs")) else []
    except ValueError:
        return None
    if not isinstance(inputs, list) or not inputs or not isinstance(outputs, list):
        return None
    cols = [_column(c, i) for i, c in enumerate(inputs)]
    if any(c is None for c in cols):
        return None
    outs = [_column(c, i) for i, c in enumerate(outputs)]
    return Signature(
        kind="columns",
        inputs=[c for c in cols if c is not None],
        # A tensor output (a classifier's labels) has no column form: outputs left out.
        outputs=[c for c in outs if c is not None] if all(outs) else [],
    )


def _column(spec: Any, index: int) -> ColumnSpec | None:
    if not isinstance(spec, dict):
        return None
    kind = _TYPES.get(str(spec.get("type")))
    if kind is None:
        return None
    return ColumnSpec(name=str(spec.get("name") or f"_{index}"), type=kind)


def read_mlmodel(directory: Path) -> MLmodel:
    path = directory / MLMODEL
    if not path.is_file():
        raise _invalid(
            "the folder has no MLmodel file", "register the folder mlflow's log_model wrote"
        )
    return parse_mlmodel(path.read_bytes())


def flavor_of(model: MLmodel) -> str:
    """The meshops flavor of an MLflow model (see the module docstring)."""
    fmt = model.serialization_format
    if fmt == "skops":
        return SKOPS
    if fmt in PICKLE_FORMATS:
        return PICKLE
    return PYFUNC


def _sklearn_file(directory: Path, model: MLmodel) -> Path:
    name = model.model_file
    if not name or "/" in name or "\\" in name or name.startswith("."):
        raise _invalid(
            "flavors.sklearn.pickled_model names no file of the folder",
            "log the model with mlflow.sklearn.log_model",
        )
    path = directory / name
    if not path.is_file():
        raise InvalidInput(
            f"the model file {name!r} named by MLmodel is missing",
            {"field": "files", "file": name, "fix": "register the whole folder log_model wrote"},
        )
    return path


def _sklearn_predictor(raw: Any, signature: Signature | None) -> Predictor:
    found = SklearnFlavor().predictor(raw, signature)
    if signature is not None:
        return found
    # Logged without a signature: records (dicts) still reach the model as a table.
    return Predictor(raw=found.raw, call=_RecordsCall(found.call), wants=found.wants)


class _RecordsCall:
    def __init__(self, call: Any) -> None:
        self.call = call

    def __call__(self, data: Any) -> Any:
        if isinstance(data, dict) or (
            isinstance(data, list) and data and all(isinstance(r, dict) for r in data)
        ):
            import pandas as pd

            data = pd.DataFrame([data] if isinstance(data, dict) else data)
        return self.call(data)


class _Base:
    name = ""

    def detect(self, model: object) -> bool:
        return False  # MLflow models are logged by mlflow, never saved by meshops

    def matches_files(self, paths: list[str]) -> bool:
        return False

    def save(self, model: Any, directory: Path, options: dict[str, Any]) -> None:
        raise InvalidInput(
            f"meshops does not write the {self.name!r} flavor",
            {
                "field": "flavor",
                "fix": "log the model with mlflow.<flavor>.log_model, or register an "
                "in-memory scikit-learn model with flavor='sklearn'",
            },
        )

    def _expect(self, directory: Path) -> MLmodel:
        model = read_mlmodel(directory)
        if flavor_of(model) != self.name:
            raise _invalid(
                f"this folder is a {flavor_of(model)!r} model, not {self.name!r}",
                f"register it with flavor={flavor_of(model)!r}",
            )
        return model


class MlflowSklearnFlavor(_Base):
    """scikit-learn in MLflow's format saved with skops: as safe as a native sklearn model."""

    name = SKOPS

    def matches_files(self, paths: list[str]) -> bool:
        return MLMODEL in paths and any(p.endswith(".skops") and "/" not in p for p in paths)

    def load(self, directory: Path, options: dict[str, Any]) -> Any:
        model = self._expect(directory)
        _sklearn_file(directory, model)
        return SklearnFlavor().load(directory, options)

    def validate(self, directory: Path, options: dict[str, Any]) -> None:
        model = self._expect(directory)
        _sklearn_file(directory, model)
        SklearnFlavor().validate(directory, options)

    def predictor(self, raw: Any, signature: Signature | None = None) -> Predictor:
        return _sklearn_predictor(raw, signature)


class MlflowSklearnPickleFlavor(_Base):
    """scikit-learn in MLflow's format saved with pickle/cloudpickle: loading runs code."""

    name = PICKLE

    def load(self, directory: Path, options: dict[str, Any]) -> Any:
        model = self._expect(directory)
        path = _sklearn_file(directory, model)
        if options.get("trust") is not True:
            raise Forbidden(
                f"this MLflow model is a {model.serialization_format} file; loading it runs "
                "code from the file",
                {
                    "flavor": self.name,
                    "file": path.name,
                    "fix": "only if you trust whoever logged it, load it with trust=True; "
                    "or log it with mlflow.sklearn.log_model(..., serialization_format="
                    "'skops')",
                },
            )
        import cloudpickle

        with path.open("rb") as fh:
            return cloudpickle.load(fh)

    def validate(self, directory: Path, options: dict[str, Any]) -> None:
        """Never unpickled here (that runs its code): only checked to be a pickle."""
        model = self._expect(directory)
        path = _sklearn_file(directory, model)
        head = path.read_bytes()[:2]
        if len(head) < 2 or head[0] != 0x80:
            raise InvalidInput(
                f"{path.name} is not a pickle",
                {"field": "files", "file": path.name, "fix": "log it with mlflow's log_model"},
            )

    def predictor(self, raw: Any, signature: Signature | None = None) -> Predictor:
        return _sklearn_predictor(raw, signature)


class MlflowPyfuncFlavor(_Base):
    """Any other MLflow flavor: kept and downloadable by the MLflow client, not loaded here."""

    name = PYFUNC

    def load(self, directory: Path, options: dict[str, Any]) -> Any:
        model = read_mlmodel(directory)
        raise InvalidInput(
            f"meshops loads the sklearn flavor of MLflow models only; this one has "
            f"{', '.join(sorted(model.flavors))}",
            {
                "field": "flavor",
                "fix": "load it with the MLflow client (mlflow.pyfunc.load_model('models:/"
                "...')), or log a scikit-learn model with mlflow.sklearn.log_model",
            },
        )

    def validate(self, directory: Path, options: dict[str, Any]) -> None:
        read_mlmodel(directory)

    def predictor(self, raw: Any, signature: Signature | None = None) -> Predictor:
        raise InvalidInput(f"the {self.name!r} flavor is not served by meshops", {})
