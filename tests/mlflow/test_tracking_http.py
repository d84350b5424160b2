"""The MLflow tracking routes over raw HTTP (no MLflow client needed): MLflow's error shape
and status codes, both path prefixes, bounds, and the artifact proxy's path rules."""

from __future__ import annotations

import json
from collections.abc import Iterator

import httpx
import pytest

from meshops.kernel.home import Home
from tests.conftest import LiveServer

API = "/api/2.0/mlflow"


@pytest.fixture
def http(sqlite_home: Home) -> Iterator[httpx.Client]:
    with (
        LiveServer(sqlite_home) as server,
        httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as client,
    ):
        yield client


def _error(response: httpx.Response) -> tuple[int, str, str]:
    body = response.json()
    assert set(body) == {"error_code", "message"}, body
    return response.status_code, body["error_code"], body["message"]


def test_error_shapes_and_codes(http: httpx.Client) -> None:
    anonymous = httpx.post(f"{http.base_url}{API}/experiments/create", json={"name": "x"})
    assert _error(anonymous)[:2] == (401, "UNAUTHENTICATED")
    missing = http.get(f"{API}/runs/get", params={"run_id": "f" * 32})
    status, code, message = _error(missing)
    assert (status, code) == (404, "RESOURCE_DOES_NOT_EXIST") and "f" * 32 in message
    malformed = http.post(
        f"{API}/runs/create", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert _error(malformed)[:2] == (400, "MALFORMED_REQUEST")
    no_name = http.post(f"{API}/experiments/create", json={})
    assert _error(no_name) == (
        400,
        "INVALID_PARAMETER_VALUE",
        "Missing value for required parameter 'name'.",
    )
    too_many = http.post(f"{API}/runs/search", json={"max_results": 10**9})
    assert _error(too_many)[:2] == (400, "INVALID_PARAMETER_VALUE")
    bad_token = http.post(f"{API}/experiments/search", json={"page_token": "!!"})
    assert "page token" in _error(bad_token)[2]
    bad_filter = http.post(f"{API}/runs/search", json={"filter": "metrics.x = 'a'"})
    assert "metric values are numbers" in _error(bad_filter)[2]


def test_both_prefixes_and_the_default_experiment(http: httpx.Client) -> None:
    created = http.post(f"{API}/runs/create", json={"experiment_id": "0", "run_name": "r"})
    run = created.json()["run"]
    assert run["info"]["experiment_id"] == "0"
    assert run["info"]["artifact_uri"] == f"mlflow-artifacts:/0/{run['info']['run_id']}/artifacts"
    logged = {"run_id": run["info"]["run_id"], "key": "m", "value": 0.5, "step": 7}
    http.post(f"{API}/runs/log-metric", json={**logged, "timestamp": 1_700_000_000_123})
    http.post(f"{API}/runs/log-metric", json={**logged, "value": "NaN", "step": 3})
    got = http.get(f"{API}/runs/get", params={"run_id": run["info"]["run_id"]}).json()
    assert got["run"]["data"]["metrics"] == [
        {"key": "m", "value": 0.5, "timestamp": 1_700_000_000_123, "step": 7}
    ]
    via_ajax = http.get("/ajax-api/2.0/mlflow/runs/get", params={"run_id": run["info"]["run_id"]})
    assert via_ajax.json()["run"]["info"]["run_name"] == "r"
    experiment = http.get(f"{API}/experiments/get", params={"experiment_id": "0"}).json()
    assert experiment["experiment"]["name"] == "default"


def test_artifact_proxy_paths(http: httpx.Client) -> None:
    run = http.post(f"{API}/runs/create", json={"experiment_id": "0"}).json()["run"]["info"]
    root = f"/api/2.0/mlflow-artifacts/artifacts/0/{run['run_id']}/artifacts"
    assert http.put(f"{root}/dir/a.bin", content=b"\x00\x01\x02").status_code == 200
    assert http.get(f"{root}/dir/a.bin").content == b"\x00\x01\x02"
    listed = http.get(
        "/api/2.0/mlflow-artifacts/artifacts", params={"path": f"0/{run['run_id']}/artifacts"}
    ).json()
    assert listed == {"files": [{"path": "dir", "is_dir": True}]}
    escape = http.put(f"{root}/dir/%2E%2E/%2E%2E/x", content=b"x")
    assert escape.status_code == 400
    assert _error(http.get("/api/2.0/mlflow-artifacts/artifacts/elsewhere/x"))[:2] == (
        404,
        "RESOURCE_DOES_NOT_EXIST",
    )
    missing = http.get(f"{root}/dir/none.bin")
    assert _error(missing)[:2] == (404, "RESOURCE_DOES_NOT_EXIST")


def test_log_model_metadata_of_older_clients(http: httpx.Client) -> None:
    """`runs/log-model` (MLflow 2 clients send each model's metadata): the run's
    `mlflow.log-model.history` tag, a JSON list, as an MLflow server keeps it."""
    run_id = http.post(f"{API}/runs/create", json={}).json()["run"]["info"]["run_id"]
    for path in ("model", "model-2"):
        entry = {"artifact_path": path, "flavors": {"sklearn": {}}, "run_id": run_id}
        sent = http.post(
            f"{API}/runs/log-model", json={"run_id": run_id, "model_json": json.dumps(entry)}
        )
        assert sent.status_code == 200 and sent.json() == {}
    tags = http.get(f"{API}/runs/get", params={"run_id": run_id}).json()["run"]["data"]["tags"]
    history = json.loads(next(t["value"] for t in tags if t["key"] == "mlflow.log-model.history"))
    assert [h["artifact_path"] for h in history] == ["model", "model-2"]
    bad = http.post(f"{API}/runs/log-model", json={"run_id": run_id, "model_json": "[1"})
    assert _error(bad)[:2] == (400, "INVALID_PARAMETER_VALUE")


def test_directly_dispatched_routes_keep_the_apps_rules(
    http: httpx.Client, sqlite_home: Home
) -> None:
    """The MLflow routes answered ahead of the router (`MlflowDispatch`) keep what the
    router gave them: the app's handler for an error the endpoint does not answer itself,
    the body limit of the edge, and the router's 404 for an MLflow path that is not one."""
    nested = b"[" * 100_000 + b"]" * 100_000  # JSON too deep to parse: RecursionError
    deep = http.post(
        f"{API}/runs/create", content=nested, headers={"content-type": "application/json"}
    )
    assert deep.status_code == 422 and deep.json()["error"] == "invalid_input"
    assert "nests too deeply" in deep.json()["message"]
    huge = http.post(
        f"{API}/runs/log-batch",
        content=b" " * (int(sqlite_home.settings.max_request_mb * 1024 * 1024) + 1),
        headers={"content-type": "application/json"},
    )
    assert huge.status_code == 413
    assert http.post(f"{API}/runs/no-such-call", json={}).status_code == 404
    # A route with a path parameter still goes through the router.
    missing = http.get(f"{API}/logged-models/m-{'0' * 32}")
    assert _error(missing)[:2] == (404, "RESOURCE_DOES_NOT_EXIST")
