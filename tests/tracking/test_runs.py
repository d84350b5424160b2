"""Experiments, runs, params, metrics, tags, artifacts and inputs over every transport."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from meshops.client import Platform
from meshops.kernel.errors import Conflict, InvalidInput, NotFound
from meshops.tracking.models import DatasetInput, Metric, RunStatus


def test_run_lifecycle_params_metrics_tags(platform: Platform) -> None:
    tracking = platform.tracking
    with tracking.start_run(experiment="churn", name="baseline", tags={"team": "ml"}) as run:
        run.log_params({"model": "rf", "depth": 7})
        run.log_param("lr", 0.1)
        for step in range(5):
            run.log_metric("loss", 1.0 / (step + 1), step=step)
        run.log_metrics({"acc": 0.9, "f1": float("nan")}, step=4)
        run.set_tag("stage", "dev")
    got = tracking.get_run(run.id)
    assert got.status == RunStatus.FINISHED
    assert got.end_time is not None and got.end_time >= got.start_time
    assert got.name == "baseline"
    assert got.params == {"model": "rf", "depth": "7", "lr": "0.1"}
    assert got.metrics["loss"] == pytest.approx(0.2)
    assert got.metrics["acc"] == pytest.approx(0.9)
    assert math.isnan(got.metrics["f1"])
    assert got.tags["team"] == "ml" and got.tags["stage"] == "dev"
    assert tracking.get_experiment("churn").id == got.experiment_id
    history = tracking.metric_history(run.id, "loss")
    assert [m.step for m in history] == [0, 1, 2, 3, 4]
    assert [m.value for m in history] == pytest.approx([1, 0.5, 1 / 3, 0.25, 0.2])


def test_environment_is_captured_unless_disabled(platform: Platform) -> None:
    tracking = platform.tracking
    run = tracking.create_run("env")
    assert run.tags["meshops.python.version"].count(".") == 2
    assert len(run.tags["meshops.packages.sha256"]) == 64
    assert run.tags["meshops.host"]
    # The tests run inside the project's git repository.
    assert len(run.tags["meshops.git.commit"]) == 40
    assert run.tags["meshops.git.dirty"] in ("true", "false")
    listing = tracking.read_artifact(run.id, "meshops/environment/packages.txt")
    assert b"sqlalchemy==" in listing.lower()
    bare = tracking.create_run("env", capture_environment=False)
    assert not any(k.startswith("meshops.") for k in bare.tags)


def test_failed_block_ends_failed_with_the_error(platform: Platform) -> None:
    tracking = platform.tracking
    with pytest.raises(ZeroDivisionError), tracking.start_run("fails") as run:
        run.log_metric("x", 1.0)
        _ = 1 / 0
    got = tracking.get_run(run.id)
    assert got.status == RunStatus.FAILED
    assert got.error is not None and "ZeroDivisionError" in got.error
    # metrics logged before the error were flushed
    assert got.metrics == {"x": 1.0}


def test_parent_child_runs_and_lineage_of_inputs(platform: Platform) -> None:
    tracking = platform.tracking
    dataset = "meshops:dataproduct:sales.orders:1.0.0"
    with tracking.start_run("nested", capture_environment=False) as parent:
        parent.log_input(DatasetInput(urn=dataset, digest="ab" * 32, name="orders"))
        with tracking.start_run("nested", parent_run_id=parent.id) as child:
            child.log_metric("m", 2.0)
    got = tracking.get_run(child.id)
    assert got.parent_run_id == parent.id
    assert tracking.get_run(parent.id).inputs[0].urn == dataset
    downstream = platform.lineage.downstream(dataset, depth=2)
    assert {e.downstream for e in downstream} >= {parent.urn, child.run.urn}
    page = tracking.search_runs(["nested"], filter=f"parent_run_id = '{parent.id}'")
    assert [r.id for r in page.runs] == [child.id]


def test_artifacts_files_and_folders(platform: Platform, tmp_path: Path) -> None:
    tracking = platform.tracking
    folder = tmp_path / "model"
    (folder / "sub").mkdir(parents=True)
    (folder / "weights.bin").write_bytes(b"\x00\x01" * 100)
    (folder / "sub" / "config.json").write_text('{"a": 1}')
    single = tmp_path / "notes.txt"
    single.write_text("hello")
    with tracking.start_run("art", capture_environment=False) as run:
        logged = run.log_artifact(folder, "model")
        run.log_artifact(single)
    assert sorted(a.path for a in logged) == ["model/sub/config.json", "model/weights.bin"]
    listed = tracking.list_artifacts(run.id)
    assert [a.path for a in listed] == ["model/sub/config.json", "model/weights.bin", "notes.txt"]
    assert {a.size for a in listed} == {8, 200, 5}
    out = tracking.download_artifacts(run.id, "model", tmp_path / "dl")
    assert (out / "weights.bin").read_bytes() == b"\x00\x01" * 100
    assert (out / "sub" / "config.json").read_text() == '{"a": 1}'
    one = tracking.download_artifacts(run.id, "notes.txt", tmp_path / "dl2")
    assert one.read_text() == "hello"
    with pytest.raises(NotFound):
        tracking.download_artifacts(run.id, "missing", tmp_path / "dl3")


def test_log_metrics_batch_and_latest_value_rule(platform: Platform) -> None:
    tracking = platform.tracking
    run = tracking.create_run("batch", capture_environment=False)
    tracking.log_metrics(
        run.id,
        [
            Metric(key="a", value=3.0, step=2, timestamp=10.0),
            Metric(key="a", value=1.0, step=1, timestamp=20.0),  # older step: not latest
            Metric(key="b", value=5.0, step=0, timestamp=1.0),
        ],
    )
    tracking.log_metrics(run.id, [Metric(key="a", value=9.0, step=0, timestamp=99.0)])
    assert tracking.get_run(run.id).metrics == {"a": 3.0, "b": 5.0}
    assert len(tracking.metric_history(run.id, "a")) == 3


def test_experiments_create_list_and_conflict(platform: Platform) -> None:
    tracking = platform.tracking
    exp = tracking.create_experiment("fraud", "fraud models", {"owner": "risk"})
    assert exp.tags == {"owner": "risk"}
    assert tracking.get_experiment(exp.id).name == "fraud"
    with pytest.raises(Conflict):
        tracking.create_experiment("fraud")
    assert "fraud" in [e.name for e in tracking.list_experiments()]


def test_bad_input_is_refused_with_the_field(platform: Platform) -> None:
    tracking = platform.tracking
    with pytest.raises(NotFound) as info:
        tracking.get_run("0" * 32)
    assert info.value.detail["field"] == "run_id"
    with pytest.raises(NotFound):
        tracking.get_experiment("nope")
    with pytest.raises(NotFound):
        tracking.create_run("x", parent_run_id="f" * 32, capture_environment=False)
    run = tracking.create_run("bad", capture_environment=False)
    with pytest.raises(InvalidInput) as info:
        tracking.log_params(run.id, {"bad key!": 1})
    assert info.value.detail["field"] == "param"
    with pytest.raises(InvalidInput) as info:
        tracking.log_params(run.id, {"long": "x" * 6001})
    assert info.value.detail["field"] == "param.long"
    with pytest.raises(InvalidInput):
        tracking.set_tags(run.id, {"t": "y" * 8001})
    with pytest.raises(InvalidInput):
        tracking.log_metric_rows([(run.id, "../etc", 1.0, 0, 0.0)])
    with pytest.raises(InvalidInput):
        tracking.log_metric_rows([(run.id, "ok", "not-a-number", 0, 0.0)])
    with pytest.raises(InvalidInput):
        tracking.create_run("", capture_environment=False)
    with pytest.raises(InvalidInput):
        tracking.end_run(run.id, "DONE")
    tracking.log_params(run.id, {"p": "1"})
    with pytest.raises(Conflict):
        tracking.log_params(run.id, {"p": "2"})
    # Nothing half-written: the failed calls left no params or tags behind.
    got = tracking.get_run(run.id)
    assert got.params == {"p": "1"} and got.tags == {}


def test_logging_to_an_ended_run_conflicts(platform: Platform, tmp_path: Path) -> None:
    tracking = platform.tracking
    with tracking.start_run("ended", capture_environment=False) as run:
        pass
    with pytest.raises(Conflict):
        tracking.log_params(run.id, {"a": 1})
    with pytest.raises(Conflict):
        tracking.log_metrics(run.id, [Metric(key="a", value=1.0, timestamp=0.0)])
    with pytest.raises(Conflict):
        run.log_metric("a", 1.0)
    with pytest.raises(Conflict):
        tracking.end_run(run.id)
    (tmp_path / "f").write_text("x")
    with pytest.raises(Conflict):
        tracking.log_artifact(run.id, tmp_path / "f")
    tracking.set_tags(run.id, {"reviewed": "yes"})  # tags annotate ended runs
    assert tracking.get_run(run.id).tags == {"reviewed": "yes"}
