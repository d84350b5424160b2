"""The step API keeps lineage unbroken for a hand-written pipeline (issue #16).

A monitor alert triggers a retraining pipeline of plain @step functions (no template, no
explicit lineage call: tests/pipelines/step_lineage_flows.py) that trains a scikit-learn
model, tracks it, registers it and puts it behind the endpoint. `lineage downstream
meshops:alert:<id>` then reaches the pipeline run, the step run, the tracking run, the model
version and the endpoint, edge by edge: embedded (the worker on the home, steps opening the
home) and over HTTP (the worker and the steps talking to a live server with a token, the
steps' requests carrying their step, which the server verifies). A step header the server
cannot confirm (another principal's run, a finished run, a forged step run) creates
nothing; the engine assigns the step run's id before the step runs, the same id on every
executor and across retries.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pandas as pd
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshops.client import Platform
from meshops.kernel import outbox
from meshops.kernel.auth import Actor
from meshops.kernel.errors import InvalidInput, NotFound
from meshops.kernel.home import Home
from meshops.kernel.http import HttpTransport
from meshops.kernel.lineage import Edge
from meshops.kernel.steps import HEADER, StepContext, parse_header
from meshops.monitoring.models import AlertRuleSpec, MonitorSpec
from meshops.pipelines import pipeline, step
from meshops.pipelines.context import current_step
from meshops.pipelines.models import RunDetail, RunStatus
from meshops.pipelines.service import PipelinesService
from meshops.pipelines.worker import Worker
from tests.conftest import LiveServer, make_settings
from tests.pipelines.step_lineage_flows import FEATURES

FLOWS = "tests.pipelines.step_lineage_flows"
REF = f"{FLOWS}:retrain"
SOURCE = "meshops:dataset:sklearn.iris"


# --- the scenario: a served model, its drift monitor, a retraining trigger ----------------


def _iris() -> pd.DataFrame:
    from sklearn.datasets import load_iris

    frame: pd.DataFrame = load_iris(as_frame=True).frame
    return frame


def _serve_and_watch(platform: Platform) -> None:
    """Version 1 (trained by hand) behind `iris-api`, a drift monitor on the endpoint with a
    critical rule, and a trigger that retrains on its critical alerts."""
    from sklearn.linear_model import LogisticRegression

    frame = _iris()
    platform.registry.create_model("iris", domain="ml")
    first = LogisticRegression(max_iter=200).fit(frame[FEATURES], frame["target"])
    platform.registry.log_model("iris", first, input_example=frame[FEATURES].head(5))
    platform.serving.create_endpoint("iris-api", "iris/1", domain="ml")
    platform.monitoring.create_monitor(
        MonitorSpec(
            name="iris-drift",
            kind="data_drift",
            domain="ml",
            endpoint="iris-api",
            model="iris",
            numerical=FEATURES,
        ),
        reference=pa.Table.from_pandas(frame[FEATURES], preserve_index=False),
    )
    platform.monitoring.add_rule(
        "iris-drift",
        AlertRuleSpec(name="drift", metric="dataset_drift", op=">=", value=1, severity="critical"),
    )
    platform.pipelines.create_trigger(
        "retrain-iris",
        outbox.MONITOR_ALERT,
        REF,
        {"source": SOURCE},
        match={"severity": "critical"},
        executor="inline",
    )


def _drift_alert(platform: Platform) -> int:
    """Traffic whose every feature moved: the monitor's run opens a critical alert."""
    shifted = _iris()[FEATURES] * 3 + 5
    result = platform.monitoring.run_monitor(
        "iris-drift", current=pa.Table.from_pandas(shifted, preserve_index=False)
    )
    assert result.status == "alert", result.summary
    (alert,) = platform.monitoring.list_alerts(monitor="iris-drift")
    return alert.id


def _retrain(platform: Platform) -> RunDetail:
    """`meshops worker` on this platform: dispatches the alert to the trigger, runs the run."""
    worker = Worker(platform.pipelines)
    assert worker.serve(max_runs=1, idle_exit=True) == 1
    (run,) = platform.pipelines.list_runs(pipeline="retrain")
    detail = platform.pipelines.get_run(run.id)
    assert detail.run.status == RunStatus.SUCCEEDED, detail.run.error
    return detail


