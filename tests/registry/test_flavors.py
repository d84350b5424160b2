"""Each flavor round-trips through the registry (save, register, download, load, predict)."""

from __future__ import annotations

import numpy as np
import pytest

from meshops.client import Platform
from meshops.kernel.errors import Forbidden, InvalidInput
from tests.registry.helpers import Doubler, fitted_classifier

# Flavors are about files, not the database: embedded and HTTP cover them.
pytestmark = pytest.mark.parametrize("platform", ["embedded", "http"], indirect=True)


def test_onnx_from_sklearn_and_from_a_model_proto(platform: Platform) -> None:
    import onnx

    model, data = fitted_classifier()
    array = data.to_numpy(dtype=np.float32)
    converted = platform.registry.log_model(
        "churn-onnx", model, flavor="onnx", input_example=array[:5]
    )
    assert converted.flavor == "onnx"
    assert converted.signature is not None and converted.signature.kind == "tensor"
    loaded = platform.registry.load_model("models:/churn-onnx/1")
    assert np.array_equal(loaded.predict(array), model.predict(data))
    with pytest.raises(InvalidInput, match="shape"):
        loaded.predict(np.zeros((2, 5), dtype=np.float32))

    proto = onnx.load_from_string(platform.registry.read_file("churn-onnx", 1, "model.onnx"))
    again = platform.registry.log_model("churn-onnx", proto)  # flavor detected from the type
    assert again.flavor == "onnx"
    reloaded = platform.registry.load_model("models:/churn-onnx/2")
    assert np.array_equal(reloaded.predict(array), model.predict(data))


def test_torch_state_dict_round_trip(platform: Platform) -> None:
    import torch

    from tests.registry.torch_modules import TinyNet

    torch.manual_seed(0)
    net = TinyNet(width=3, hidden=5).eval()
    example = np.random.default_rng(0).normal(size=(4, 3)).astype(np.float32)
    version = platform.registry.log_model("tiny", net, input_example=example)
    assert version.flavor == "torch"
    assert {f.path for f in version.files} == {"state_dict.pt", "torch_module.json"}
    loaded = platform.registry.load_model("models:/tiny/1")
    assert isinstance(loaded.raw, TinyNet) and loaded.raw.init_kwargs["hidden"] == 5
    with torch.no_grad():
        expected = net(torch.from_numpy(example)).numpy()
    assert np.allclose(loaded.predict(example), expected)


def test_torch_module_defined_in_a_function_is_refused(platform: Platform) -> None:
    import torch

    class Local(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    with pytest.raises(InvalidInput, match="cannot be imported again"):
        platform.registry.log_model("local", Local())


def test_cloudpickle_needs_explicit_trust(platform: Platform) -> None:
    import pandas as pd

    example = pd.DataFrame({"x": [1.0, 2.0]})
    version = platform.registry.log_model("doubler", Doubler(), input_example=example)
    assert version.flavor == "python"
    with pytest.raises(Forbidden, match="runs code from the file") as info:
        platform.registry.load_model("models:/doubler/1")
    assert "trust=True" in info.value.detail["fix"]
    loaded = platform.registry.load_model("models:/doubler/1", trust=True)
    assert loaded.predict({"x": 4.0}).tolist() == [8.0]
    with pytest.raises(InvalidInput, match="missing input column: x"):
        loaded.predict({"y": 1.0})


def test_plain_function_with_python_flavor(platform: Platform) -> None:
    import pandas as pd

    def score(data: pd.DataFrame) -> np.ndarray:
        return (data["a"] + data["b"]).to_numpy()

    platform.registry.log_model("adder", score, input_example={"a": 1, "b": 2})
    loaded = platform.registry.load_model("models:/adder/latest", trust=True)
    assert loaded.predict({"a": 3, "b": 4}).tolist() == [7]


def test_undetectable_objects_are_refused(platform: Platform) -> None:
    with pytest.raises(InvalidInput, match="cannot tell which flavor"):
        platform.registry.log_model("thing", object())
