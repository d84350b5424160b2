"""ONNX models run with onnxruntime. Accepts an `onnx.ModelProto` (or its bytes); a
scikit-learn estimator logged with flavor='onnx' is converted with skl2onnx."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from meshops.kernel.errors import InvalidInput
from meshops.registry.flavors.base import Predictor, loaded_module
from meshops.registry.models import Signature

FILE = "model.onnx"

_ORT_TYPES = {
    "tensor(float)": np.float32,
    "tensor(double)": np.float64,
    "tensor(int64)": np.int64,
    "tensor(int32)": np.int32,
    "tensor(bool)": np.bool_,
}


class OnnxFlavor:
    name = "onnx"

    def detect(self, model: object) -> bool:
        onnx = loaded_module("onnx")
        return onnx is not None and isinstance(model, onnx.ModelProto)

    def matches_files(self, paths: list[str]) -> bool:
        return any(p.endswith(".onnx") for p in paths)

    def save(self, model: Any, directory: Path, options: dict[str, Any]) -> None:
        (directory / FILE).write_bytes(self._to_bytes(model, options))

    def _to_bytes(self, model: Any, options: dict[str, Any]) -> bytes:
        if isinstance(model, bytes):
            return model
        if self.detect(model):
            return bytes(model.SerializeToString())
        sklearn_base = loaded_module("sklearn.base")
        if sklearn_base is not None and isinstance(model, sklearn_base.BaseEstimator):
            return _convert_sklearn(model, options)
        raise InvalidInput(
            f"the onnx flavor cannot save a {type(model).__name__}",
            {"field": "model", "fix": "pass an onnx.ModelProto, its bytes, or an sklearn model"},
        )

    def load(self, directory: Path, options: dict[str, Any]) -> Any:
        import onnxruntime

        found = sorted(directory.rglob("*.onnx"))
        if not found:
            raise FileNotFoundError(f"no .onnx file in {directory}")
        opts = onnxruntime.SessionOptions()
        # One intra-op thread: serving runs many small requests in parallel.
        opts.intra_op_num_threads = int(options.get("threads", 1))
        return onnxruntime.InferenceSession(
            str(found[0]), sess_options=opts, providers=["CPUExecutionProvider"]
        )

    def validate(self, directory: Path, options: dict[str, Any]) -> None:
        """The file must be one ONNX graph with its weights inside (external data would make
        onnxruntime open other paths) that onnxruntime can load."""
        found = sorted(directory.rglob("*.onnx"))
        if not found:
            raise InvalidInput(
                "an onnx model version needs a .onnx file",
                {"field": "files", "fix": "upload model.onnx"},
            )
        _refuse_external_data(found[0])
        try:
            self.load(directory, options)
        except Exception as exc:  # onnxruntime raises its own exception types
            raise InvalidInput(
                f"{found[0].name} does not load with onnxruntime: {exc}",
                {"field": "files", "file": found[0].name, "fix": "export the model again"},
            ) from exc

    def predictor(self, raw: Any, signature: Signature | None = None) -> Predictor:
        first_input = raw.get_inputs()[0]
        input_name = first_input.name
        dtype = _ORT_TYPES.get(first_input.type, np.float32)
        output_name = raw.get_outputs()[0].name

        def call(data: Any) -> Any:
            array: np.ndarray = np.asarray(data, dtype=dtype)
            return raw.run([output_name], {input_name: array})[0]

        return Predictor(raw=raw, call=call, wants="array")


def _refuse_external_data(path: Path) -> None:
    try:
        import onnx
    except ImportError:  # onnxruntime alone: it refuses paths outside the model folder
        return
    try:
        proto = onnx.load(str(path), load_external_data=False)
    except Exception as exc:  # a protobuf decode error
        raise InvalidInput(
            f"{path.name} is not an ONNX model: {exc}",
            {"field": "files", "file": path.name, "fix": "export the model again"},
        ) from exc
    external = onnx.TensorProto.EXTERNAL
    if any(t.data_location == external for t in proto.graph.initializer):
        raise InvalidInput(
            f"{path.name} keeps tensors in external files",
            {
                "field": "files",
                "file": path.name,
                "fix": "save with onnx.save(model, path, save_as_external_data=False)",
            },
        )


def _convert_sklearn(model: Any, options: dict[str, Any]) -> bytes:
    from skl2onnx import to_onnx

    example = options.get("input_example")
    if example is None:
        raise InvalidInput(
            "converting a scikit-learn model to ONNX needs an input example",
            {"field": "input_example", "fix": "pass input_example=X[:5] (a numeric array)"},
        )
    array = np.asarray(example.to_numpy() if hasattr(example, "to_numpy") else example)
    proto = to_onnx(model, array.astype(np.float32), target_opset=options.get("opset"))
    return bytes(proto.SerializeToString())
