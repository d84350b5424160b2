"""User Python never runs in the API server process (issue #14, design "No side door").

A pickled (python-flavor) model runs code when it is unpickled. The payload here writes a
marker file the moment it is loaded, so "did the server run it?" is a file check. The
server is the shared governed one (`sec`), a `create_app` home like `meshops server`.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pytest

from meshops.client import Platform
from meshops.kernel.errors import Forbidden
from meshops.kernel.home import Home
from tests.conftest import LiveServer, make_settings
from tests.security.conftest import SecurityHome

MLE = "mle-none"  # an ML engineer: registers models, creates endpoints, scores batches


class Touching:
    """Unpickled, it creates `marker` (then predicts 1 for every row, once loaded)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def predict(self, frame: pd.DataFrame) -> list[int]:
        return [1] * len(frame)

    def __reduce__(self) -> tuple[Any, ...]:
        return (_touch_and_build, (str(self.marker),))


def _touch_and_build(marker: str) -> Touching:
    Path(marker).touch()
    return Touching(Path(marker))


def _register_payload(platform: Platform, name: str, marker: Path) -> None:
    import sys

    import cloudpickle

    platform.registry.create_model(name, domain="sales")
    # By value: the server must not need this test module to unpickle it (it never should).
    cloudpickle.register_pickle_by_value(sys.modules[__name__])
    try:
        platform.registry.log_model(name, Touching(marker), flavor="python")
    finally:
        cloudpickle.unregister_pickle_by_value(sys.modules[__name__])


def test_a_pickled_model_never_loads_in_the_api_server(sec: SecurityHome, tmp_path: Path) -> None:
    marker = tmp_path / "unpickled-in-server"
    name = f"pickled-{uuid.uuid4().hex[:6]}"
    platform = sec.remote(MLE)
    try:
        _register_payload(platform, name, marker)
        assert not marker.exists()  # registration checks the file, never unpickles it
        # The endpoint may say it trusts the code (for `meshops serve --trust-model-code`).
        platform.serving.create_endpoint(f"{name}-api", f"{name}/1", trust_model_code=True)
        for _ in range(2):  # refused every time, not only on the first load
            with pytest.raises(Forbidden, match="does not run in the API server") as refused:
                platform.serving.predict(f"{name}-api", [{"x": 1.0}])
            fix = refused.value.detail["fix"]
            assert "meshops serve" in fix and "--trust-model-code" in fix
            assert "trusted_code_models" in fix
        with pytest.raises(Forbidden, match="does not run in the API server"):
            platform.serving.batch_score(
                f"{name}/1", "crm.customers", output="sales.pickled_scores", trust_model_code=True
            )
    finally:
        platform.close()
    assert not marker.exists()


def test_the_endpoint_alone_cannot_trust_code_and_raw_http_gets_403(
    sec: SecurityHome, tmp_path: Path
) -> None:
    marker = tmp_path / "unpickled-raw"
    name = f"pickled-{uuid.uuid4().hex[:6]}"
    platform = sec.remote(MLE)
    try:
        _register_payload(platform, name, marker)
    finally:
        platform.close()
    client = sec.client(MLE)
    untrusted = client.post("/v1/endpoints", json={"name": f"{name}-u", "model": f"{name}/1"})
    assert untrusted.status_code == 422 and untrusted.json()["detail"]["field"] == (
        "trust_model_code"
    )
    body = {"name": f"{name}-t", "model": f"{name}/1", "trust_model_code": True}
    assert client.post("/v1/endpoints", json=body).status_code == 201
    answer = client.post(f"/v1/endpoints/{name}-t/predict", json={"records": [{"x": 1}]})
    assert answer.status_code == 403, answer.text
    assert answer.json()["detail"]["where"] == "api server"
    assert not marker.exists()


def test_an_admin_setting_names_the_models_the_api_server_may_load(tmp_path: Path) -> None:
    trusted, other = "pickled_trusted", "pickled_other"
    markers = {name: tmp_path / name for name in (trusted, other)}
    settings = make_settings(tmp_path / "home")
    settings = replace(settings, extra={"serving": {"trusted_code_models": [trusted]}})
    home = Home(settings)
    try:
        with LiveServer(home) as server:
            platform = Platform(
                replace(settings, uri=server.url, token=server.token),
                http=_transport(server),
            )
            try:
                for name, marker in markers.items():
                    _register_payload(platform, name, marker)
                    platform.serving.create_endpoint(
                        f"{name}-api", f"{name}/1", trust_model_code=True
                    )
                answer = platform.serving.predict(f"{trusted}-api", [{"x": 1.0}, {"x": 2.0}])
                assert answer.predictions == [1, 1]
                assert markers[trusted].exists()  # the admin said so: it ran here
                with pytest.raises(Forbidden):
                    platform.serving.predict(f"{other}-api", [{"x": 1.0}])
                assert not markers[other].exists()
            finally:
                platform.close()
    finally:
        home.close()


def _transport(server: LiveServer) -> Any:
    from meshops.kernel.http import HttpTransport

    return HttpTransport(server.url, server.token)


