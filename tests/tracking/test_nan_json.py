"""NaN and infinite metrics over JSON (issue #14, finding 14): the API never writes a bare
NaN/Infinity literal (invalid JSON); a non-finite float travels as the string "NaN",
"Infinity" or "-Infinity" (as in MLflow's REST API), and the SDK reads it back, so the
embedded and the HTTP transport answer the same."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from meshops.client import Platform
from meshops.kernel import jsontext
from meshops.kernel.home import Home
from meshops.kernel.http import HttpTransport
from tests.conftest import LiveServer

VALUES = {"nan": math.nan, "inf": math.inf, "ninf": -math.inf, "finite": 1.5}


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


def strict_json(text: str | bytes) -> Any:
    """json.loads that refuses NaN/Infinity literals, as RFC 8259 readers do."""

    def refuse(literal: str) -> Any:
        raise ValueError(f"bare {literal} in JSON")

    return json.loads(text, parse_constant=refuse)


def log_values(platform: Platform, experiment: str) -> str:
    run = platform.tracking.create_run(experiment, capture_environment=False)
    for key, value in VALUES.items():
        platform.tracking.log_metric(run.id, key, value, step=1)
    platform.tracking.flush()
    return run.id


def test_non_finite_metrics_round_trip(shared_platform: Platform) -> None:
    run_id = log_values(shared_platform, "nan-round-trip")
    run = shared_platform.tracking.get_run(run_id)
    for key, value in VALUES.items():
        assert same(run.metrics[key], value), (key, run.metrics[key])
        (point,) = shared_platform.tracking.metric_history(run_id, key)
        assert same(point.value, value)
    page = shared_platform.tracking.search_runs(["nan-round-trip"])
    assert [r.id for r in page.runs] == [run_id]
    assert all(same(page.runs[0].metrics[k], v) for k, v in VALUES.items())


def test_search_compares_non_finite_metrics(shared_platform: Platform) -> None:
    run_id = log_values(shared_platform, "nan-search")
    found = shared_platform.tracking.search_runs(["nan-search"], "metrics.inf > 1e308")
    assert [r.id for r in found.runs] == [run_id]


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Home, LiveServer]]:
    from tests.conftest import make_settings

    home = Home(make_settings(tmp_path_factory.mktemp("nan") / "home"))
    with LiveServer(home) as server:
        yield home, server
    home.close()


def test_http_answers_are_strict_json(served: tuple[Home, LiveServer]) -> None:
    home, server = served
    platform = Platform(home.settings, home=home)
    run_id = log_values(platform, "nan-raw")
    with httpx.Client(base_url=server.url, headers=server.headers) as client:
        run = client.get(f"/v1/runs/{run_id}")
        history = client.get(f"/v1/runs/{run_id}/metrics/history", params={"key": "ninf"})
        search = client.post("/v1/runs/search", json={"experiments": ["nan-raw"]})
    for response in (run, history, search):
        assert response.status_code == 200
        assert b"NaN," not in response.content and b":Infinity" not in response.content
        strict_json(response.content)  # parses: no bare literal anywhere
    metrics = strict_json(run.content)["metrics"]
    assert metrics == {"nan": "NaN", "inf": "Infinity", "ninf": "-Infinity", "finite": 1.5}
    assert strict_json(history.content)[0]["value"] == "-Infinity"


def test_sdk_request_bodies_carry_no_bare_literals() -> None:
    seen: list[bytes] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append(request.content)
        return httpx.Response(200, json={"ok": True})

    http = HttpTransport("http://meshops.test", transport=httpx.MockTransport(answer))
    http.post("/v1/anything", {"values": [math.nan, math.inf, -math.inf, 2.0]})
    assert strict_json(seen[0]) == {"values": ["NaN", "Infinity", "-Infinity", 2.0]}


def test_jsontext_encodes_and_decodes() -> None:
    assert jsontext.dumps({"a": [1.0, {"b": math.nan}], "c": (math.inf,)}) == (
        b'{"a":[1.0,{"b":"NaN"}],"c":["Infinity"]}'
    )
    assert jsontext.dumps({"plain": 1}) == b'{"plain":1}'
    assert math.isnan(jsontext.decode("NaN")) and jsontext.decode("-Infinity") == -math.inf
    assert jsontext.decode("nan") == "nan" and jsontext.decode(3) == 3
