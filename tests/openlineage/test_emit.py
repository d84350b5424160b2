"""OpenLineage out (issue #15): every event meshops sends for a publish, a pipeline run with
steps, a training run with its model registration and a batch scoring is valid under the
official spec and facet schemas (tests/openlineage/spec/), each run has a START and then a
COMPLETE/FAIL with the same runId, parents link a step to its pipeline run and what a step
does to that step, and the dataset one job writes is, by name, the one the next job reads.
Events go through the openlineage-python client's file transport (meshops.toml)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from meshops.client import Platform
from meshops.kernel import openlineage
from meshops.pipelines.models import RunStatus
from tests.mesh.conftest import generate_example
from tests.openlineage.conftest import NAMESPACE, Events
from tests.openlineage.spec_check import assert_valid
from tests.support.products import data_contract, data_product


def runs_of(events: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    by_run: dict[str, list[dict[str, Any]]] = {}
    for event in events:
        by_run.setdefault(event["run"]["runId"], []).append(event)
    return by_run


def check_lifecycle(events: list[dict[str, Any]], end: str = "COMPLETE") -> dict[str, Any]:
    """One run: valid events, START first, then exactly one `end`; returns the end event."""
    assert events, "no event"
    for event in events:
        assert_valid(event)
    assert [e["eventType"] for e in events] == ["START", end], [e["eventType"] for e in events]
    assert len({e["run"]["runId"] for e in events}) == 1
    assert len({(e["job"]["namespace"], e["job"]["name"]) for e in events}) == 1
    assert events[0]["eventTime"] <= events[1]["eventTime"]
    return events[-1]


def parent_of(event: dict[str, Any]) -> tuple[str, str] | None:
    parent = event["run"].get("facets", {}).get("parent")
    return (parent["job"]["name"], parent["run"]["runId"]) if parent else None


def dataset_names(event: dict[str, Any], side: str) -> set[tuple[str, str]]:
    return {(d["namespace"], d["name"]) for d in event.get(side) or []}


# --- publishes ---------------------------------------------------------------------------


def test_publish_chain_names_line_up(ol_home: tuple[Platform, Events], tmp_path: Path) -> None:
    platform, events = ol_home
    retail = generate_example(tmp_path / "retail", rows=300)
    for folder in ("sales_orders", "customers_profiles", "sales_customer_revenue"):
        platform.mesh.publish(retail / folder)

    orders = check_lifecycle(events.of_job("sales.orders.build"))
    profiles = check_lifecycle(events.of_job("customers.profiles.build"))
    revenue = check_lifecycle(events.of_job("sales.customer_revenue.build"))

    # Files: namespace `file`, the absolute path (the glob as the build read it).
    data = (retail / "data").resolve()
    assert dataset_names(orders, "inputs") == {("file", str(data / "orders*.csv"))}
    assert dataset_names(profiles, "inputs") == {("file", str(data / "customers.parquet"))}
    # One name per port, no version in it; the next product reads exactly those names.
    assert dataset_names(orders, "outputs") == {(NAMESPACE, "sales.orders.orders")}
    written = dataset_names(orders, "outputs") | dataset_names(profiles, "outputs")
    assert dataset_names(revenue, "inputs") == written
    assert all(not parent_of(e) for e in (orders, profiles, revenue))

    out = orders["outputs"][0]
    assert out["facets"]["version"]["datasetVersion"] == "1.0.0"
    assert out["facets"]["dataSource"] == {**out["facets"]["dataSource"], "name": NAMESPACE}
    assert [f["name"] for f in out["facets"]["schema"]["fields"]][:2] == [
        "order_id",
        "customer_id",
    ]
    assert out["outputFacets"]["outputStatistics"]["rowCount"] > 0
    assertions = out["facets"]["dataQualityAssertions"]["assertions"]
    assert assertions and all(a["success"] for a in assertions)
    assert any(a.get("column") == "order_id" for a in assertions)
    read = revenue["inputs"]
    assert {d["facets"]["version"]["datasetVersion"] for d in read} == {"1.0.0"}

    # Identical content again: nothing new is written, the run ends ABORT.
    before = len(events.all())
    platform.mesh.publish(retail / "sales_orders")
    again = events.all()[before:]
    check_lifecycle(again, end="ABORT")


def test_failed_publish_sends_fail(ol_home: tuple[Platform, Events]) -> None:
    platform, events = ol_home
    contract = data_contract(
        "nums-contract",
        "nums",
        [{"name": "n", "logicalType": "integer", "required": True}],
        quality=[{"metric": "rowCount", "mustBeGreaterThan": 10}],
    )
    with pytest.raises(Exception, match="contract test"):
        platform.mesh.publish_arrow(
            data_product("lab.nums", "nums-contract", port="nums"),
            {"nums": contract},
            {"nums": pa.table({"n": [1, 2, 3]})},
        )
    fail = check_lifecycle(events.of_job("lab.nums.build"), end="FAIL")
    assert "contract test" in fail["run"]["facets"]["errorMessage"]["message"]
    assert fail["run"]["facets"]["errorMessage"]["programmingLanguage"] == "PYTHON"


def test_namespace_defaults_to_the_home(tmp_path: Path) -> None:
    from tests.conftest import make_settings

    settings = make_settings(tmp_path / "home")
    first = openlineage.namespace(settings)
    assert first.startswith("meshops://home-")
    assert openlineage.namespace(make_settings(tmp_path / "home")) == first
    assert openlineage.namespace(make_settings(tmp_path / "other")) != first


# --- a pipeline run with steps -------------------------------------------------------------


def test_pipeline_run_steps_and_what_they_create(ol_home: tuple[Platform, Events]) -> None:
    from tests.openlineage import flows

    platform, events = ol_home
    detail = platform.pipelines.run(flows.points_training, flows.parameters(), track=False)
    assert detail.run.status == RunStatus.SUCCEEDED, detail.run.error

    run = check_lifecycle(events.of_job("points_training"))
    run_id = run["run"]["runId"]
    steps = {s.node: s for s in detail.steps}
    for node, step_run in steps.items():
        end = check_lifecycle(events.of_job(f"points_training.{node}"))
        assert end["run"]["runId"] == openlineage.run_id_of(step_run.id)
        assert parent_of(end) == ("points_training", run_id)  # step -> its pipeline run
    publish_step = (f"points_training.{steps['publish_points'].node}",
                    openlineage.run_id_of(steps["publish_points"].id))  # fmt: skip
    train_step = ("points_training.train", openlineage.run_id_of(steps["train"].id))

    # What the steps did names the step as its parent, the pipeline run as the root.
    publish = check_lifecycle(events.of_job("lab.points.build"))
    assert parent_of(publish) == publish_step
    assert publish["run"]["facets"]["parent"]["root"]["run"]["runId"] == run_id
    tracking = check_lifecycle(events.of_job("tracking.ol-training"))
    assert parent_of(tracking) == train_step
    registration = check_lifecycle(events.of_job("registry.points"))
    assert parent_of(registration) == train_step
    assert dataset_names(registration, "outputs") == {(NAMESPACE, "model.points")}
    assert registration["outputs"][0]["facets"]["version"]["datasetVersion"] == "1"
    # The registration's input (the tracking run's logged input) is the product the
    # publish step wrote: same namespace, same name.
    assert dataset_names(publish, "outputs") == {(NAMESPACE, "lab.points.points")}
    assert dataset_names(registration, "inputs") == dataset_names(publish, "outputs")
    assert dataset_names(tracking, "inputs") == dataset_names(publish, "outputs")  # log_input


def test_failing_pipeline_sends_fail_and_abort(ol_home: tuple[Platform, Events]) -> None:
    from tests.openlineage import flows

    platform, events = ol_home
    detail = platform.pipelines.run(flows.failing, {}, track=False)
    assert detail.run.status == RunStatus.FAILED
    run = check_lifecycle(events.of_job("failing"), end="FAIL")
    assert "broken on purpose" in run["run"]["facets"]["errorMessage"]["message"]
    check_lifecycle(events.of_job("failing.fine"))
    broken = check_lifecycle(events.of_job("failing.broken"), end="FAIL")
    assert "RuntimeError" in broken["run"]["facets"]["errorMessage"]["message"]
    check_lifecycle(events.of_job("failing.never"), end="ABORT")  # skipped downstream
    for name in ("failing.fine", "failing.broken", "failing.never"):
        assert parent_of(events.of_job(name)[0]) == ("failing", run["run"]["runId"])


# --- a training run, its registration, and a batch scoring -------------------------------


def test_training_run_and_registration(ol_home: tuple[Platform, Events]) -> None:
    from tests.serving.helpers import fitted, training_frame

    platform, events = ol_home
    frame, _ = training_frame()
    with platform.tracking.start_run("churn-training", capture_environment=False) as run:
        run.log_metric("accuracy", 0.9)
    version = platform.registry.log_model("churn", fitted(1), input_example=frame.head(3),
                                          run_id=run.id)  # fmt: skip
    training = check_lifecycle(events.of_job("tracking.churn-training"))
    assert training["run"]["runId"] == openlineage.run_id_of(run.id)
    assert training["job"]["facets"]["jobType"]["jobType"] == "TRAINING"
    registration = check_lifecycle(events.of_job("registry.churn"))
    assert registration["outputs"][0]["name"] == "model.churn"
    assert registration["outputs"][0]["facets"]["version"]["datasetVersion"] == str(version.version)

    with pytest.raises(RuntimeError), platform.tracking.start_run("churn-training") as failed:
        raise RuntimeError("diverged")
    fail = check_lifecycle(runs_of(events.of_job("tracking.churn-training"))[
        openlineage.run_id_of(failed.id)], end="FAIL")  # fmt: skip
    assert "diverged" in fail["run"]["facets"]["errorMessage"]["message"]


def test_batch_scoring(ol_home: tuple[Platform, Events]) -> None:
    from tests.features.helpers import publish
    from tests.serving.helpers import FEATURES, record, register_churn

    platform, events = ol_home
    register_churn(platform)
    rows = [record(100 + i) for i in range(20)]
    table = pa.table(
        {"customer_id": list(range(20)), **{f: [r[f] for r in rows] for f in FEATURES}}
    )
    publish(platform, "sales.customers", "1.0.0", table)
    scored = platform.serving.batch_score("churn@champion", "sales.customers", "1.0.0",
                                          output="sales.scores")  # fmt: skip

    (source,) = [e for e in events.all() if e["job"]["name"] == "sales.customers.build"
                 and e["eventType"] == "COMPLETE"]  # fmt: skip
    scoring = check_lifecycle(events.of_job("sales.scores.batch_score"))
    assert scoring["job"]["facets"]["jobType"]["jobType"] == "SCORING"
    inputs = dataset_names(scoring, "inputs")
    assert dataset_names(source, "outputs") <= inputs  # the scored port, by its name
    assert (NAMESPACE, "model.churn") in inputs
    (out,) = scoring["outputs"]
    assert (out["namespace"], out["name"]) == (NAMESPACE, f"sales.scores.{scored.ports[0].name}")
    lineage = out["facets"]["columnLineage"]["fields"]
    (read,) = [d for d in scoring["inputs"] if d["name"] != "model.churn"]
    assert lineage["customer_id"]["inputFields"] == [
        {
            "namespace": NAMESPACE,
            "name": read["name"],
            "field": "customer_id",
            "transformations": [{"type": "DIRECT", "subtype": "IDENTITY"}],
        }
    ]
    assert "prediction" not in lineage  # not a copy of one input column
    # The publish of the predictions is a child of the scoring run, writing the same port.
    publish_run = check_lifecycle(events.of_job("sales.scores.build"))
    assert parent_of(publish_run) == ("sales.scores.batch_score", scoring["run"]["runId"])
    assert dataset_names(publish_run, "outputs") == {(out["namespace"], out["name"])}


def test_a_queued_run_on_a_worker(ol_home: tuple[Platform, Events]) -> None:
    """The production path: a queued run, claimed by a worker (START when claimed), its
    steps recorded by the engine on the worker, the end when it finishes."""
    from meshops.pipelines.worker import Worker

    platform, events = ol_home
    run = platform.pipelines.submit("tests.openlineage.flows:failing", {}, executor="inline")
    assert not events.of_job("failing")  # queued: not started yet
    assert Worker(platform.pipelines).serve(max_runs=1, idle_exit=True) == 1
    end = check_lifecycle(events.of_job("failing"), end="FAIL")
    assert end["run"]["runId"] == openlineage.run_id_of(run.id)
    assert end["job"]["facets"]["jobType"]["jobType"] == "PIPELINE"
    check_lifecycle(events.of_job("failing.broken"), end="FAIL")
