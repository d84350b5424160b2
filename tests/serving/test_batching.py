"""Adaptive batching of predict requests (serving/batching.py): requests waiting on one event
loop share a model call, and each still gets its own answer, error, log rows and request id,
in-process and over HTTP through a real server."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshops.client import Platform
from meshops.kernel.config import load_settings
from meshops.kernel.errors import InvalidInput, MeshopsError
from meshops.kernel.home import Home
from meshops.registry.loaded import LoadedModel
from meshops.serving import metrics
from meshops.serving.batching import BATCH_ROWS_ENV, DEFAULT_BATCH_ROWS, batch_rows
from meshops.serving.runtime import Pending, Runtime, _batches
from meshops.serving.scoring import Route
from tests.conftest import LiveServer
from tests.serving.helpers import expected, fitted, record, register_churn


@pytest.fixture
def churn_api(sqlite_home: Home) -> Platform:
    platform = Platform(sqlite_home.settings, home=sqlite_home)
    register_churn(platform)
    platform.serving.create_endpoint("churn-api", "churn@champion")
    return platform


@pytest.fixture
def model_calls(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """How many times the served models were called, by method."""
    calls: Counter[str] = Counter()
    for method in ("predict", "predict_proba"):
        original = getattr(LoadedModel, method)

        def counted(self: LoadedModel, *args: Any, _m: str = method, _f: Any = original,
                    **kwargs: Any) -> Any:  # fmt: skip
            calls[_m] += 1
            return _f(self, *args, **kwargs)

        monkeypatch.setattr(LoadedModel, method, counted)
    return calls


async def _together(runtime: Runtime, home: Home, requests: list[dict[str, Any]]) -> list[Any]:
    """Start every request on one loop at once; each one's answer or error."""
    ctx = home.context()
    batcher = runtime.batcher
    calls = [batcher.serve(ctx, "churn-api", **request) for request in requests]
    return await asyncio.gather(*calls, return_exceptions=True)


def test_concurrent_requests_share_a_model_call_and_keep_their_own_answers(
    sqlite_home: Home, churn_api: Platform, model_calls: Counter[str]
) -> None:
    runtime = Runtime(sqlite_home, watch=False)
    try:
        runtime.deployment("churn-api")
        plain = [
            {"records": [record(i), record(i + 100)], "request_id": f"p-{i}"} for i in range(12)
        ]
        proba = [{"records": [record(i)], "request_id": f"q-{i}", "proba": True} for i in range(5)]
        before = _batch_samples()
        answers = asyncio.run(_together(runtime, sqlite_home, plain + proba))
        # Two model calls for 17 requests: one per (route, proba) group.
        assert model_calls == {"predict": 1, "predict_proba": 1}
        assert (runtime.batcher.batches, runtime.batcher.batched) == (1, 17)
        # Prometheus: one batch of 17 requests (in the le=32 bucket, not in le=16).
        after = _batch_samples()
        assert {k: after[k] - before[k] for k in after} == {
            "count": 1,
            "sum": 17,
            "le=16": 0,
            "le=32": 1,
        }
        for request, answer in zip(plain, answers[:12], strict=True):
            assert answer.request_id == request["request_id"]
            assert answer.outputs == expected(request["records"])  # its own rows, in order
        model = fitted(1)
        for i, answer in enumerate(answers[12:]):
            (output,) = answer.outputs
            frame_row = [[record(i)[c] for c in model.feature_names_in_]]
            assert output["prediction"] == expected([record(i)])[0]
            assert output["proba_1"] == pytest.approx(model.predict_proba(frame_row)[0][1])
        runtime.flush()
        window = churn_api.serving.prediction_window("churn-api", with_labels=False)
        logged = Counter(window.column("request_id").to_pylist())
        assert logged == {**{f"p-{i}": 2 for i in range(12)}, **{f"q-{i}": 1 for i in range(5)}}
    finally:
        runtime.close()