def _assert_unbroken(platform: Platform, alert_id: int, detail: RunDetail) -> None:
    alert_urn = f"meshops:alert:{alert_id}"
    edges = platform.lineage.downstream(alert_urn, depth=6)
    reached = {e.downstream: e.depth for e in edges}
    have = {(e.upstream, e.relation, e.downstream) for e in edges}

    steps = {s.node: s for s in detail.steps}
    train = steps["train"]
    (output,) = train.outputs
    from meshops.pipelines import materializers

    trained: dict[str, Any] = materializers.by_name(output.materializer).load(
        output.inline_bytes() or b""
    )
    assert trained["version"] == 2
    run_urn = detail.run.urn
    step_urn = f"meshops:steprun:{train.id}"
    tracking_urn = f"meshops:run:{trained['run']}"
    version_urn = "meshops:model:iris:2"
    endpoint_urn = "meshops:endpoint:iris-api"

    chain = [
        (alert_urn, "triggered", run_urn),
        (run_urn, "contains", step_urn),
        (step_urn, "produced", tracking_urn),
        (tracking_urn, "produced", version_urn),
        (version_urn, "deployed_to", endpoint_urn),
    ]
    missing = [edge for edge in chain if edge not in have]
    assert not missing, f"lineage is broken at {missing}; downstream of the alert: {edges}"
    assert (step_urn, "produced", version_urn) in have  # the registration, directly
    assert (SOURCE, "input_to", step_urn) in _upstream(platform, step_urn)  # log_input
    assert reached[run_urn] == 1 and reached[endpoint_urn] <= 4
    # Every step run of the run hangs off it, under the id it was recorded with.
    for step_run in detail.steps:
        assert (run_urn, "contains", f"meshops:steprun:{step_run.id}") in have
    # The step's id was known while it ran: the tracking run's edge names the recorded id.
    assert trained["urn"] == version_urn
    # The run created inside the step names its pipeline run (the runs tables' "started by").
    created = platform.tracking.get_run(trained["run"])
    assert created.tags["meshops.pipeline_run"] == detail.run.id


def _upstream(platform: Platform, urn: str) -> set[tuple[str, str, str]]:
    return {(e.upstream, e.relation, e.downstream) for e in platform.lineage.upstream(urn)}


@pytest.fixture
def clean_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name in ("MESHOPS_URI", "MESHOPS_TOKEN", "MESHOPS_HOME", "MESHOPS_RUN_AS", "MESHOPS_USER"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_alert_to_endpoint_lineage_is_unbroken_embedded(
    tmp_path: Path, clean_env: pytest.MonkeyPatch
) -> None:
    home = Home(make_settings(tmp_path / "home"))
    platform = Platform(home.settings, home=home)
    # Where the steps connect: the home, as its user (whom the trigger's run acts as).
    clean_env.setenv("MESHOPS_HOME", str(home.settings.home))
    clean_env.setenv("MESHOPS_USER", "alice")
    try:
        _serve_and_watch(platform)
        alert_id = _drift_alert(platform)
        detail = _retrain(platform)
        _assert_unbroken(platform, alert_id, detail)
        assert detail.run.origin["subject"] == f"meshops:alert:{alert_id}"
    finally:
        platform.close()
        home.close()


# --- over HTTP: the steps' requests carry their step, the server verifies it --------------


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[Home, LiveServer]]:
    home = Home(make_settings(tmp_path / "home"))
    try:
        with LiveServer(home) as server:
            yield home, server
    finally:
        home.close()


def _remote(home: Home, server: LiveServer, token: str | None = None) -> Platform:
    token = token or server.token
    settings = replace(home.settings, uri=server.url, token=token)
    return Platform(settings, http=HttpTransport(server.url, token))


def test_alert_to_endpoint_lineage_is_unbroken_over_http(
    served: tuple[Home, LiveServer], clean_env: pytest.MonkeyPatch
) -> None:
    home, server = served
    platform = _remote(home, server)
    # The worker talks to the server with its token and hands its steps its environment
    # (docs/security.md): the steps' `meshops.connect()` reaches the same server.
    clean_env.setenv("MESHOPS_URI", server.url)
    clean_env.setenv("MESHOPS_TOKEN", server.token)
    try:
        _serve_and_watch(platform)
        alert_id = _drift_alert(platform)
        detail = _retrain(platform)
        _assert_unbroken(platform, alert_id, detail)
    finally:
        platform.close()


def _edges_from(home: Home, urn: str) -> list[Edge]:
    from meshops.kernel.lineage import walk

    with home.db.read() as conn:
        return walk(conn, urn, "downstream", 1)


