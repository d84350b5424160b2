"""The experiment, run, compare and model pages over HTTP (in-process client) on a home of
their own: runs a trigger started say so, the home's `[metrics] directions` decide the
compare page's "best", the versions table leads with the model's comparison metric."""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import replace

import numpy as np
import pytest
from fastapi.testclient import TestClient
from sklearn.linear_model import LogisticRegression

from meshops.api.app import create_app
from meshops.client import Platform
from meshops.governance.authn import authenticate_token
from meshops.kernel import outbox
from meshops.kernel.home import Home
from meshops.kernel.steps import StepContext, enter, leave
from meshops.pipelines.service import PipelinesService
from meshops.registry.comparison import METRIC_TAG
from meshops.tracking.models import Metric
from tests.conftest import make_settings
from tests.pipelines.conftest import FLOWS, alert


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Home]:
    root = tmp_path_factory.mktemp("ml-pages")
    settings = make_settings(root / "home")
    # `custom_score` has no default direction; this home declares it.
    metrics = {"directions": {"custom_score": "max"}}
    home = Home(replace(settings, extra={**settings.extra, "metrics": metrics}))
    yield home
    home.close()


@pytest.fixture(scope="module")
def client(home: Home) -> Iterator[TestClient]:
    p = Platform(home.settings, home=home)
    try:
        token = p.governance.create_token("ml-pages").token
    finally:
        p.close()
    with TestClient(create_app(home, authenticate=authenticate_token)) as c:
        r = c.post("/ui/login", data={"token": token, "next": "/ui"}, follow_redirects=False)
        assert r.status_code == 303
        yield c


def _triggered_pipeline_run(home: Home) -> str:
    """A pipeline run queued by trigger `retrain` for a monitor alert (not executed)."""
    service = PipelinesService(home.context())
    service.create_trigger("retrain", outbox.MONITOR_ALERT, f"{FLOWS}:training", executor="inline")
    with home.db.begin() as conn:
        outbox.emit(conn, "meshops:monitor:m1", alert("m1"), "alice")
    [run_id] = service.dispatch_events().runs
    return run_id


def test_runs_a_trigger_started_say_so(home: Home, client: TestClient) -> None:
    pipeline_run = _triggered_pipeline_run(home)
    p = Platform(home.settings, home=home)
    try:
        # created inside a step of that pipeline run: linked to it by lineage
        token = enter(StepContext(run_id=pipeline_run, node="train", attempt=1, step_run_id="s1"))
        try:
            in_step = p.tracking.create_run("retraining", name="rf", capture_environment=False)
        finally:
            leave(token)
        # the pipeline's own record of the run (tagged with the pipeline run)
        tagged = p.tracking.create_run(
            "retraining",
            name="rf",
            tags={"meshops.pipeline_run": pipeline_run},
            capture_environment=False,
        )
        by_hand = p.tracking.create_run("retraining", name="manual", capture_environment=False)
    finally:
        p.close()

    for run in (in_step, tagged):
        page = client.get(f"/ui/runs/{run.id}").text
        assert "by trigger retrain (monitor.alert)" in page, run.id
    assert "by trigger" not in client.get(f"/ui/runs/{by_hand.id}").text

    table = client.get("/ui/experiments/retraining").text
    rows = dict(re.findall(r'<tr data-run="([^"]+)">(.*?)</tr>', table, re.S))
    assert "started by trigger retrain" in rows[tagged.id]  # the table reads the tag only
    assert "started by" not in rows[by_hand.id]
    # two runs named "rf": each shown with its short id
    assert (
        f"rf · {in_step.id[:8]}" in rows[in_step.id] and f"rf · {tagged.id[:8]}" in rows[tagged.id]
    )


def test_the_homes_directions_decide_best(home: Home, client: TestClient) -> None:
    p = Platform(home.settings, home=home)
    try:
        ids = []
        for score, latency in ((3.0, 20.0), (9.0, 10.0)):
            run = p.tracking.create_run("directions", capture_environment=False)
            p.tracking.log_metrics(
                run.id,
                [
                    Metric(key="custom_score", value=score, step=0, timestamp=1.7e9),
                    Metric(key="latency_ms", value=latency, step=0, timestamp=1.7e9),
                ],
            )
            ids.append(run.id)
    finally:
        p.close()
    page = client.get(f"/ui/runs/compare?run={ids[0]}&run={ids[1]}").text
    row = re.search(r'<tr data-metric="custom_score".*?</tr>', page, re.S)
    assert (
        row
        and row.group(0).count('class="num best"') == 1
        and 'data-direction="max"' in row.group(0)
    )
    best_cell = re.findall(r"<td class=\"num( best)?\"[^>]*>([^<]*)<", row.group(0))
    assert [value for marked, value in best_cell if marked] == ["9"]
    latency = re.search(r'<tr data-metric="latency_ms".*?</tr>', page, re.S)
    assert latency and "num best" not in latency.group(0)  # no direction: none marked
    # every metric was logged once: numbers in the table, no "over steps" charts
    assert "Metrics over steps" not in page


def test_versions_table_leads_with_the_models_metric(home: Home, client: TestClient) -> None:
    x, y = np.array([[0.0], [1.0], [2.0], [3.0]]), np.array([0, 0, 1, 1])
    p = Platform(home.settings, home=home)
    try:
        p.registry.create_model("scored", tags={METRIC_TAG: "log_loss"})
        for loss in (0.4, 0.3):
            metrics = {"accuracy": 0.9, "a_metric": 1.0, "b_metric": 2.0, "log_loss": loss}
            p.registry.log_model("scored", LogisticRegression().fit(x, y), metrics=metrics)
    finally:
        p.close()
    page = client.get("/ui/models/scored").text
    table = re.search(r'<table class="data" id="version-table">.*?</thead>', page, re.S)
    assert table
    headers = re.findall(r'data-metric="([^"]+)"', table.group(0))
    assert headers == ["log_loss", "accuracy", "a_metric"]  # declared, then usual, then a-z
    assert 'class="scroll-x"' in page
    assert "log_loss by version" in page  # two versions: a chart with a whole-number x axis
