"""Batch run creation (`tracking.create_runs`) over every transport: the runs equal runs made
call by call, a request is all or nothing, its sizes are bounded and the server decides who
may write."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest

from meshops.client import Platform, connect
from meshops.governance.service import GovernanceService
from meshops.kernel.bounds import MAX_PARAMS_PER_RUN, MAX_RUNS_PER_BATCH
from meshops.kernel.errors import Forbidden, InvalidInput, NotFound
from meshops.kernel.home import Home
from meshops.tracking.models import Metric, Run, RunSpec, RunStatus
from tests.conftest import LiveServer, make_settings

RUNS = 6


def _metrics(i: int) -> list[Metric]:
    """Steps out of order, a tie on (step, timestamp) (the later value wins), a NaN."""
    loss = [
        Metric(key="loss", value=1 / (s + 1) + i / 10, step=s, timestamp=100 + s) for s in (0, 2, 1)
    ]
    return [
        *loss,
        Metric(key="acc", value=0.5 + i / 100, step=3, timestamp=10.0),
        Metric(key="acc", value=0.6 + i / 100, step=3, timestamp=10.0),
        Metric(key="acc", value=0.1, step=1, timestamp=50.0),
        Metric(key="f1", value=float("nan"), step=0, timestamp=1.0),
    ]


def _params(i: int) -> dict[str, Any]:
    return {"model": "rf" if i % 2 else "gb", "depth": i, "note": None}


def _tags(i: int) -> dict[str, str]:
    return {"team": f"t{i % 3}"}


def _status(i: int) -> RunStatus:
    return RunStatus.FAILED if i == 3 else RunStatus.FINISHED


def _by_calls(platform: Platform, experiment: str) -> None:
    tracking = platform.tracking
    for i in range(RUNS):
        run = tracking.create_run(
            experiment, name=f"r{i}", tags=_tags(i), capture_environment=False
        )
        tracking.log_params(run.id, _params(i))
        tracking.log_metrics(run.id, _metrics(i))
        error = "boom" if _status(i) is RunStatus.FAILED else None
        tracking.end_run(run.id, _status(i).value, error)


def _by_batch(platform: Platform, experiment: str) -> list[str]:
    specs = [
        RunSpec(
            experiment=experiment,
            name=f"r{i}",
            tags=_tags(i),
            params=_params(i),
            metrics=_metrics(i),
            status=_status(i),
            error="boom" if _status(i) is RunStatus.FAILED else None,
        )
        for i in range(RUNS)
    ]
    return platform.tracking.create_runs(specs)


def _view(run: Run) -> tuple[Any, ...]:
    """What a run says, without its id, experiment and times (NaN made comparable)."""
    metrics = {k: "nan" if math.isnan(v) else v for k, v in run.metrics.items()}
    return run.name, run.status, run.params, metrics, run.tags, run.error, run.user


SEARCHES = [
    ("metrics.loss < 1 and params.model = 'rf'", ["metrics.loss DESC"]),
    ("tags.team = 't1' or metrics.acc > 0.62", ["metrics.acc ASC"]),
    ("attributes.status = 'FAILED'", ["name"]),
    ("", ["params.depth DESC"]),
]


def test_batch_runs_equal_runs_made_call_by_call(platform: Platform) -> None:
    _by_calls(platform, "by-call")
    ids = _by_batch(platform, "by-batch")
    tracking = platform.tracking
    assert len(ids) == RUNS == len(set(ids))
    for filter_text, order in SEARCHES:
        made = tracking.search_runs(["by-call"], filter_text, order, 100).runs
        batched = tracking.search_runs(["by-batch"], filter_text, order, 100).runs
        assert made, filter_text
        assert [_view(r) for r in batched] == [_view(r) for r in made], filter_text
    made_runs = {r.name: r for r in tracking.search_runs(["by-call"], max_results=100).runs}
    for run in tracking.search_runs(["by-batch"], max_results=100).runs:
        twin = made_runs[run.name]
        assert run.end_time is not None and run.end_time >= run.start_time
        for key in ("loss", "acc", "f1"):
            got = [(m.step, m.value, m.timestamp) for m in tracking.metric_history(run.id, key)]
            want = [(m.step, m.value, m.timestamp) for m in tracking.metric_history(twin.id, key)]
            assert str(got) == str(want), key  # str: NaN equals NaN


def test_times_and_a_running_run_that_goes_on_call_by_call(platform: Platform) -> None:
    tracking = platform.tracking
    start = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    finished, running = tracking.create_runs(
        [
            RunSpec(experiment="times", start_time=start, end_time=start + timedelta(hours=1)),
            RunSpec(experiment="times", status=RunStatus.RUNNING, start_time=start),
        ]
    )
    done = tracking.get_run(finished)
    assert done.start_time == start and done.end_time == start + timedelta(hours=1)
    assert done.name == f"run-{finished[:8]}"
    tracking.log_params(running, {"lr": 0.1})
    tracking.log_metrics(running, [Metric(key="loss", value=0.3, step=1, timestamp=5.0)])
    ended = tracking.end_run(running)
    assert ended.status == RunStatus.FINISHED and ended.params == {"lr": "0.1"}
    assert ended.metrics == {"loss": 0.3}


@pytest.mark.parametrize(
    ("bad", "field"),
    [
        (RunSpec(params={"bad key!": 1}), "runs[2].params.bad key!"),
        (RunSpec(tags={"t": "v" * 8001}), "runs[2].tags.t"),
        (RunSpec(name=" "), "runs[2].name"),
        (RunSpec(experiment=""), "runs[2].experiment"),
        (
            RunSpec(
                metrics=[
                    Metric(key="m", value=1, timestamp=1),
                    Metric(key="m", value=1, step=2**63, timestamp=1),
                ]
            ),
            "runs[2].metrics[1].step",
        ),
        (RunSpec(metrics=[Metric(key="a b!", value=1, timestamp=1)]), "runs[2].metrics[0].key"),
        (RunSpec(status=RunStatus.RUNNING, end_time=datetime.now(UTC)), "runs[2].end_time"),
        (
            RunSpec(start_time=datetime.now(UTC), end_time=datetime.now(UTC) - timedelta(days=1)),
            "runs[2].end_time",
        ),
    ],
)
def test_a_bad_run_writes_nothing_and_names_its_index_and_field(
    shared_platform: Platform, bad: RunSpec, field: str
) -> None:
    tracking = shared_platform.tracking
    experiment = f"atomic-{abs(hash(field)) % 10**8}"
    good = RunSpec(
        experiment=experiment, params={"p": 1}, metrics=[Metric(key="m", value=1, timestamp=1)]
    )
    bad = bad.model_copy(
        update={"experiment": bad.experiment if bad.experiment == "" else experiment}
    )
    with pytest.raises(InvalidInput) as info:
        tracking.create_runs([good, good, bad, good])
    assert info.value.detail["field"] == field
    assert "runs[2]" in info.value.message
    with pytest.raises(NotFound):  # not even the experiment the batch would have created
        tracking.get_experiment(experiment)


def test_the_number_of_runs_per_request_is_bounded(shared_platform: Platform) -> None:
    with pytest.raises(InvalidInput, match=str(MAX_RUNS_PER_BATCH)):
        shared_platform.tracking.create_runs(
            [RunSpec(experiment="too-many")] * (MAX_RUNS_PER_BATCH + 1)
        )
    with pytest.raises(NotFound):
        shared_platform.tracking.get_experiment("too-many")
    assert shared_platform.tracking.create_runs([]) == []


def test_bounds_and_bad_bodies_are_422_over_http(live_server: LiveServer) -> None:
    too_many_params = {f"p{i}": "v" for i in range(MAX_PARAMS_PER_RUN + 1)}
    bodies = [
        {"runs": [{"params": too_many_params}]},
        {"runs": [{"metrics": [{"key": "m", "value": "high", "timestamp": 1}]}]},
        {"runs": [{"status": "SLEEPING"}]},
        {"runs": "all of them"},
    ]
    with httpx.Client(base_url=live_server.url) as client:
        for body in bodies:
            answer = client.post("/v1/runs/batch", json=body)
            assert answer.status_code == 422, body
            assert answer.json()["error"] == "invalid_input"
            assert answer.json()["detail"]["errors"][0]["field"].startswith("body.runs")
        ok = client.post(
            "/v1/runs/batch", json={"runs": [{"experiment": "raw", "params": {"a": 1}}]}
        )
        assert ok.status_code == 201 and len(ok.json()) == 1


def test_embedded_callers_meet_the_same_per_run_bounds(tmp_path: Path) -> None:
    too_many = RunSpec.model_construct(
        experiment="x",
        name=None,
        status=RunStatus.FINISHED,
        start_time=None,
        end_time=None,
        error=None,
        tags={},
        metrics=[],
        params={f"p{i}": "v" for i in range(MAX_PARAMS_PER_RUN + 1)},
    )
    with connect(home=tmp_path / "home") as platform, pytest.raises(InvalidInput) as info:
        platform.tracking.create_runs([too_many])
    assert info.value.detail["field"] == "runs[0].params"


def test_the_server_refuses_a_principal_without_tracking_write(tmp_path: Path) -> None:
    home = Home(make_settings(tmp_path / "home"))
    try:
        governance = GovernanceService(home.context())
        governance.create_user("carl")  # no role: may read the catalog, not write runs
        carl = governance.create_token("carl", principal="carl").token
        read_only = governance.create_token("ro", scopes=["tracking.read"]).token
        with LiveServer(home) as server:
            for token in (carl, read_only):
                with connect(server.url, token=token) as platform, pytest.raises(Forbidden):
                    platform.tracking.create_runs([RunSpec(experiment="refused")])
            with connect(server.url, token=server.token) as admin:
                with pytest.raises(NotFound):
                    admin.tracking.get_experiment("refused")
                (run_id,) = admin.tracking.create_runs([RunSpec(experiment="allowed")])
                assert admin.tracking.get_run(run_id).user == home.settings.user
    finally:
        home.close()
