"""Any Python function or object with `predict`, saved with cloudpickle.

Unpickling runs arbitrary code, so loading needs an explicit `trust=True` from the caller.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from meshops.kernel.errors import Forbidden, InvalidInput
from meshops.registry.flavors.base import Predictor
from meshops.registry.models import Signature

FILE = "model.cloudpickle"


class PythonFunctionFlavor:
    name = "python"

    def detect(self, model: object) -> bool:
        return callable(getattr(model, "predict", None)) or callable(model)

    def matches_files(self, paths: list[str]) -> bool:
        return FILE in paths

    def save(self, model: Any, directory: Path, options: dict[str, Any]) -> None:
        import cloudpickle

        if not self.detect(model):
            raise InvalidInput(
                f"a {type(model).__name__} is neither callable nor has predict()",
                {"field": "model", "fix": "pass a function or an object with predict(data)"},
            )
        with open(directory / FILE, "wb") as fh:
            cloudpickle.dump(model, fh)

    def load(self, directory: Path, options: dict[str, Any]) -> Any:
        if options.get("trust") is not True:
            raise Forbidden(
                "this model is a pickled Python object; loading it runs code from the file",
                {
                    "flavor": self.name,
                    "fix": "only if you trust whoever registered it, load it with trust=True",
                },
            )
        import cloudpickle

        with open(directory / FILE, "rb") as fh:
            return cloudpickle.load(fh)

    def validate(self, directory: Path, options: dict[str, Any]) -> None:
        """Never unpickled here (that runs its code): only checked to be a pickle."""
        path = directory / FILE
        head = path.read_bytes()[:2] if path.is_file() else b""
        if len(head) < 2 or head[0] != 0x80:  # pickle protocol 2+ starts with PROTO
            raise InvalidInput(
                f"a python model version needs a {FILE} written by cloudpickle",
                {"field": "files", "file": FILE, "fix": "log the model with flavor='python'"},
            )

    def predictor(self, raw: Any, signature: Signature | None = None) -> Predictor:
        call = raw.predict if callable(getattr(raw, "predict", None)) else raw
        return Predictor(raw=raw, call=call, wants="frame")
