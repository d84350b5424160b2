"""Model flavors: how one kind of model is saved to files, loaded back and called.

Each flavor lives in its own module and imports its library lazily, so registering a
scikit-learn model never imports torch. `detect` only looks at libraries already imported
by the caller (a model object of a library implies the library is loaded).
"""

from __future__ import annotations

from meshops.kernel.errors import InvalidInput
from meshops.registry.flavors.base import Flavor, Predictor
from meshops.registry.flavors.mlflow_model import (
    MlflowPyfuncFlavor,
    MlflowSklearnFlavor,
    MlflowSklearnPickleFlavor,
)
from meshops.registry.flavors.onnx import OnnxFlavor
from meshops.registry.flavors.python import PythonFunctionFlavor
from meshops.registry.flavors.sklearn import SklearnFlavor
from meshops.registry.flavors.torch import TorchStateDictFlavor

# Order matters for detection: the generic Python flavor accepts anything callable; an
# MLflow folder (MLmodel + model.skops) is recognised before a bare .skops file.
FLAVORS: dict[str, Flavor] = {
    flavor.name: flavor
    for flavor in (
        MlflowSklearnFlavor(),
        MlflowSklearnPickleFlavor(),
        MlflowPyfuncFlavor(),
        OnnxFlavor(),
        TorchStateDictFlavor(),
        SklearnFlavor(),
        PythonFunctionFlavor(),
    )
}


def get_flavor(name: str) -> Flavor:
    try:
        return FLAVORS[name]
    except KeyError:
        raise InvalidInput(
            f"unknown model flavor {name!r}",
            {"field": "flavor", "known": sorted(FLAVORS), "fix": "pick one of the known flavors"},
        ) from None


def detect_flavor(model: object) -> Flavor:
    for flavor in FLAVORS.values():
        if flavor.detect(model):
            return flavor
    raise InvalidInput(
        f"cannot tell which flavor a {type(model).__name__} is",
        {
            "field": "flavor",
            "known": sorted(FLAVORS),
            "fix": "pass flavor=... explicitly; any object with predict() or a function can "
            "use flavor='python'",
        },
    )


def flavor_from_files(paths: list[str]) -> Flavor:
    """The flavor of a model folder logged as run artifacts, from its file names."""
    for flavor in FLAVORS.values():
        if flavor.matches_files(paths):
            return flavor
    raise InvalidInput(
        f"cannot tell the flavor of the files {paths[:10]}",
        {
            "field": "flavor",
            "known": sorted(FLAVORS),
            "fix": "pass flavor=...; expected e.g. model.skops, model.onnx, "
            "state_dict.pt + torch_module.json or model.cloudpickle",
        },
    )


__all__ = ["FLAVORS", "Flavor", "Predictor", "detect_flavor", "flavor_from_files", "get_flavor"]
