"""The ids of batch-created runs (grouped per batch, unique, short forms distinct) and the
route fast path that reads a JSON body straight into its model (`api.rpc`): valid bodies
arrive as the model, bad ones still get FastAPI's 422 naming the field."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import BaseModel

from meshops.api import rpc as api_rpc
from meshops.client import Platform
from meshops.kernel.bounds import MAX_RUNS_PER_BATCH
from meshops.tracking.batch import new_ids
from meshops.tracking.models import Metric, RunSpec
from tests.conftest import LiveServer

HEX_ID = re.compile(r"^[0-9a-f]{32}$")


@settings(max_examples=40, deadline=None)
@given(count=st.integers(min_value=0, max_value=MAX_RUNS_PER_BATCH))
def test_batch_ids_are_ascending_unique_hex_with_distinct_short_forms(count: int) -> None:
    ids = new_ids(count)
    assert len(ids) == count
    assert all(HEX_ID.match(run_id) for run_id in ids)
    assert ids == sorted(ids)
    assert len({run_id[:8] for run_id in ids}) == count  # the UI's short form
    assert len({run_id[:4] for run_id in ids}) <= 1  # one place in each run-id index


def test_batches_get_different_ids() -> None:
    first, second = new_ids(1_000), new_ids(1_000)
    assert not set(first) & set(second)
    assert len({run_id[12:] for run_id in first}) == 1_000  # random past the short form


def test_too_many_ids_for_one_batch_is_an_error() -> None:
    with pytest.raises(ValueError, match="ids per batch"):
        new_ids(16**4 + 1)


def test_created_runs_keep_their_order_and_read_back_by_id(platform: Platform) -> None:
    specs = [
        RunSpec(
            experiment="ids",
            name=f"r{i}",
            params={"i": i},
            metrics=[Metric(key="m", value=i, timestamp=1.0)],
        )
        for i in range(30)
    ]
    first = platform.tracking.create_runs(specs)
    second = platform.tracking.create_runs(specs)
    assert first == sorted(first) and len(set(first + second)) == 60
    for i, run_id in enumerate(first):
        run = platform.tracking.get_run(run_id)
        assert (run.name, run.params, run.metrics) == (f"r{i}", {"i": str(i)}, {"m": i})
    page = platform.tracking.search_runs(["ids"], "params.i = '7'", ["name ASC"], 10)
    assert sorted(r.id for r in page.runs) == sorted([first[7], second[7]])


@pytest.fixture
def received_bodies(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    """What the fast path handed FastAPI for each JSON body it read."""
    seen: list[Any] = []
    original = api_rpc._JsonBodyRequest.json

    async def spy(self: api_rpc._JsonBodyRequest) -> Any:
        body = await original(self)
        seen.append(body)
        return body

    monkeypatch.setattr(api_rpc._JsonBodyRequest, "json", spy)
    return seen


def test_a_valid_json_body_is_read_into_its_model(
    live_server: LiveServer, received_bodies: list[Any]
) -> None:
    body = {
        "runs": [{"experiment": "fast", "metrics": [{"key": "m", "value": "NaN", "timestamp": 1}]}]
    }
    with httpx.Client(base_url=live_server.url, timeout=120) as client:
        answer = client.post("/v1/runs/batch", json=body)
    assert answer.status_code == 201 and len(answer.json()) == 1
    [received] = received_bodies
    assert isinstance(received, BaseModel)
    assert isinstance(received.runs[0], RunSpec)  # type: ignore[attr-defined]


def test_bad_json_bodies_get_fastapis_errors(
    live_server: LiveServer, received_bodies: list[Any]
) -> None:
    with httpx.Client(base_url=live_server.url, timeout=120) as client:
        wrong = client.post(
            "/v1/runs/batch", json={"runs": [{}, {"metrics": [{"key": "m", "value": "x"}]}]}
        )
        malformed = client.post(
            "/v1/runs/batch", content=b'{"runs": [', headers={"content-type": "application/json"}
        )
    assert wrong.status_code == 422
    fields = {e["field"] for e in wrong.json()["detail"]["errors"]}
    assert fields == {"body.runs.1.metrics.0.value", "body.runs.1.metrics.0.timestamp"}
    assert malformed.status_code == 422 and malformed.json()["error"] == "invalid_input"
    assert received_bodies and isinstance(received_bodies[0], dict)  # handed on as parsed