def test_a_step_header_the_server_cannot_confirm_creates_nothing(
    served: tuple[Home, LiveServer],
) -> None:
    home, server = served
    admin = home.context()  # alice, the server token's principal
    from meshops.governance.service import GovernanceService

    gov = GovernanceService(admin)
    gov.create_user("mallory")
    gov.bind_role("mallory", "data_scientist")
    mallory = gov.create_token("mallory-token", principal="mallory").token

    pipelines = PipelinesService(admin)
    running = pipelines.start_run("retrain", REF, {}, "inline")  # alice's, running
    finished = pipelines.start_run("retrain", REF, {}, "inline")
    pipelines.finish_run(finished.id, RunStatus.SUCCEEDED)

    def create_run(token: str, claim: StepContext | str | None) -> httpx.Response:
        headers = {"authorization": f"Bearer {token}"}
        if claim is not None:
            headers[HEADER] = claim if isinstance(claim, str) else claim.header()
        body = {"experiment": "forgery", "name": "x"}
        return httpx.post(f"{server.url}/v1/runs", json=body, headers=headers, timeout=30)

    def step_of(run_id: str, step_run_id: str) -> StepContext:
        return StepContext(run_id, "train", 1, step_run_id)

    def experiment_runs() -> int:
        from meshops.tracking.service import TrackingService

        try:
            return len(TrackingService(admin).search_runs(["forgery"]).runs)
        except NotFound:  # not even the experiment was created
            return 0

    forged = step_of(running.id, "f" * 32)
    # Another principal naming alice's running run: refused, nothing created or linked.
    answer = create_run(mallory, forged)
    assert answer.status_code == 403, answer.text
    assert answer.json()["detail"]["field"] == HEADER
    assert "mallory does not act for pipeline run" in answer.json()["message"]
    assert experiment_runs() == 0
    # A finished run's steps cannot act any more, even its own principal's.
    stale = step_of(finished.id, "e" * 32)
    answer = create_run(server.token, stale)
    assert answer.status_code == 409, answer.text
    # A malformed header is an error naming the header, not something half-believed.
    answer = create_run(server.token, '{"run_id": "x"}')
    assert answer.status_code == 422 and answer.json()["detail"]["field"] == HEADER
    # A run this server does not know (another home's): the call goes on, without a step.
    answer = create_run(mallory, step_of("0" * 32, "d" * 32))
    assert answer.status_code == 201, answer.text
    assert _edges_from(home, "meshops:steprun:" + "d" * 32) == []
    assert _edges_from(home, "meshops:steprun:" + "f" * 32) == []
    assert _edges_from(home, "meshops:steprun:" + "e" * 32) == []

    # A step run already recorded for another step is not the claimed one.
    recorded = _record_one_step(pipelines, finished.id)
    answer = create_run(server.token, step_of(running.id, recorded))
    assert answer.status_code == 403, answer.text

    # The control: the run's own principal, from its running run: created and linked.
    genuine = step_of(running.id, "a" * 32)
    answer = create_run(server.token, genuine)
    assert answer.status_code == 201, answer.text
    linked = {(e.relation, e.downstream) for e in _edges_from(home, genuine.step_run_urn or "")}
    assert linked == {("produced", f"meshops:run:{answer.json()['id']}")}


@settings(max_examples=300, deadline=None)
@given(
    st.one_of(
        st.text(max_size=1100),
        st.builds(
            lambda run, node, attempt, sid: json.dumps(
                {"run_id": run, "node": node, "attempt": attempt, "step_run_id": sid}
            ),
            st.one_of(st.from_regex(r"[a-f0-9]{32}", fullmatch=True), st.text(max_size=80)),
            st.text(max_size=250),
            st.one_of(st.integers(-5, 2000), st.booleans(), st.floats(), st.none()),
            st.one_of(st.from_regex(r"[a-f0-9]{32}", fullmatch=True), st.text(max_size=80)),
        ),
    )
)
def test_a_step_header_is_a_bounded_step_or_a_clear_error(text: str) -> None:
    """Whatever arrives in the header: a step context within the bounds (which the SDK
    would send the same way), or InvalidInput naming the header; never anything else."""
    try:
        claim = parse_header(text)
    except InvalidInput as exc:
        assert exc.detail["field"] == HEADER
        return
    assert 1 <= claim.attempt <= 1000 and 0 < len(claim.node) <= 200
    assert claim.step_run_urn is not None and claim.run_urn.startswith("meshops:pipelinerun:")
    assert parse_header(claim.header()) == claim


def _record_one_step(pipelines: PipelinesService, finished_run: str) -> str:
    """A step run recorded (in-process) for another run; its id."""
    from meshops.kernel.db import utcnow
    from meshops.pipelines import store
    from meshops.pipelines.models import StepRun, StepStatus

    now = utcnow()
    step_run = StepRun(
        id="c" * 32, run_id=finished_run, node="load_iris", step="load_iris",
        status=StepStatus.SUCCEEDED, code_digest="0" * 64, cache_key="", params={},
        started_at=now, finished_at=now,
    )  # fmt: skip
    with pipelines.ctx.db.begin() as conn:
        store.replace_step_runs(conn, [step_run])
    return step_run.id


# --- publishes and training-set builds inside a step --------------------------------------


