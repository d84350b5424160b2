"""`meshops server` logs like a server: a start line with its URL, home, database kind and
workers; one access line per request (method, path, status, duration, principal) that never
carries a token or a query string; JSON lines on request (`MESHOPS_LOG_FORMAT=json`)."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from meshops.api import server as api_server
from meshops.governance.service import GovernanceService
from meshops.kernel.config import load_settings
from meshops.kernel.errors import InvalidInput
from meshops.kernel.home import Home
from tests.conftest import free_port, make_settings

START_SECONDS = 60
SECRET_QUERY = "api_key=do-not-log-me"


def _home_with_token(home_dir: Path) -> str:
    home = Home(make_settings(home_dir))  # the local user is alice
    try:
        return GovernanceService(home.context()).create_token("logs").token
    finally:
        home.close()


@contextmanager
def _server(home_dir: Path, **env: str) -> Iterator[tuple[str, Path]]:
    """A `meshops server` process on a free loopback port: (its URL, its log file)."""
    port = free_port()
    log_path = home_dir.parent / f"server-{port}.log"
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("MESHOPS_")}
    full_env.update({"MESHOPS_HOME": str(home_dir), "MESHOPS_USER": "alice", **env})
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [sys.executable, "-m", "meshops.cli.main", "server", "--port", str(port)],
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_ready(url, process, log_path)
        yield url, log_path
    finally:
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=30)


def _wait_ready(url: str, process: subprocess.Popen[bytes], log_path: Path) -> None:
    deadline = time.monotonic() + START_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"meshops server exited: {log_path.read_text()}")
        try:
            if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            time.sleep(0.1)
    raise AssertionError(f"meshops server did not answer: {log_path.read_text()}")


def _requests(url: str, token: str) -> None:
    """Anonymous, with the token (and a secret-looking query string), with a wrong token."""
    assert httpx.get(f"{url}/readyz").status_code == 200
    auth = {"authorization": f"Bearer {token}"}
    assert httpx.get(f"{url}/v1/models?{SECRET_QUERY}", headers=auth).status_code == 200
    assert httpx.get(f"{url}/metrics", headers=auth).status_code == 200
    wrong = {"authorization": "Bearer msh_not-a-token"}
    assert httpx.get(f"{url}/v1/models", headers=wrong).status_code == 401


def _log_once(log_path: Path, last: re.Pattern[str]) -> str:
    """The log once it holds the access line of the last request (`last`). Each line is
    written after its response is sent, and the readiness polls wrote some too, so
    counting access lines could return before the last request's line is there."""
    deadline = time.monotonic() + 10
    while True:
        text = log_path.read_text()
        if last.search(text) or time.monotonic() > deadline:
            return text
        time.sleep(0.05)


def test_start_line_and_one_access_line_per_request_without_secrets(tmp_path: Path) -> None:
    home_dir = tmp_path / "home"
    token = _home_with_token(home_dir)
    with _server(home_dir) as (url, log_path):
        _requests(url, token)
        text = _log_once(log_path, re.compile(r"meshops\.access.* GET /v1/models 401 "))
    start = next(line for line in text.splitlines() if "meshops.server" in line)
    assert f"starting on {url} (UI {url}/ui, API docs {url}/docs)" in start, start
    assert f"home {home_dir.resolve()}, database sqlite, 1 worker" in start, start
    assert f"Uvicorn running on {url}" in text  # uvicorn's own line once it listens
    access = [line for line in text.splitlines() if "meshops.access" in line]
    assert re.search(r" 127\.0\.0\.1 GET /readyz 200 \d+\.\dms -$", access[-4]), access
    assert re.search(r" GET /v1/models 200 \d+\.\dms alice$", access[-3]), access
    assert re.search(r" GET /metrics 200 \d+\.\dms alice$", access[-2]), access
    assert re.search(r" GET /v1/models 401 \d+\.\dms -$", access[-1]), access
    assert token not in text and token[:12] not in text
    assert "not-a-token" not in text and SECRET_QUERY not in text and "?" not in "".join(access)


def test_json_lines_on_request(tmp_path: Path) -> None:
    home_dir = tmp_path / "home"
    token = _home_with_token(home_dir)
    with _server(home_dir, MESHOPS_LOG_FORMAT="json") as (url, log_path):
        _requests(url, token)
        text = _log_once(log_path, re.compile(r'"status": 401'))
    records = [json.loads(line) for line in text.splitlines()]  # every line is one object
    start = next(r for r in records if r["logger"] == "meshops.server")
    assert start["url"] == url and start["database"] == "sqlite" and start["workers"] == 1
    assert start["home"] == str(home_dir.resolve()) and start["level"] == "info"
    access = [r for r in records if r["logger"] == "meshops.access"]
    models = next(r for r in access if r["path"] == "/v1/models" and r["status"] == 200)
    assert models["method"] == "GET" and models["principal"] == "alice"
    assert models["client"] == "127.0.0.1" and models["duration_ms"] >= 0
    refused = next(r for r in access if r["status"] == 401)
    assert refused["principal"] == "-"
    assert token not in text and SECRET_QUERY not in text


def test_log_format_is_checked(tmp_path: Path) -> None:
    home_dir = tmp_path / "home"
    home_dir.mkdir()
    with pytest.raises(InvalidInput) as err:
        load_settings(home=home_dir, env={"MESHOPS_LOG_FORMAT": "xml"})
    assert err.value.detail["field"] == "server.log_format"
    assert "text, json" in err.value.message
    (home_dir / "meshops.toml").write_text('[server]\nlog_format = "json"\n')
    assert load_settings(home=home_dir, env={}).log_format == "json"
    with pytest.raises(InvalidInput) as err:
        api_server.serve(port=free_port(), log_format="yaml")  # refused before anything runs
    assert err.value.detail["field"] == "server.log_format"


def test_the_url_of_an_any_interface_bind_is_the_loopback_one() -> None:
    assert api_server.base_url("0.0.0.0", 8080) == "http://127.0.0.1:8080"
    assert api_server.base_url("::", 8080) == "http://[::1]:8080"
    assert api_server.base_url("10.0.0.5", 9000) == "http://10.0.0.5:9000"
    assert api_server.base_url("fe80::1", 9000) == "http://[fe80::1]:9000"
