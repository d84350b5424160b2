"""PyTorch modules saved as a state dict plus the recipe to rebuild the module.

The weights are written with `torch.save(state_dict)` and read with
`torch.load(weights_only=True)`, which refuses arbitrary pickled objects. The module is
rebuilt by importing its class by path and calling it with the recorded init kwargs
(JSON), so the class must be importable where the model is loaded. Needs the `torch`
extra; torch is imported only when a torch model is saved or loaded.
"""

from __future__ import annotations

import importlib
import json
import sys
from pathlib import Path
from typing import Any

import numpy as np

from meshops.kernel.errors import Forbidden, InvalidInput
from meshops.registry.flavors.base import Predictor, loaded_module
from meshops.registry.models import Signature

WEIGHTS = "state_dict.pt"
RECIPE = "torch_module.json"


def _torch() -> Any:
    try:
        import torch
    except ImportError as exc:
        raise InvalidInput(
            "PyTorch models need the torch extra",
            {"fix": "pip install 'meshops[torch]'"},
        ) from exc
    return torch


class TorchStateDictFlavor:
    name = "torch"

    def detect(self, model: object) -> bool:
        nn = loaded_module("torch.nn")
        return nn is not None and isinstance(model, nn.Module)

    def matches_files(self, paths: list[str]) -> bool:
        return WEIGHTS in paths and RECIPE in paths

    def save(self, model: Any, directory: Path, options: dict[str, Any]) -> None:
        torch = _torch()
        cls = type(model)
        if cls.__module__ == "__main__" or "<locals>" in cls.__qualname__:
            raise InvalidInput(
                f"{cls.__qualname__} is defined in a script or a function, so it cannot be "
                "imported again to rebuild the model",
                {"field": "model", "fix": "define the module class in an importable module"},
            )
        init_kwargs = options.get("init_kwargs", getattr(model, "init_kwargs", {}))
        try:
            recipe = json.dumps(
                {"class": f"{cls.__module__}:{cls.__qualname__}", "init_kwargs": init_kwargs}
            )
        except TypeError as exc:
            raise InvalidInput(
                f"init_kwargs of {cls.__qualname__} must be JSON values: {exc}",
                {"field": "init_kwargs"},
            ) from exc
        torch.save(model.state_dict(), directory / WEIGHTS)
        (directory / RECIPE).write_text(recipe)

    def load(self, directory: Path, options: dict[str, Any]) -> Any:
        torch = _torch()
        recipe = json.loads((directory / RECIPE).read_text())
        module_name, _, qualname = str(recipe["class"]).partition(":")
        _check_importable(module_name, options.get("importable"))
        try:
            target: Any = importlib.import_module(module_name)
            for part in qualname.split("."):
                target = getattr(target, part)
        except (ImportError, AttributeError) as exc:
            raise InvalidInput(
                f"cannot import the module class {recipe['class']}: {exc}",
                {"fix": "install the package that defines it where you load the model"},
            ) from exc
        if not (isinstance(target, type) and issubclass(target, torch.nn.Module)):
            raise InvalidInput(f"{recipe['class']} is not a torch.nn.Module subclass")
        module = target(**recipe.get("init_kwargs", {}))
        state = torch.load(directory / WEIGHTS, map_location="cpu", weights_only=True)
        module.load_state_dict(state)
        module.eval()
        return module

    def validate(self, directory: Path, options: dict[str, Any]) -> None:
        """The weights must load with `weights_only=True` and the recipe must be a class
        path and JSON init kwargs. The class is not imported here: importing runs module
        code, which happens only where the model is loaded."""
        torch = _torch()
        _check_recipe(directory / RECIPE)
        try:
            state = torch.load(directory / WEIGHTS, map_location="cpu", weights_only=True)
        except Exception as exc:  # an UnpicklingError for anything but plain tensors
            raise InvalidInput(
                f"{WEIGHTS} does not load as plain weights: {exc}",
                {"field": "files", "file": WEIGHTS, "fix": "save model.state_dict() only"},
            ) from exc
        if not isinstance(state, dict):
            raise InvalidInput(
                f"{WEIGHTS} holds a {type(state).__name__}, not a state dict",
                {"field": "files", "file": WEIGHTS, "fix": "save model.state_dict() only"},
            )

    def predictor(self, raw: Any, signature: Signature | None = None) -> Predictor:
        torch = _torch()
        parameter = next(raw.parameters(), None)
        dtype = parameter.dtype if parameter is not None else torch.float32

        def call(data: Any) -> Any:
            with torch.inference_mode():
                tensor = torch.as_tensor(np.asarray(data), dtype=dtype)
                return raw(tensor).numpy()

        return Predictor(raw=raw, call=call, wants="array")


def _check_importable(module: str, importable: list[str] | None) -> None:
    """Importing a module runs its code: where `importable` is set (the API server), only a
    module already imported or one an admin listed may be named by a recipe."""
    if importable is None or module in sys.modules or module in importable:
        return
    raise Forbidden(
        f"this process does not import {module!r} for a torch model (importing runs its code)",
        {
            "field": "torch_module.json",
            "module": module,
            "fix": f"an admin adds {module!r} to [registry] torch_modules in meshops.toml, "
            "or export the model to ONNX",
        },
    )


def _check_recipe(path: Path) -> None:
    try:
        recipe = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        problem: str | None = str(exc)
    else:
        problem = _recipe_problem(recipe)
    if problem:
        raise InvalidInput(
            f"{RECIPE} is not a module recipe: {problem}",
            {"field": "files", "file": RECIPE, "fix": "log the model with flavor='torch'"},
        )


def _recipe_problem(recipe: Any) -> str | None:
    if not isinstance(recipe, dict):
        return "it must be a JSON object"
    module, sep, qualname = str(recipe.get("class", "")).partition(":")
    if not (module and sep and qualname):
        return "it needs a class 'package.module:Class'"
    if not isinstance(recipe.get("init_kwargs", {}), dict):
        return "init_kwargs must be an object"
    return None
