"""scikit-learn models saved with skops: loading never unpickles blindly.

Every name a skops file would rebuild is checked against explicit lists of exact names
(`skops_types`: the scikit-learn estimators and their fitted internals, NumPy arrays and
dtypes, SciPy sparse matrices, and a short list of pure functions such as `numpy.log1p`);
anything else (a builtin like `eval`, `numpy.testing`'s `runstring`, a class of another
package) is refused with the list of names and how to proceed. `validate` runs the same
check when a version is registered (InvalidInput, 422), loads the file, and checks the
node arrays of fitted trees, so a file that would fail or misbehave at predict time is
refused at registration instead.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from meshops.kernel.errors import Forbidden, InvalidInput
from meshops.registry.flavors.base import Predictor, loaded_module
from meshops.registry.flavors.skops_types import refused_names
from meshops.registry.models import Signature

FILE = "model.skops"
MAX_WALKED_OBJECTS = 200_000


def _refused(path: Path, options: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(refused names, skops' untrusted names) of the file; ValueError if it is not one."""
    import skops.io

    extra = frozenset(options.get("trusted_types") or [])
    # Our own walk first: a refused name is reported even when skops cannot parse the rest.
    refused = refused_names(path, [], extra)
    try:
        untrusted = skops.io.get_untrusted_types(file=path)
    except Exception as exc:  # a broken archive or schema: skops raises many kinds
        if refused:
            return refused, []
        raise ValueError(f"skops cannot read it: {type(exc).__name__}: {exc}") from exc
    return refused_names(path, untrusted, extra), untrusted


class SklearnFlavor:
    name = "sklearn"

    def detect(self, model: object) -> bool:
        base = loaded_module("sklearn.base")
        return base is not None and isinstance(model, base.BaseEstimator)

    def matches_files(self, paths: list[str]) -> bool:
        return any(p == FILE or p.endswith(".skops") for p in paths)

    def save(self, model: Any, directory: Path, options: dict[str, Any]) -> None:
        import skops.io

        skops.io.dump(model, directory / FILE)

    def load(self, directory: Path, options: dict[str, Any]) -> Any:
        import skops.io

        path = _model_file(directory)
        try:
            refused, untrusted = _refused(path, options)
        except ValueError as exc:
            raise InvalidInput(
                f"{path.name} cannot be loaded: {exc}",
                {"file": path.name, "fix": "register a file written by skops.io.dump"},
            ) from exc
        if refused:
            raise Forbidden(
                f"refusing to load {path.name}: it names types or functions outside the "
                f"allowed scikit-learn/NumPy/SciPy list: {', '.join(refused)}",
                {
                    "untrusted_types": refused,
                    "file": path.name,
                    "fix": "inspect the file; if you trust these names pass "
                    f"trusted_types={refused!r} to load_model",
                },
            )
        return skops.io.load(path, trusted=untrusted)

    def validate(self, directory: Path, options: dict[str, Any]) -> None:
        """Refuse (InvalidInput) a file that names anything outside the allowed list, does
        not load, is not an estimator, or holds trees whose node arrays point outside
        themselves (scikit-learn indexes them without bounds checks)."""
        import skops.io

        path = _model_file(directory)
        try:
            refused, untrusted = _refused(path, options)
        except ValueError as exc:
            raise _invalid(path, str(exc)) from exc
        if refused:
            raise InvalidInput(
                f"{path.name} names types or functions outside the allowed scikit-learn/"
                f"NumPy/SciPy list: {', '.join(refused)}",
                {
                    "field": "files",
                    "file": path.name,
                    "untrusted_types": refused,
                    "fix": "keep functions out of the model (FunctionTransformer with "
                    "numpy ufuncs only), register it with flavor='onnx', or, if these "
                    "names are safe, ask an admin to add them to [registry] "
                    "trusted_skops_types in meshops.toml",
                },
            )
        try:
            raw = skops.io.load(path, trusted=untrusted)
        except Exception as exc:  # whatever skops or scikit-learn raise on a bad file
            raise _invalid(path, f"{type(exc).__name__}: {exc}") from exc
        if not (hasattr(raw, "predict") or hasattr(raw, "transform")):
            raise _invalid(path, f"a {type(raw).__name__} has neither predict nor transform")
        problem = _tree_problem(raw)
        if problem:
            raise _invalid(path, problem)

    def predictor(self, raw: Any, signature: Signature | None = None) -> Predictor:
        if not hasattr(raw, "predict"):
            # A bare transformer (scaler, encoder ...) is "called" by transforming.
            return Predictor(raw=raw, call=raw.transform, wants="frame")
        names = [str(n) for n in getattr(raw, "feature_names_in_", [])]
        if not names:
            return Predictor(raw=raw, call=raw.predict, wants="array")
        numeric = signature is not None and all(
            c.type in {"float", "integer", "boolean"} for c in signature.inputs
        )
        if not (numeric and signature is not None and signature.input_names == names):
            return Predictor(raw=raw, call=raw.predict, wants="frame")
        return Predictor(raw=raw, call=_ProbedArrayCall(raw, names), wants="array")


