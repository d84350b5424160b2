"""The data plane under load: concurrent HTTP clients, alias moves under traffic, and a
graceful shutdown of `meshops serve` — with every prediction accounted for in the log."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import cloudpickle
import httpx
import pandas as pd
import pytest

from meshops.client import Platform
from meshops.kernel.config import Settings
from meshops.kernel.home import Home
from meshops.serving import runtime as runtime_module
from meshops.serving import store
from tests.conftest import LiveServer, free_port, make_settings
from tests.serving.helpers import justify_move, record, register_churn

# Enough for 16 concurrent clients to overlap with several log chunk writes (one a second
# at least) and an in-flight buffer: what the load test checks is "no errors, nothing lost
# or duplicated", which does not need thousands of requests.
LOAD_REQUESTS = 400
LOAD_CLIENTS = 16
SHUTDOWN_REQUESTS = 120
SERVE_POLL_SECONDS = 0.5


async def _fire(url: str, total: int, clients: int, token: str) -> list[int]:
    body = {"records": [record(0)]}
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(total):
        queue.put_nowait(i)
    statuses: list[int] = []

    async def client(http: httpx.AsyncClient) -> None:
        while not queue.empty():
            i = queue.get_nowait()
            response = await http.post(
                url,
                json=body,
                headers={"x-request-id": f"load-{i}", "authorization": f"Bearer {token}"},
            )
            statuses.append(response.status_code)

    limits = httpx.Limits(max_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=30) as http:
        await asyncio.gather(*(client(http) for _ in range(clients)))
    return statuses


def test_load_no_errors_and_every_prediction_logged(sqlite_home: Home) -> None:
    platform = Platform(sqlite_home.settings, home=sqlite_home)
    register_churn(platform)
    platform.serving.create_endpoint("churn-api", "churn@champion")
    with LiveServer(sqlite_home) as server:
        started = time.perf_counter()
        url = f"{server.url}/v1/endpoints/churn-api/predict"
        statuses = asyncio.run(_fire(url, LOAD_REQUESTS, LOAD_CLIENTS, server.token))
        elapsed = time.perf_counter() - started
    assert statuses == [200] * LOAD_REQUESTS, {s: statuses.count(s) for s in set(statuses)}
    window = platform.serving.prediction_window("churn-api", with_labels=False)
    assert window.num_rows == LOAD_REQUESTS
    assert sorted(window.column("request_id").to_pylist()) == sorted(
        f"load-{i}" for i in range(LOAD_REQUESTS)
    )
    with sqlite_home.db.read() as conn:
        chunks = store.chunks_in_window(conn, "churn-api", None, None)
    assert sum(c.rows for c in chunks) == LOAD_REQUESTS  # no chunk written twice
    print(f"{LOAD_REQUESTS} requests, {LOAD_CLIENTS} clients: {LOAD_REQUESTS / elapsed:.0f} req/s")
    platform.close()


def test_alias_move_in_this_process_is_served_at_once_without_failures(
    sqlite_home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A poll far longer than the test: only the commit hook can explain a quick switch.
    monkeypatch.setenv(runtime_module.POLL_ENV, "60")
    platform = Platform(sqlite_home.settings, home=sqlite_home)
    register_churn(platform, versions=2)
    platform.serving.create_endpoint("churn-api", "churn@champion")
    seen: list[int] = []
    per_thread: dict[int, list[int]] = {}
    failures: list[BaseException] = []
    stop = threading.Event()

    def traffic() -> None:
        mine = per_thread.setdefault(threading.get_ident(), [])
        while not stop.is_set():
            try:
                version = platform.serving.predict("churn-api", [record(1)]).model_version
                mine.append(version)
                seen.append(version)
            except BaseException as exc:
                failures.append(exc)
            # Clients pause between requests: four threads predicting back to back would hold
            # the GIL and starve the thread loading the new version (seconds, not the hook).
            time.sleep(0.002)

    threads = [threading.Thread(target=traffic) for _ in range(4)]
    for thread in threads:
        thread.start()
    time.sleep(0.3)
    justify_move(platform, 2)
    platform.registry.set_alias("churn", "champion", 2)
    moved = time.monotonic()
    deadline = moved + 10
    while time.monotonic() < deadline and (not seen or seen[-1] != 2):
        time.sleep(0.01)
    switched_after = time.monotonic() - moved
    time.sleep(0.2)
    stop.set()
    for thread in threads:
        thread.join()
    print(f"alias move served after {switched_after:.2f} s (poll interval 60 s)")
    assert failures == []
    assert seen[0] == 1 and seen[-1] == 2
    assert switched_after < 5.0  # loading the new version, on a loaded machine
    # Once a client sees the new version, it never sees the old one again.
    for versions in per_thread.values():
        assert versions == sorted(versions)
    assert platform.serving.prediction_window("churn-api").num_rows == len(seen)
    assert any(
        e.upstream == "meshops:model:churn:2"
        for e in platform.lineage.upstream("meshops:endpoint:churn-api", depth=1)
    )
    platform.close()


class Linear:
    """1 when tenure + spend / 2 > 0. Served as a python-flavor model so each worker loads
    it in milliseconds: the sklearn flavor's skops loader imports torch (through sklearn's
    array-API shims) when torch is installed, which costs tens of seconds per worker on a
    loaded machine and is not what this test is about."""

    def predict(self, frame: pd.DataFrame) -> list[int]:
        return [int(t + s / 2 > 0) for t, s in zip(frame["tenure"], frame["spend"], strict=True)]


class Flipped(Linear):
    """Version 2: the opposite answer, so a response shows which version scored it."""

    def predict(self, frame: pd.DataFrame) -> list[int]:
        return [1 - v for v in super().predict(frame)]


def _requests_total(metrics: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in metrics.splitlines()
        if line.startswith("meshops_serving_requests_total{")
    )


def test_graceful_shutdown_of_meshops_serve_keeps_every_prediction(tmp_path: Path) -> None:
    """Also: an alias moved from another process reaches the server within its poll."""
    home_dir = tmp_path / "home"
    settings = make_settings(home_dir)
    with Platform(settings, home=Home(settings)) as platform:
        platform.registry.create_model("churn", domain="sales")
        example = pd.DataFrame([record(i) for i in range(3)])
        # By value: the workers need not import this test module to unpickle it.
        cloudpickle.register_pickle_by_value(sys.modules[__name__])
        try:
            for model in (Linear(), Flipped()):
                platform.registry.log_model(
                    "churn", model, flavor="python", input_example=example, metrics={"acc": 0.9}
                )
        finally:
            cloudpickle.unregister_pickle_by_value(sys.modules[__name__])
        platform.registry.set_alias("churn", "champion", 1)
        platform.serving.create_endpoint("churn-api", "churn@champion", trust_model_code=True)
    port = free_port()
    env = {**os.environ, "MESHOPS_HOME": str(home_dir), "MESHOPS_USER": "alice"}
    env[runtime_module.POLL_ENV] = str(SERVE_POLL_SECONDS)
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    # The models are pickled (python flavor): the admin's flag lets this process run them.
    command = [sys.executable, "-m", "meshops.cli.main", "serve", "churn-api", "--no-auth"]
    command.append("--trust-model-code")
    process = subprocess.Popen(
        [*command, "--port", str(port), "--workers", "2"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    t0 = time.perf_counter()
    try:
        _wait_ready(base, process)
        ready = time.perf_counter() - t0
        with httpx.Client(base_url=base, timeout=30) as http:
            versions: list[int] = []
            i = 0
            moved = switched = 0.0
            give_up = time.monotonic() + 120
            # Half the requests, the alias move (another process's write), then requests
            # until version 2 answers, at least SHUTDOWN_REQUESTS in all.
            while i < SHUTDOWN_REQUESTS or versions[-1] != 2:
                if i == SHUTDOWN_REQUESTS // 2:
                    moved = _move_alias(settings, version=2)
                answer = http.post(
                    "/v1/endpoints/churn-api/predict",
                    json={"records": [record(i)]},
                    headers={"x-request-id": f"sd-{i}"},
                )
                assert answer.status_code == 200, answer.text
                versions.append(answer.json()["model_version"])
                if versions[-1] == 2 and not switched:
                    switched = time.monotonic()
                assert time.monotonic() < give_up, "version 2 was never served"
                i += 1
            switched_after = switched - moved
            served = len(versions)
            invocation = http.post("/invocations", json={"dataframe_records": [record(0)]})
            assert invocation.json()["predictions"] == Flipped().predict(pd.DataFrame([record(0)]))
            # Summed over both workers' files; the worker not scraped adds its counts
            # within metrics.FLUSH_SECONDS (the scraped one before answering).
            for _ in range(100):
                metrics = http.get("/metrics").text
                if _requests_total(metrics) == served + 1:
                    break
                time.sleep(0.1)
        assert 'meshops_serving_requests_total{endpoint="churn-api"' in metrics
        assert _requests_total(metrics) == served + 1
    finally:
        process.send_signal(signal.SIGTERM)
        output = process.communicate(timeout=60)[0].decode()
    print(f"ready after {ready:.1f} s, exited after {time.perf_counter() - t0:.1f} s")
    print(f"alias move served after {switched_after:.2f} s (poll {SERVE_POLL_SECONDS} s)")
    assert process.returncode == 0, output
    # No request failed across the switch (all were 200); version 1 answered before it.
    half = SHUTDOWN_REQUESTS // 2
    assert set(versions[:half]) == {1} and versions[-1] == 2
    assert switched_after < SERVE_POLL_SECONDS + 3.0  # + loading, on a loaded machine
    home = Home(settings)
    platform = Platform(settings, home=home)
    window = platform.serving.prediction_window("churn-api", with_labels=False)
    ids = set(window.column("request_id").to_pylist())
    assert {f"sd-{i}" for i in range(served)} <= ids
    assert window.num_rows == served + 1
    platform.close()
    home.close()


def _move_alias(settings: Settings, version: int) -> float:
    """Move churn@champion from this (another) process; returns when it committed."""
    home = Home(settings)
    try:
        with Platform(settings, home=home) as platform:
            justify_move(platform, version, trust=True)
            platform.registry.set_alias("churn", "champion", version)
    finally:
        home.close()
    return time.monotonic()


def _wait_ready(base: str, process: subprocess.Popen[bytes]) -> None:
    # Generous: two workers start on a shared, loaded machine.
    deadline = time.monotonic() + 150
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(process.communicate()[0].decode())
        try:
            if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise AssertionError("meshops serve did not start")
