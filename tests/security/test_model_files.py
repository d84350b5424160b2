"""Model files are validated at registration (issue #14, finding 3 and the malformed-model
part of finding 14), over real HTTP against the shared governed server.

The exploit of finding 3 is rebuilt here for real: a skops pipeline whose
FunctionTransformer calls `numpy.testing._private.utils.runstring`, which `exec`s the text
it is given, i.e. a predict request. The old prefix list ("numpy.") let it through.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pandas as pd
import pytest
import skops.io
from sklearn.ensemble import HistGradientBoostingClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler

from meshops.kernel.home import Home
from tests.conftest import LiveServer, make_settings
from tests.security.conftest import SecurityHome

DS = "ds-none"  # a data scientist: may register models (registry.write)
MLE = "mle-none"  # an ML engineer: may also create endpoints


def _runstring_exploit(marker: Path) -> bytes:
    """The finding's file: predict({"x": <python source>}) would exec the source."""
    import numpy.testing._private.utils as numpy_utils

    step = FunctionTransformer(numpy_utils.runstring, kw_args={"dict": {}})
    data: bytes = skops.io.dumps(make_pipeline(step))
    assert "numpy.testing._private.utils.runstring" in skops.io.get_untrusted_types(data=data)
    assert not marker.exists()
    return data


def _upload(client: httpx.Client, data: bytes) -> str:
    answer = client.post(
        "/v1/models/-/files", content=data, headers={"content-type": "application/octet-stream"}
    )
    assert answer.status_code == 201, answer.text
    digest = str(answer.json()["digest"])
    assert digest == hashlib.sha256(data).hexdigest()
    return digest


def _register(
    client: httpx.Client, name: str, files: dict[str, bytes], flavor: str = "sklearn"
) -> httpx.Response:
    listed = [
        {"path": path, "digest": _upload(client, data), "size": len(data)}
        for path, data in files.items()
    ]
    return client.post(f"/v1/models/{name}/versions", json={"files": listed, "flavor": flavor})


def _no_versions(client: httpx.Client, name: str) -> None:
    listed = client.get(f"/v1/models/{name}/versions")
    assert listed.status_code == 404 or listed.json() == [], listed.text


def test_runstring_exploit_is_refused_at_registration_over_http(
    sec: SecurityHome, tmp_path: Path
) -> None:
    marker = tmp_path / "pwned"
    client = sec.client(DS)
    answer = _register(client, "exploit-runstring", {"model.skops": _runstring_exploit(marker)})
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "invalid_input"
    assert "numpy.testing._private.utils.runstring" in body["detail"]["untrusted_types"]
    assert "trusted_skops_types" in body["detail"]["fix"] and "onnx" in body["detail"]["fix"]
    _no_versions(client, "exploit-runstring")
    assert not marker.exists()


@pytest.mark.parametrize(
    "func",
    ["builtins.eval", "builtins.exec", "os.system", "subprocess.getoutput", "pickle.loads"],
)
def test_any_function_outside_the_short_ufunc_list_is_refused(sec: SecurityHome, func: str) -> None:
    import importlib

    module, _, name = func.rpartition(".")
    step = FunctionTransformer(getattr(importlib.import_module(module), name))
    data = skops.io.dumps(make_pipeline(step))
    answer = _register(sec.client(DS), f"exploit-{name}", {"model.skops": data})
    assert answer.status_code == 422, answer.text
    refused = answer.json()["detail"]["untrusted_types"]
    assert any(r.endswith(f".{name}") for r in refused), refused


def _edited_schema(data: bytes, edit: Any) -> bytes:
    """The skops archive `data` with its schema.json rewritten by `edit` (an attacker
    editing the file by hand, e.g. to disguise a function node)."""
    source = zipfile.ZipFile(io.BytesIO(data))
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as target:
        for item in source.namelist():
            content = source.read(item)
            if item == "schema.json":
                content = json.dumps(edit(json.loads(content))).encode()
            target.writestr(item, content)
    return out.getvalue()


def _relabel(node: Any, old: str, new: str) -> Any:
    if isinstance(node, dict):
        if node.get("__loader__") == old:
            node = {**node, "__loader__": new}
        return {k: _relabel(v, old, new) for k, v in node.items()}
    if isinstance(node, list):
        return [_relabel(v, old, new) for v in node]
    return node


@pytest.mark.parametrize("disguise", ["TypeNode", "ObjectNode", "JsonNode", "NoSuchNode"])
def test_a_function_disguised_as_another_node_kind_is_still_refused(
    sec: SecurityHome, tmp_path: Path, disguise: str
) -> None:
    data = _edited_schema(
        _runstring_exploit(tmp_path / "pwned"), lambda s: _relabel(s, "FunctionNode", disguise)
    )
    answer = _register(sec.client(DS), f"exploit-{disguise.lower()}", {"model.skops": data})
    assert answer.status_code == 422, answer.text
    assert "numpy.testing._private.utils.runstring" in answer.json()["message"]


def _features() -> tuple[pd.DataFrame, np.ndarray]:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(60, 3)), columns=["a", "b", "c"])
    return frame, (frame["a"] + frame["b"] > 0).astype(int).to_numpy()