class _ProbedArrayCall:
    """Estimators fitted on a DataFrame validate it on every call, which costs far more
    than the prediction of one record. When the signature's numeric columns are exactly
    the fitted feature names in order, an array is the same input positionally; the first
    call predicts both ways and keeps the array path only if the results agree (an
    estimator that selects columns by name, like a ColumnTransformer, fails or differs
    and stays on the DataFrame path)."""

    def __init__(self, raw: Any, names: list[str]) -> None:
        self.raw = raw
        self.names = names
        self.fast: bool | None = None

    def __call__(self, array: Any) -> Any:
        if self.fast:
            return self.raw.predict(array)
        import pandas as pd

        result = self.raw.predict(pd.DataFrame(array, columns=self.names))
        if self.fast is None:
            self.fast = self._agrees(array, result)
        return result

    def _agrees(self, array: Any, expected: Any) -> bool:
        _ignore_feature_name_warning()
        try:
            return bool(np.array_equal(self.raw.predict(array), expected))
        except Exception:
            return False


def _ignore_feature_name_warning() -> None:
    # Emitted by sklearn for every array call once the array path is chosen on purpose.
    warnings.filterwarnings(
        "ignore", message="X does not have valid feature names", category=UserWarning
    )


def _invalid(path: Path, reason: str) -> InvalidInput:
    return InvalidInput(
        f"{path.name} is not a loadable scikit-learn model: {reason}",
        {"field": "files", "file": path.name, "fix": "save the model with skops.io.dump"},
    )


def _tree_problem(raw: Any) -> str | None:
    """The first fitted tree whose node indices point outside its arrays, if any."""
    seen: set[int] = set()
    stack: list[tuple[Any, int]] = [(raw, -1)]
    while stack and len(seen) < MAX_WALKED_OBJECTS:
        obj, n_features = stack.pop()
        if id(obj) in seen or obj is None or isinstance(obj, str | int | float | bool):
            continue
        seen.add(id(obj))
        name = type(obj).__name__
        if name == "Tree" and hasattr(obj, "children_left"):
            problem = _check_nodes(
                obj.children_left, obj.children_right, obj.feature, int(obj.n_features)
            )
        elif name == "TreePredictor" and hasattr(obj, "nodes"):
            nodes = obj.nodes
            leaf = nodes["is_leaf"].astype(bool)
            # int64 first: the fields are unsigned, and -1 must stay -1.
            left = np.where(leaf, -1, nodes["left"].astype(np.int64))
            right = np.where(leaf, -1, nodes["right"].astype(np.int64))
            feature = np.where(leaf, -2, nodes["feature_idx"].astype(np.int64))
            problem = _check_nodes(left, right, feature, n_features) or _bitset_problem(obj)
        else:
            problem = None
            n_features = int(getattr(obj, "n_features_in_", n_features) or n_features)
            stack.extend((child, n_features) for child in _children(obj))
        if problem:
            return f"a fitted {name} is malformed: {problem}"
    return None


def _bitset_problem(predictor: Any) -> str | None:
    nodes = predictor.nodes
    categorical = (nodes["is_categorical"] != 0) & (nodes["is_leaf"] == 0)
    bitsets = len(getattr(predictor, "raw_left_cat_bitsets", []))
    if np.any(nodes["bitset_idx"][categorical] >= bitsets):
        return "a categorical split points outside its bitsets"
    return None


def _children(obj: Any) -> list[Any]:
    if isinstance(obj, dict):
        return list(obj.values())
    if isinstance(obj, list | tuple):
        return list(obj)
    if isinstance(obj, np.ndarray):
        return list(obj.ravel()) if obj.dtype == object else []
    return list(vars(obj).values()) if hasattr(obj, "__dict__") else []


def _check_nodes(left: Any, right: Any, feature: Any, n_features: int) -> str | None:
    """Internal nodes must point to later nodes (no cycles) inside the array and test a
    feature the model has; leaves are marked by -1 children."""
    left, right, feature = (np.asarray(a, dtype=np.int64) for a in (left, right, feature))
    count = len(left)
    index = np.arange(count)
    internal = left != -1
    if np.any(internal != (right != -1)):
        return "a node has one child"
    for children in (left[internal], right[internal]):
        if np.any(children >= count) or np.any(children <= index[internal]):
            return "a child index points outside the tree or backwards"
    if n_features >= 0 and np.any((feature[internal] < 0) | (feature[internal] >= n_features)):
        return f"a split tests a feature outside 0..{n_features - 1}"
    return None


def _model_file(directory: Path) -> Path:
    preferred = directory / FILE
    if preferred.exists():
        return preferred
    found = sorted(directory.rglob("*.skops"))
    if not found:
        raise FileNotFoundError(f"no .skops file in {directory}")
    return found[0]