def test_meshops_serve_needs_the_admins_flag(tmp_path: Path) -> None:
    """The standalone data plane (`meshops serve`) loads a pickled model only when started
    with --trust-model-code; an embedded SDK (the user's own process) needs only the
    endpoint's setting."""
    from meshops.serving.endpoint_app import create_endpoint_app
    from meshops.serving.runtime import close_runtime, runtime_for

    marker = tmp_path / "unpickled-standalone"
    settings = make_settings(tmp_path / "home")
    home = Home(settings)
    try:
        with Platform(settings, home=home) as platform:
            _register_payload(platform, "pickled", marker)
            platform.serving.create_endpoint("pickled-api", "pickled/1", trust_model_code=True)
        create_endpoint_app(home, ["pickled-api"], trust_model_code=False)
        with pytest.raises(Forbidden, match="--trust-model-code") as refused:
            runtime_for(home).deployment("pickled-api")
        assert refused.value.detail["where"] == "meshops serve"
        assert not marker.exists()
        create_endpoint_app(home, ["pickled-api"], trust_model_code=True)
        runtime_for(home).deployment("pickled-api")
        assert marker.exists()
        close_runtime(home)
    finally:
        home.close()
    embedded_marker = tmp_path / "unpickled-embedded"
    other = Home(make_settings(tmp_path / "home2"))
    try:
        with Platform(other.settings, home=other) as platform:
            _register_payload(platform, "pickled", embedded_marker)
            platform.serving.create_endpoint("pickled-api", "pickled/1", trust_model_code=True)
            assert platform.serving.predict("pickled-api", [{"x": 1.0}]).predictions == [1]
        assert embedded_marker.exists()
        close_runtime(other)
    finally:
        other.close()


def test_pipelines_submitted_over_http_never_run_in_the_server(
    sec: SecurityHome, tmp_path: Path
) -> None:
    """Submitting (any executor, "inline" too), resuming or starting a run over HTTP only
    records it: the steps run in `meshops worker` (or the caller's process). A module that
    would write a marker when imported shows the server never loaded it."""
    marker = tmp_path / "pipeline-imported"
    module = tmp_path / "evil_pipeline.py"
    module.write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).touch()\n"
        "from meshops.pipelines.dsl import pipeline\n\n"
        "@pipeline\ndef evil():\n    return None\n"
    )
    client = sec.client(MLE)
    for executor in ("inline", "process"):
        submitted = client.post(
            "/v1/pipelines/runs", json={"ref": f"{module}:evil", "executor": executor}
        )
        assert submitted.status_code == 201, submitted.text
        assert submitted.json()["status"] == "queued"
    started = client.post(
        "/v1/pipelines/engine/start",
        json={"pipeline": "evil", "ref": f"{module}:evil", "params": {}, "executor": "inline"},
    )
    assert started.status_code == 201
    schedule = {
        "name": f"evil-{uuid.uuid4().hex[:6]}",
        "cron": "* * * * *",
        "ref": f"{module}:evil",
    }
    assert client.post("/v1/pipelines/schedules", json=schedule).status_code == 201
    assert client.post("/v1/pipelines/queue/fire-schedules", json={}).status_code == 200
    assert not marker.exists()


def test_no_pipelines_route_runs_a_pipeline(sec: SecurityHome) -> None:
    """The HTTP surface of pipelines has no "run it here": every POST either queues,
    records what a worker or a client did, or manages schedules and triggers."""
    spec = httpx.get(f"{sec.url}/openapi.json", headers=sec.headers("alice")).json()
    posts = sorted(
        path
        for path, methods in spec["paths"].items()
        if path.startswith("/v1/pipelines") and "post" in methods
    )
    assert not [p for p in posts if p.endswith(("/run", "/execute", "/reproduce"))], posts


def test_a_torch_recipe_cannot_make_the_api_server_import_a_module(
    sec: SecurityHome, tmp_path: Path
) -> None:
    """A torch version names its module class by path; importing a module runs its code,
    so the API server imports only modules already loaded or listed by an admin."""
    torch = pytest.importorskip("torch")
    import io
    import json
    import sys

    victim = "this"  # prints the Zen of Python when imported: harmless, and observable
    assert victim not in sys.modules
    weights = io.BytesIO()
    torch.save({"w": torch.zeros(1)}, weights)
    recipe = json.dumps({"class": f"{victim}:Model", "init_kwargs": {}}).encode()
    client = sec.client(MLE)
    listed = []
    for path, data in (("state_dict.pt", weights.getvalue()), ("torch_module.json", recipe)):
        digest = client.post("/v1/models/-/files", content=data).json()["digest"]
        listed.append({"path": path, "digest": digest, "size": len(data)})
    name = f"torch-import-{uuid.uuid4().hex[:6]}"
    assert client.post("/v1/models", json={"name": name, "domain": "sales"}).status_code == 201
    version = client.post(f"/v1/models/{name}/versions", json={"files": listed, "flavor": "torch"})
    assert version.status_code == 201, version.text  # registration never imports it
    assert (
        client.post("/v1/endpoints", json={"name": name, "model": f"{name}/1"}).status_code == 201
    )
    answer = client.post(f"/v1/endpoints/{name}/predict", json={"records": [{"x": 1.0}]})
    assert answer.status_code == 403, answer.text
    assert "torch_modules" in answer.json()["detail"]["fix"]
    assert victim not in sys.modules