def _batch_samples() -> dict[str, float]:
    """The batch-size histogram's count, sum and two buckets, as a scrape would see them."""
    from prometheus_client import REGISTRY

    metrics.TALLY.flush()
    name = "meshops_serving_batch_requests"

    def value(suffix: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(f"{name}_{suffix}", labels) or 0.0

    return {
        "count": value("count"),
        "sum": value("sum"),
        "le=16": value("bucket", le="16.0"),
        "le=32": value("bucket", le="32.0"),
    }


def test_a_failing_request_fails_alone(
    sqlite_home: Home, churn_api: Platform, model_calls: Counter[str]
) -> None:
    runtime = Runtime(sqlite_home, watch=False)
    try:
        runtime.deployment("churn-api")
        good = [{"records": [record(i)], "request_id": f"ok-{i}"} for i in range(4)]
        null = {"records": [{**record(9), "spend": None}], "request_id": "null"}  # model refuses
        typed = {"records": [{**record(8), "spend": "high"}], "request_id": "typed"}
        answers = asyncio.run(_together(runtime, sqlite_home, [*good[:2], null, typed, *good[2:]]))
        refused_null, refused_typed = answers[2], answers[3]
        assert isinstance(refused_null, MeshopsError) and "NaN" in refused_null.message
        # The signature check refuses before the batch: the error names its record and column.
        assert isinstance(refused_typed, InvalidInput)
        assert (refused_typed.detail["record"], refused_typed.detail["field"]) == (0, "spend")
        scored = [a for i, a in enumerate(answers) if i not in (2, 3)]
        assert [a.outputs for a in scored] == [expected(r["records"]) for r in good]
        # One call for the batch (it failed on the null), then one per request of it.
        assert model_calls["predict"] == 1 + 5
        runtime.flush()
        window = churn_api.serving.prediction_window("churn-api", with_labels=False)
        assert sorted(window.column("request_id").to_pylist()) == [f"ok-{i}" for i in range(4)]
    finally:
        runtime.close()


def test_an_output_that_is_not_one_per_row_is_scored_request_by_request(
    sqlite_home: Home,
) -> None:
    class Totals:
        """A model answering one value for its whole input (not one per row)."""

        uri = "models:/totals/1"
        calls = 0

        def predict(self, data: list[dict[str, Any]]) -> float:
            self.calls += 1
            return float(sum(r["x"] for r in data))

    model = Totals()
    counts = metrics.TALLY.counts_for("totals-api", "1", "primary")
    route = Route("models:/totals@champion", model, None, False, False, counts)  # type: ignore[arg-type]
    runtime = Runtime(sqlite_home, watch=False)
    try:
        pendings = [_pending(route, [{"x": 1.0}, {"x": 2.0}]), _pending(route, [{"x": 5.0}])]
        runtime.score(pendings, max_rows=DEFAULT_BATCH_ROWS)
        # Spread per request, as without batching: each request's own total.
        assert [p.outputs for p in pendings] == [[3.0, 3.0], [5.0]]
        assert model.calls == 1 + 2
    finally:
        runtime.close()


def _pending(route: Route | Any, rows: list[Any], proba: bool = False) -> Pending:
    return Pending("r", "e", None, route, "primary", rows, rows, None, rows, proba, 0.0)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(
    requests=st.lists(st.tuples(st.integers(0, 2), st.booleans(), st.integers(1, 40)), max_size=60),
    max_rows=st.integers(1, 64),
)
def test_batches_keep_every_request_once_in_order_within_the_row_limit(
    requests: list[tuple[int, bool, int]], max_rows: int
) -> None:
    routes = [object(), object(), object()]
    pendings = [_pending(routes[r], [0] * n, proba) for r, proba, n in requests]
    batches = _batches(pendings, max_rows)
    flat = [p for batch in batches for p in batch]
    assert sorted(map(id, flat)) == sorted(map(id, pendings))  # each request exactly once
    for batch in batches:
        assert len({(id(p.route), p.proba) for p in batch}) == 1  # one route, one proba
        rows = sum(len(p.rows) for p in batch)
        assert rows <= max_rows or len(batch) == 1  # only a request larger than the limit
    for key in {(id(p.route), p.proba) for p in pendings}:
        mine = [p for p in flat if (id(p.route), p.proba) == key]
        assert mine == [p for p in pendings if (id(p.route), p.proba) == key]  # order kept


def test_batch_rows_setting(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(BATCH_ROWS_ENV, raising=False)
    assert batch_rows(load_settings(home=tmp_path, env={})) == DEFAULT_BATCH_ROWS
    (tmp_path / "meshops.toml").write_text("[serving]\nbatch_rows = 1\n")
    assert batch_rows(load_settings(home=tmp_path, env={})) == 1
    monkeypatch.setenv(BATCH_ROWS_ENV, "64")
    assert batch_rows(load_settings(home=tmp_path, env={})) == 64
    monkeypatch.delenv(BATCH_ROWS_ENV)
    for bad in ['"many"', "0", "true", "1.5", "1000000"]:
        (tmp_path / "meshops.toml").write_text(f"[serving]\nbatch_rows = {bad}\n")
        with pytest.raises(InvalidInput) as info:
            batch_rows(load_settings(home=tmp_path, env={}))
        assert info.value.detail["field"] == "serving.batch_rows"
        assert "1 turns batching off" in info.value.detail["fix"]


def test_batch_rows_one_scores_each_request_on_its_own(
    sqlite_home: Home,
    churn_api: Platform,
    model_calls: Counter[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(BATCH_ROWS_ENV, "1")
    runtime = Runtime(sqlite_home, watch=False)
    try:
        requests = [{"records": [record(i)]} for i in range(6)]
        answers = asyncio.run(_together(runtime, sqlite_home, requests))
        assert [a.outputs for a in answers] == [expected(r["records"]) for r in requests]
        assert (model_calls["predict"], runtime.batcher.batches) == (6, 0)
    finally:
        runtime.close()


async def _fire_distinct(url: str, headers: dict[str, str], n: int) -> list[httpx.Response]:
    limits = httpx.Limits(max_connections=n)
    async with httpx.AsyncClient(limits=limits, timeout=30, headers=headers) as http:
        posts = [
            http.post(url, json={"records": [record(i)]}, headers={"x-request-id": f"h-{i}"})
            for i in range(n)
        ]
        return await asyncio.gather(*posts)


def test_over_http_concurrent_clients_are_batched_and_each_gets_its_own_prediction(
    sqlite_home: Home, churn_api: Platform
) -> None:
    from meshops.serving.runtime import runtime_for

    n = 48
    with LiveServer(sqlite_home) as server:
        url = f"{server.url}/v1/endpoints/churn-api/predict"
        for _ in range(5):  # concurrency on a loopback server is not guaranteed each time
            answers = asyncio.run(_fire_distinct(url, server.headers, n))
            assert [a.status_code for a in answers] == [200] * n
            for i, answer in enumerate(answers):
                body = answer.json()
                assert body["request_id"] == answer.headers["x-request-id"] == f"h-{i}"
                assert body["predictions"] == expected([record(i)])
            batcher = runtime_for(sqlite_home).batcher
            if batcher.batched > batcher.batches:
                break
        assert batcher.batched > batcher.batches  # some requests shared a model call


def test_when_the_log_refuses_a_batch_its_requests_fail_and_none_is_counted_served(
    sqlite_home: Home, churn_api: Platform
) -> None:
    from prometheus_client import REGISTRY

    runtime = Runtime(sqlite_home, watch=False)
    try:
        route = runtime.deployment("churn-api").primary
        labels = dict(zip(metrics.LABELS, route.counts.labels, strict=True))

        def served() -> float:
            metrics.TALLY.flush()
            return REGISTRY.get_sample_value("meshops_serving_requests_total", labels) or 0.0

        before = served()
        runtime.log.close()  # what a shutting-down worker's log does with late rows
        requests = [{"records": [record(i)]} for i in range(3)]
        answers = asyncio.run(_together(runtime, sqlite_home, requests))
        assert all(isinstance(a, MeshopsError) and "closed" in a.message for a in answers)
        assert served() == before
    finally:
        runtime.close()