@pytest.mark.parametrize("transport", ["embedded", "http"])
def test_a_publish_and_a_training_set_of_a_step_are_linked_to_it(
    tmp_path: Path, clean_env: pytest.MonkeyPatch, transport: str
) -> None:
    from tests.features.test_end_to_end import Ready, orders_v1

    home = Home(make_settings(tmp_path / "home"))
    with contextlib.ExitStack() as stack:
        stack.callback(home.close)
        if transport == "http":
            server = stack.enter_context(LiveServer(home))
            platform = _remote(home, server)
            clean_env.setenv("MESHOPS_URI", server.url)
            clean_env.setenv("MESHOPS_TOKEN", server.token)
        else:
            platform = Platform(home.settings, home=home)
            clean_env.setenv("MESHOPS_HOME", str(home.settings.home))
            clean_env.setenv("MESHOPS_USER", "alice")
        stack.callback(platform.close)
        ready = Ready(platform, "_s")
        ready.publish("1.0.0", orders_v1())
        ready.features.apply(ready.repo())
        params = {"product": ready.product, "version": "1.1.0", "view": ready.view}
        detail = platform.pipelines.run(f"{FLOWS}:feature_build", params, track=False)
        assert detail.run.status == RunStatus.SUCCEEDED, detail.run.error
        step_run, made = _output(detail, "publish_and_build")
        step_urn = f"meshops:steprun:{step_run}"
        have = {(e.relation, e.downstream) for e in platform.lineage.downstream(step_urn, 1)}
        assert ("produced", made["product"]) in have
        assert ("produced", made["reused"]) in have  # the same content: the version holding it
        assert ("produced", made["training_set"]) in have
        assert made["product"].endswith(":1.1.0") and made["reused"].endswith(":1.0.0")
        upstream = platform.lineage.upstream(made["training_set"], depth=3)
        assert (detail.run.urn, "contains", step_urn) in {
            (e.upstream, e.relation, e.downstream) for e in upstream
        }


# --- the step run's id, assigned up front -------------------------------------------------


@step(cache=False, retries=1, retry_backoff=0.0)
def flaky(marks: str) -> dict[str, Any]:
    """Fails on its first attempt; returns what it knew about itself on each."""
    here = current_step()
    assert here is not None
    log = Path(marks) / "flaky.log"
    with log.open("a") as fh:
        fh.write(f"{here.attempt} {here.step_run_id}\n")
    if here.attempt == 1:
        raise RuntimeError("first attempt fails")
    return {"step_run_id": here.step_run_id, "urn": here.step_run_urn, "attempt": here.attempt}


@step(cache=False)
def where_am_i() -> dict[str, Any]:
    here = current_step()
    assert here is not None
    return {"step_run_id": here.step_run_id, "run_id": here.run_id}


@pipeline
def retried(marks: str = "") -> object:
    return flaky(marks)


@pipeline
def located() -> object:
    return where_am_i()


def _output(detail: RunDetail, node: str) -> Any:
    from meshops.pipelines import materializers

    (record,) = [s for s in detail.steps if s.node == node]
    (output,) = record.outputs
    return record.id, materializers.by_name(output.materializer).load(output.inline_bytes() or b"")


def test_retries_keep_the_step_run_id_the_step_saw(tmp_path: Path) -> None:
    home = Home(make_settings(tmp_path / "home"))
    platform = Platform(home.settings, home=home)
    marks = tmp_path / "marks"
    marks.mkdir()
    try:
        detail = platform.pipelines.run(retried, {"marks": str(marks)}, track=False)
    finally:
        platform.close()
        home.close()
    recorded, seen = _output(detail, "flaky")
    attempts = [line.split() for line in (marks / "flaky.log").read_text().splitlines()]
    assert [a for a, _ in attempts] == ["1", "2"]
    assert {i for _, i in attempts} == {recorded}  # one step run, both attempts
    assert seen == {"step_run_id": recorded, "urn": f"meshops:steprun:{recorded}", "attempt": 2}


@pytest.fixture(scope="module")
def _stop_ray() -> Iterator[None]:
    """The Ray executor starts a local Ray on first use: stop it with this module."""
    yield
    ray = __import__("sys").modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


@pytest.mark.usefixtures("_stop_ray")
@pytest.mark.parametrize(
    "executor", ["inline", "process", pytest.param("ray", marks=pytest.mark.slow)]
)
def test_each_executor_gives_the_step_its_recorded_id(tmp_path: Path, executor: str) -> None:
    home = Home(make_settings(tmp_path / "home"))
    platform = Platform(home.settings, home=home, actor=Actor("alice"))
    try:
        detail = platform.pipelines.run(located, executor=executor, track=False)
    finally:
        platform.close()
        home.close()
    recorded, seen = _output(detail, "where_am_i")
    assert seen == {"step_run_id": recorded, "run_id": detail.run.id}
