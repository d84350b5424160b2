"""Packaging an in-memory model into files, and loading files back as a `LoadedModel`.

Both transports share this: the embedded service writes the files into the blob store
directly, the remote client uploads them; loading always happens in the caller's
process from a local folder of the version's files.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from meshops.kernel.errors import InvalidInput, MeshopsError
from meshops.registry.flavors import Flavor, detect_flavor, get_flavor
from meshops.registry.models import ModelFile, ModelVersion, Signature, check_relative
from meshops.registry.signature import InputAdapter, infer_signature


class LoadedModel:
    """A registered model ready to call. `predict` enforces the signature: a missing
    column or a value of the wrong type raises InvalidInput naming the record and the
    column. `predict_proba` adds the class probabilities of a classifier."""

    __slots__ = ("_adapter", "_call", "raw", "signature", "version")

    def __init__(self, version: ModelVersion, raw: Any, flavor: Flavor) -> None:
        predictor = flavor.predictor(raw, version.signature)
        self.version = version
        self.raw = raw
        self.signature = version.signature
        self._call = predictor.call
        self._adapter = (
            InputAdapter(version.signature, predictor.wants) if version.signature else None
        )

    @property
    def name(self) -> str:
        return self.version.name

    @property
    def flavor(self) -> str:
        return self.version.flavor

    @property
    def uri(self) -> str:
        return self.version.uri

    def predict(self, data: Any, *, first: int = 0) -> Any:
        """`first`: the index of data's first record in error messages (a batch's chunk)."""
        if self._adapter is not None:
            data = self._adapter(data, first)
        return self._call(data)

    @property
    def classes(self) -> list[Any] | None:
        """The classes of a classifier that has `predict_proba` (scikit-learn's `classes_`,
        in the order of the probability columns); None for any other model."""
        raw = self.raw
        classes = getattr(raw, "classes_", None)
        if classes is None or not callable(getattr(raw, "predict_proba", None)):
            return None
        return [c.item() if hasattr(c, "item") else c for c in classes]

    def predict_proba(self, data: Any, *, first: int = 0) -> tuple[Any, Any, list[Any]]:
        """(predicted labels, probabilities as an (n, classes) array, classes). InvalidInput
        when the model has no `predict_proba`."""
        classes = self.classes
        if classes is None:
            raise InvalidInput(
                f"{self.uri} gives no class probabilities (a {type(self.raw).__name__} "
                "without predict_proba or classes_)",
                {
                    "field": "proba",
                    "model": self.uri,
                    "fix": "ask without proba; probabilities need a classifier with predict_proba",
                },
            )
        prepared = self._adapter(data, first) if self._adapter is not None else data
        labels = self._call(prepared)
        names = getattr(self.raw, "feature_names_in_", None)
        if names is not None and type(prepared).__name__ == "ndarray":
            import pandas as pd

            # The array path is the estimator's own columns in order (see the sklearn
            # flavor); named columns keep predict_proba free of feature-name warnings.
            prepared = pd.DataFrame(prepared, columns=[str(n) for n in names])
        return labels, self.raw.predict_proba(prepared), classes

    def __repr__(self) -> str:
        return f"LoadedModel({self.uri!r}, flavor={self.flavor!r})"


def package_model(
    model: Any,
    directory: Path,
    *,
    flavor: str | None = None,
    input_example: Any = None,
    signature: Signature | None = None,
    options: dict[str, Any] | None = None,
) -> tuple[str, Signature | None]:
    """Save `model` through its flavor into `directory`; infer its signature from the
    example (outputs by calling the model on it). Returns (flavor name, signature)."""
    chosen = get_flavor(flavor) if flavor else detect_flavor(model)
    opts = dict(options or {})
    if input_example is not None:
        opts.setdefault("input_example", input_example)
    chosen.save(model, directory, opts)
    if signature is not None or input_example is None:
        return chosen.name, signature
    # ONNX runs from its serialized form; every other flavor can run the object itself.
    live = chosen.load(directory, {}) if chosen.name == "onnx" else model
    predictor = chosen.predictor(live)
    try:
        inferred = infer_signature(input_example, predictor.call, predictor.wants)
    except InvalidInput:
        raise
    except Exception as exc:
        raise InvalidInput(
            f"the model failed on its input example: {type(exc).__name__}: {exc}",
            {"field": "input_example", "fix": "pass an example the model can predict on"},
        ) from exc
    return chosen.name, inferred


def target_path(root: Path, relative: str) -> Path:
    """Where a version's file goes inside a local folder (never outside it)."""
    check_relative(relative)
    target = root / relative
    target.parent.mkdir(parents=True, exist_ok=True)
    return target


def materialize(root: Path, file: ModelFile, data: bytes) -> None:
    """Write downloaded bytes after checking they are the registered content."""
    if hashlib.sha256(data).hexdigest() != file.digest:
        raise MeshopsError(
            f"downloaded {file.path} does not match its digest {file.digest}",
            {"fix": "retry; if it persists the blob store is corrupt"},
        )
    target_path(root, file.path).write_bytes(data)


def load_directory(
    version: ModelVersion,
    directory: Path,
    trust: bool = False,
    trusted_types: list[str] | None = None,
    importable: list[str] | None = None,
) -> LoadedModel:
    """`importable`: when set, the only modules (besides those already imported) a torch
    recipe may name; the API server sets it, since importing a module runs its code."""
    flavor = get_flavor(version.flavor)
    options: dict[str, Any] = {"trust": trust, "trusted_types": trusted_types or []}
    if importable is not None:
        options["importable"] = importable
    try:
        raw = flavor.load(directory, options)
    except MeshopsError:
        raise
    except Exception as exc:  # a file that no longer loads (registered before validation)
        raise InvalidInput(
            f"{version.uri} cannot be loaded: {type(exc).__name__}: {exc}",
            {"model": version.uri, "fix": "register a new version with valid files"},
        ) from exc
    return LoadedModel(version, raw, flavor)