def test_a_valid_sklearn_pipeline_still_registers_and_serves(sec: SecurityHome) -> None:
    frame, target = _features()
    model = make_pipeline(FunctionTransformer(np.log1p), StandardScaler(), LogisticRegression())
    model.fit(frame.abs(), target)
    platform = sec.remote(MLE)
    try:
        platform.registry.create_model("valid-pipeline", domain="sales")
        version = platform.registry.log_model("valid-pipeline", model, input_example=frame.head(3))
        assert version.flavor == "sklearn"
        platform.serving.create_endpoint("valid-pipeline-api", "valid-pipeline/1")
        records = frame.abs().head(4).to_dict("records")
        answer = platform.serving.predict("valid-pipeline-api", records)
        assert answer.predictions == [int(v) for v in model.predict(frame.abs().head(4))]
    finally:
        platform.close()


@pytest.mark.parametrize("kind", ["forest", "hist"])
def test_fitted_forests_register(sec: SecurityHome, kind: str) -> None:
    frame, target = _features()
    model: Any = (
        RandomForestClassifier(n_estimators=3, random_state=0)
        if kind == "forest"
        else HistGradientBoostingClassifier(max_iter=3)
    )
    model.fit(frame, target)
    answer = _register(sec.client(DS), f"trees-{kind}", {"model.skops": skops.io.dumps(model)})
    assert answer.status_code == 201, answer.text


def test_a_tree_whose_nodes_point_outside_it_is_refused(sec: SecurityHome) -> None:
    """scikit-learn indexes node arrays without bounds checks: a crafted child index would
    read outside the array (or loop) at predict time."""
    frame, target = _features()
    model = RandomForestClassifier(n_estimators=1, random_state=0).fit(frame, target)
    tree = model.estimators_[0].tree_
    state = tree.__getstate__()
    nodes = state["nodes"].copy()
    nodes["left_child"][0] = 10_000
    tree.__setstate__({**state, "nodes": nodes})
    answer = _register(sec.client(DS), "trees-crafted", {"model.skops": skops.io.dumps(model)})
    assert answer.status_code == 422, answer.text
    assert "malformed" in answer.json()["message"]


@pytest.mark.parametrize(
    ("flavor", "files"),
    [
        ("sklearn", {"model.skops": b"this is not a zip archive"}),
        ("sklearn", {"model.skops": b"PK\x03\x04 truncated"}),
        ("sklearn", {"weights.bin": b"no skops file at all"}),
        ("onnx", {"model.onnx": b"\x08\x07garbage protobuf"}),
        ("python", {"model.cloudpickle": b"not a pickle"}),
        ("torch", {"state_dict.pt": b"junk", "torch_module.json": b'{"class": "x:Y"}'}),
        ("torch", {"state_dict.pt": b"junk", "torch_module.json": b"[]"}),
    ],
)
def test_a_malformed_model_file_is_a_422_at_registration(
    sec: SecurityHome, flavor: str, files: dict[str, bytes]
) -> None:
    name = f"malformed-{flavor}-{hashlib.sha256(repr(files).encode()).hexdigest()[:8]}"
    client = sec.client(DS)
    answer = _register(client, name, files, flavor)
    assert answer.status_code == 422, answer.text
    assert answer.json()["error"] == "invalid_input"
    assert answer.json()["detail"].get("fix")
    _no_versions(client, name)


def test_a_half_truncated_skops_file_is_a_422(sec: SecurityHome) -> None:
    frame, target = _features()
    data = skops.io.dumps(LogisticRegression().fit(frame, target))
    answer = _register(sec.client(DS), "malformed-half", {"model.skops": data[: len(data) // 2]})
    assert answer.status_code == 422, answer.text


def test_a_torch_pickle_that_is_not_plain_weights_is_refused(sec: SecurityHome) -> None:
    torch = pytest.importorskip("torch")

    class Payload:
        def __reduce__(self) -> tuple[Any, ...]:
            return (print, ("pickle code ran",))

    buffer = io.BytesIO()
    torch.save({"w": torch.zeros(2), "evil": Payload()}, buffer)
    recipe = json.dumps({"class": "torch.nn:Linear", "init_kwargs": {}}).encode()
    files = {"state_dict.pt": buffer.getvalue(), "torch_module.json": recipe}
    answer = _register(sec.client(DS), "malformed-torch-pickle", files, "torch")
    assert answer.status_code == 422, answer.text
    assert "weights" in answer.json()["message"]


def test_a_model_file_over_the_configured_limit_is_a_413(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    settings = replace(settings, extra={"registry": {"max_file_mb": 1}})
    home = Home(settings)
    try:
        with (
            LiveServer(home) as server,
            httpx.Client(base_url=server.url, headers=server.headers, timeout=60) as client,
        ):
            big = client.post("/v1/models/-/files", content=b"\0" * (2 * 1024 * 1024 + 1))
            assert big.status_code == 413, big.text
            assert big.json()["error"] == "payload_too_large"
            assert "max_file_mb" in big.json()["detail"]["fix"]
            small = client.post("/v1/models/-/files", content=b"\1" * (512 * 1024))
            assert small.status_code == 201, small.text
    finally:
        home.close()


def test_a_model_cannot_be_moved_into_a_domain_its_editor_cannot_write(
    sec: SecurityHome,
) -> None:
    name = "sales-mover"
    sec.new_user(name, "ml_engineer", "sales")
    client = sec.client(name)
    assert client.post("/v1/models", json={"name": name, "domain": "sales"}).status_code == 201
    moved = client.patch(f"/v1/models/{name}", json={"domain": "crm"})
    assert moved.status_code == 403, moved.text
    assert sec.client("alice").get(f"/v1/models/{name}").json()["domain"] == "sales"
    assert client.patch(f"/v1/models/{name}", json={"description": "ok"}).status_code == 200
