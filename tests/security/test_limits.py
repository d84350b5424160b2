"""Finding 14 (parts): request and upload size limits (413), `/metrics` behind a token, the
API docs offline, and stale `blobs/tmp` files removed at start, against a real server."""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from meshops.governance.authn import authenticate_token
from meshops.governance.service import GovernanceService
from meshops.kernel.blobs import STALE_TMP_SECONDS, BlobStore
from meshops.kernel.config import load_settings
from meshops.kernel.errors import InvalidInput
from meshops.kernel.home import Home
from meshops.serving.endpoint_app import DataPlane
from tests.conftest import LiveServer, make_settings

KIB = 1024
# Small limits so that the tests send kilobytes, not megabytes.
MAX_REQUEST_MB = 16 / 1024  # 16 KiB
MAX_UPLOAD_MB = 64 / 1024  # 64 KiB


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    settings = make_settings(tmp_path_factory.mktemp("limits") / "home")
    settings = replace(settings, max_request_mb=MAX_REQUEST_MB, max_upload_mb=MAX_UPLOAD_MB)
    made = Home(settings)
    yield made
    made.close()


@pytest.fixture(scope="module")
def server(home: Home) -> Iterator[LiveServer]:
    with LiveServer(home) as live:
        yield live


@pytest.fixture(scope="module")
def api(server: LiveServer) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, headers=server.headers, timeout=30) as client:
        yield client


def assert_413(r: httpx.Response, setting: str) -> None:
    assert r.status_code == 413, (r.status_code, r.text[:300])
    body = r.json()
    assert body["error"] == "payload_too_large"
    assert body["detail"]["field"] == "body" and body["detail"]["setting"] == f"server.{setting}"
    assert setting in body["detail"]["fix"]


def raw_request(api: httpx.Client, method: str, path: str, headers: dict[str, str]) -> bytes:
    """Send only a request head (no body) and return what the server answers."""
    host, port = api.base_url.host, api.base_url.port or 80
    lines = [f"{method} {path} HTTP/1.1", f"host: {host}:{port}"]
    lines += [f"{k}: {v}" for k, v in {**dict(api.headers), **headers}.items()]
    with socket.create_connection((host, port), timeout=10) as conn:
        conn.sendall(("\r\n".join(lines) + "\r\n\r\n").encode())
        return conn.recv(65536)


def chunked(total: int, piece: int = 4 * KIB) -> Iterator[bytes]:
    """A body without Content-Length (httpx sends it chunked)."""
    sent = 0
    yield b'{"records": ["'
    while sent < total:
        yield b"x" * piece
        sent += piece
    yield b'"]}'


def test_json_body_over_the_limit_is_413(api: httpx.Client) -> None:
    big = {"sql": "SELECT 1 -- " + "x" * (20 * KIB)}
    assert_413(api.post("/v1/mesh/sql", json=big), "max_request_mb")
    # Under the limit the route answers as usual (whatever it says, it is not 413).
    assert api.post("/v1/mesh/sql", json={"sql": "SELECT 1"}).status_code != 413


def test_a_lying_or_missing_content_length_does_not_get_past(api: httpx.Client) -> None:
    # A declared length of 100 GB is refused before a byte of the body is read.
    head = raw_request(api, "POST", "/v1/mesh/sql", {"content-length": str(10**11)})
    assert head.startswith(b"HTTP/1.1 413") and b"payload_too_large" in head
    for path in ("/v1/mesh/sql", "/v1/features/online", "/v1/endpoints/any/predict"):
        r = api.post(path, content=chunked(40 * KIB), headers={"content-type": "application/json"})
        assert_413(r, "max_request_mb")
    # A small chunked body still reaches the route.
    small = api.post(
        "/v1/features/online",
        content=iter([b'{"entity_rows": [], ', b'"features": []}']),
        headers={"content-type": "application/json"},
    )
    assert small.status_code != 413


def test_the_standalone_data_plane_has_the_same_edge(home: Home) -> None:
    """`meshops serve` answers predict requests straight from ASGI: limited all the same."""
    from fastapi import FastAPI

    inner = FastAPI()
    inner.state.home, inner.state.authenticate = home, authenticate_token
    plane = DataPlane(inner, home, ["churn-api"], authenticate_token)
    token = GovernanceService(home.context()).create_token("plane").token
    with TestClient(plane) as client:
        auth = {"authorization": f"Bearer {token}", "content-type": "application/json"}
        for path in ("/v1/endpoints/churn-api/predict", "/invocations"):
            assert_413(client.post(path, content=chunked(40 * KIB), headers=auth), "max_request_mb")
            r = client.post(path, content=b"x" * (20 * KIB), headers=auth)
            assert_413(r, "max_request_mb")
            assert r.headers["x-frame-options"] == "DENY"
        assert client.get("/metrics").status_code == 401


