"""scikit-learn models saved with skops: loading never unpickles blindly.

skops records every type a file needs; before loading we ask `get_untrusted_types` for the
ones skops does not trust by default and accept only those from scikit-learn, NumPy and
SciPy (or named explicitly by the caller). Anything else (a builtin like `eval`, a class
of some other package) is refused with the list of types and how to trust them.
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import numpy as np

from meshops.kernel.errors import Forbidden
from meshops.registry.flavors.base import Predictor, loaded_module
from meshops.registry.models import Signature

FILE = "model.skops"
TRUSTED_PREFIXES = ("sklearn.", "numpy.", "scipy.")


def is_allowed(type_name: str, extra: set[str]) -> bool:
    return type_name in extra or type_name.startswith(TRUSTED_PREFIXES)


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
        extra = set(options.get("trusted_types") or [])
        needed = skops.io.get_untrusted_types(file=path)
        refused = sorted(t for t in needed if not is_allowed(t, extra))
        if refused:
            raise Forbidden(
                f"refusing to load {path.name}: it contains types outside the trusted "
                f"scikit-learn/NumPy/SciPy set: {', '.join(refused)}",
                {
                    "untrusted_types": refused,
                    "file": path.name,
                    "fix": "inspect the file; if you trust these types pass "
                    f"trusted_types={refused!r} to load_model",
                },
            )
        return skops.io.load(path, trusted=needed)

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


def _model_file(directory: Path) -> Path:
    preferred = directory / FILE
    if preferred.exists():
        return preferred
    found = sorted(directory.rglob("*.skops"))
    if not found:
        raise FileNotFoundError(f"no .skops file in {directory}")
    return found[0]