def test_multipart_upload_over_the_limit_is_413(api: httpx.Client, server: LiveServer) -> None:
    under = {"reference": ("ref.csv", b"a\n" + b"1\n" * (16 * KIB), "text/csv")}  # ~32 KiB
    r = api.post("/v1/monitors/none/runs", files=under)
    assert r.status_code != 413, r.text[:300]  # over the JSON limit, under the upload one
    over = {"reference": ("ref.csv", b"a\n" + b"1\n" * (40 * KIB), "text/csv")}  # ~80 KiB
    assert_413(api.post("/v1/monitors/none/runs", files=over), "max_upload_mb")
    # Past a request's limit, only a caller with a token may upload (before any spooling);
    # calling it multipart does not buy an anonymous caller the larger limit.
    anonymous = httpx.post(f"{server.url}/v1/monitors/none/runs", files=under)
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthenticated"
    # Model files and artifacts travel as octet streams: uploads too.
    blob = b"\0" * (32 * KIB)
    octet = {"content-type": "application/octet-stream"}
    r = api.post("/v1/models/-/files", content=blob, headers=octet)
    assert r.status_code != 413, r.text[:300]
    assert_413(api.post("/v1/models/-/files", content=blob * 3, headers=octet), "max_upload_mb")
    assert_413(
        api.put("/v1/runs/nope/artifacts", params={"path": "a"}, content=blob * 3, headers=octet),
        "max_upload_mb",
    )
    # A JSON body does not get the upload limit, whatever its size.
    as_json = {"content-type": "application/json; charset=utf-8"}
    assert_413(api.post("/v1/models/-/files", content=blob, headers=as_json), "max_request_mb")
    tiny = {"reference": ("ref.csv", b"a\n1\n", "text/csv")}
    assert httpx.post(f"{server.url}/v1/monitors/none/runs", files=tiny).status_code == 401


def test_metrics_need_a_token(server: LiveServer) -> None:
    anonymous = httpx.get(f"{server.url}/metrics")
    assert anonymous.status_code == 401 and anonymous.json()["error"] == "unauthenticated"
    wrong = httpx.get(f"{server.url}/metrics", headers={"authorization": "Bearer msh_nope"})
    assert wrong.status_code == 401
    ok = httpx.get(f"{server.url}/metrics", headers=server.headers)
    assert ok.status_code == 200 and "# HELP" in ok.text


def test_health_openapi_and_docs_stay_open_and_docs_work_offline(server: LiveServer) -> None:
    for path in ("/healthz", "/openapi.json", "/docs"):
        assert httpx.get(f"{server.url}{path}").status_code == 200, path
    page = httpx.get(f"{server.url}/docs").text
    assert "cdn" not in page.lower() and "http" not in page.replace("/openapi.json", "")
    for asset in ("/docs/assets/swagger-ui-bundle.js", "/docs/assets/swagger-ui.css"):
        assert asset in page
        assert httpx.get(f"{server.url}{asset}").status_code == 200
    assert httpx.get(f"{server.url}/ui/static/docs.js").status_code == 200


def test_stale_tmp_files_are_removed_when_the_store_opens(tmp_path: Path) -> None:
    root = tmp_path / "blobs"
    store = BlobStore(str(root))
    tmp = root / "tmp"
    stale, fresh = tmp / "killed-publish.part", tmp / "blob-in-progress"
    for path in (stale, fresh):
        path.write_bytes(b"half a snapshot")
    old = time.time() - STALE_TMP_SECONDS - 60
    os.utime(stale, (old, old))
    digest = store.put_bytes(b"kept")
    BlobStore(str(root))  # a new process (server, worker, CLI) opens the store
    assert not stale.exists() and fresh.exists()
    assert BlobStore(str(root)).get_bytes(digest) == b"kept"


def test_size_settings_come_from_meshops_toml(tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "meshops.toml").write_text("[server]\nmax_request_mb = 2\nmax_upload_mb = 1024\n")
    settings = load_settings(home=home, env={})
    assert (settings.max_request_mb, settings.max_upload_mb) == (2.0, 1024.0)
    (home / "meshops.toml").write_text('[server]\nmax_upload_mb = "lots"\n')
    with pytest.raises(InvalidInput) as err:
        load_settings(home=home, env={})
    assert err.value.detail["field"] == "server.max_upload_mb"


def test_the_server_removes_stale_tmp_files_when_it_starts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from meshops.api import server as api_server

    home_dir = tmp_path / "home"
    stale = home_dir / "blobs" / "tmp" / "killed.part"
    stale.parent.mkdir(parents=True)
    stale.write_bytes(b"x")
    old = time.time() - 2 * STALE_TMP_SECONDS
    os.utime(stale, (old, old))
    started: list[str] = []
    monkeypatch.setenv("MESHOPS_HOME", str(home_dir))
    monkeypatch.delenv("MESHOPS_BLOB_URL", raising=False)
    monkeypatch.setattr(api_server.uvicorn, "run", lambda app, **kw: started.append(app))
    api_server.serve(port=1)
    assert started == ["meshops.api.server:app_factory"] and not stale.exists()


def test_metrics_on_a_separate_internal_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`[server] metrics_address`: a listener of its own answers /metrics without a token
    (for Prometheus on an internal interface); the API port still asks for one."""
    from meshops.api import server as api_server
    from tests.conftest import free_port

    port = free_port()
    listener = api_server.serve_metrics_apart(f"127.0.0.1:{port}", workers=1)
    try:
        r = httpx.get(f"http://127.0.0.1:{port}/metrics")
        assert r.status_code == 200 and "meshops_serving_requests" in r.text
    finally:
        listener.shutdown()
        listener.server_close()
    home_dir = tmp_path / "home"
    home_dir.mkdir()
    (home_dir / "meshops.toml").write_text('[server]\nmetrics_address = "127.0.0.1:9"\n')
    apart: list[str] = []
    monkeypatch.setenv("MESHOPS_HOME", str(home_dir))
    monkeypatch.setattr(api_server, "serve_metrics_apart", lambda a, w: apart.append(a))
    monkeypatch.setattr(api_server.uvicorn, "run", lambda app, **kw: None)
    api_server.serve(port=1)
    assert apart == ["127.0.0.1:9"]
    (home_dir / "meshops.toml").write_text('[server]\nmetrics_address = "9100"\n')
    with pytest.raises(InvalidInput) as err:
        load_settings(home=home_dir, env={})
    assert err.value.detail["field"] == "server.metrics_address"
