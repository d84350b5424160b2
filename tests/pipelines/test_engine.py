"""Definition, materializers, cache, retries, timeouts, resume and parallelism, over the
embedded and HTTP transports and on SQLite and PostgreSQL (the `platform` fixture)."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from meshops.client import Platform
from meshops.kernel.errors import InvalidInput
from meshops.pipelines.dag import plan
from meshops.pipelines.models import RunStatus, StepStatus
from tests.pipelines import flows
from tests.pipelines.conftest import FLOWS, executions


def test_dag_comes_from_data_dependencies() -> None:
    graph = flows.training.build({"n": 10, "marks": "/tmp"})
    assert set(graph.nodes) == {"load", "split", "train", "evaluate", "to_arrow", "column_sum"}
    assert graph.nodes["train"].deps == ("split",)
    assert graph.nodes["train"].params == {"c": 1.0, "marks": "/tmp"}
    assert graph.nodes["evaluate"].inputs["frame"].index == 1  # second output of split
    planned = plan(graph)
    assert planned.levels[0] == ["load"]
    assert planned.downstream(["split"]) == {"split", "train", "evaluate"}


def test_bad_parameters_are_refused_before_running() -> None:
    with pytest.raises(InvalidInput) as info:
        flows.training.build({"n": "many"})
    assert info.value.detail["field"] == "n"
    with pytest.raises(InvalidInput, match="nope") as info:
        flows.training.build({"nope": 1})
    assert "parameters are" in info.value.detail["fix"]


def test_run_materializes_every_kind_and_caches(platform: Platform, marks: Path) -> None:
    params = {"n": 120, "marks": str(marks)}
    first = platform.pipelines.run(flows.training, params)
    assert first.run.status == RunStatus.SUCCEEDED, first.run.error
    steps = {s.node: s for s in first.steps}
    assert {n: s.status for n, s in steps.items()} == dict.fromkeys(steps, StepStatus.SUCCEEDED)
    kinds = {o.materializer for s in first.steps for o in s.outputs}
    assert kinds == {"pandas", "sklearn", "json", "arrow", "numpy"}
    assert [o.name for o in steps["split"].outputs] == ["output_0", "output_1"]
    assert steps["train"].inputs == {"frame": steps["split"].outputs[0].digest}

    again = platform.pipelines.run(flows.training, params)
    cached = {s.node: s for s in again.steps}
    assert {s.status for s in again.steps} == {StepStatus.CACHED}
    assert all(cached[n].cache_hit_of == steps[n].id for n in steps)
    assert cached["evaluate"].outputs == steps["evaluate"].outputs
    assert executions(marks, "load") == 1 and executions(marks, "train") == 1

    # A new parameter misses for the step that takes it and for what consumes its output.
    changed = platform.pipelines.run(flows.training, {**params, "c": 0.1})
    status = {s.node: s.status for s in changed.steps}
    assert status["load"] == status["split"] == StepStatus.CACHED
    assert status["train"] == status["evaluate"] == StepStatus.SUCCEEDED
    assert executions(marks, "train") == 2

    edges = platform.lineage.downstream(steps["train"].urn, depth=1)
    assert {e.downstream for e in edges} == {f"meshops:artifact:{steps['train'].outputs[0].digest}"}


def test_step_is_retried_with_backoff(platform: Platform, marks: Path) -> None:
    detail = platform.pipelines.run(flows.retrying, {"marks": str(marks), "succeed_on": 2})
    assert detail.run.status == RunStatus.SUCCEEDED
    assert detail.steps[0].attempts == 2
    assert executions(marks, "flaky") == 2


def test_step_failing_every_attempt_fails_the_run(platform: Platform, marks: Path) -> None:
    detail = platform.pipelines.run(flows.retrying, {"marks": str(marks), "succeed_on": 10})
    assert detail.run.status == RunStatus.FAILED
    assert "attempt 3 fails on purpose" in (detail.steps[0].error or "")
    assert detail.steps[0].attempts == 3  # the first try and two retries
    assert executions(marks, "flaky") == 3


@pytest.mark.parametrize("executor", ["inline", "process"])
def test_step_timeout_interrupts_the_step(sqlite_platform: Platform, executor: str) -> None:
    start = time.monotonic()
    detail = sqlite_platform.pipelines.run(flows.timing_out, {"seconds": 20.0}, executor)
    assert time.monotonic() - start < 10
    assert detail.run.status == RunStatus.FAILED
    assert "StepTimeout" in (detail.steps[0].error or "")


def test_resume_reruns_only_the_failure_and_its_dependents(platform: Platform, marks: Path) -> None:
    (marks / "fail").touch()
    failed = platform.pipelines.run(f"{FLOWS}:resumable", {"marks": str(marks)})
    status = {s.node: s.status for s in failed.steps}
    assert failed.run.status == RunStatus.FAILED
    assert status == {
        "source": StepStatus.SUCCEEDED,
        "maybe_fail": StepStatus.FAILED,
        "after": StepStatus.SKIPPED,
        "independent": StepStatus.SUCCEEDED,
    }
    logs = platform.pipelines.logs(failed.run.id, "maybe_fail")
    assert set(logs) == {"maybe_fail"}

    (marks / "fail").unlink()
    resumed = platform.pipelines.resume(failed.run.id, local=True)
    assert resumed.status == RunStatus.SUCCEEDED and resumed.resumed_from == failed.run.id
    steps = {s.node: s for s in platform.pipelines.get_run(resumed.id).steps}
    assert steps["source"].status == steps["independent"].status == StepStatus.REUSED
    assert steps["source"].cache_hit_of == {s.node: s for s in failed.steps}["source"].id
    assert steps["maybe_fail"].status == steps["after"].status == StepStatus.SUCCEEDED
    assert [executions(marks, n) for n in ("source", "independent", "maybe_fail", "after")] == [
        1,
        1,
        2,
        1,
    ]


def test_process_pool_runs_independent_steps_in_parallel(
    sqlite_platform: Platform, marks: Path
) -> None:
    detail = sqlite_platform.pipelines.run(
        flows.two_naps, {"seconds": 1.0, "marks": str(marks)}, "process", max_workers=2
    )
    assert detail.run.status == RunStatus.SUCCEEDED, detail.run.error
    naps = sorted((s for s in detail.steps if s.step == "nap"), key=lambda s: s.started_at)  # type: ignore[arg-type,return-value]
    assert len(naps) == 2
    first, second = naps
    assert first.finished_at and second.started_at
    assert second.started_at < first.finished_at  # the two sleeps overlapped
    assert executions(marks, "first") == executions(marks, "second") == 1


def test_unknown_executor_and_reference_are_explained(platform: Platform) -> None:
    with pytest.raises(InvalidInput, match="unknown executor"):
        platform.pipelines.run(flows.retrying, {}, "gpu-farm")
    with pytest.raises(InvalidInput) as info:
        platform.pipelines.submit("not-a-reference")
    assert "fix" in info.value.detail


def test_reproduce_reports_matching_digests(sqlite_platform: Platform, marks: Path) -> None:
    original = sqlite_platform.pipelines.run(f"{FLOWS}:training", {"marks": str(marks)})
    # The shared repository's working tree changes under the test (it is never clean), so
    # the checkout of a recorded commit is tested in test_reproduce.py, on a repository of
    # its own; here the current code reruns.
    report = sqlite_platform.pipelines.reproduce(original.run.id, use_current_code=True)
    assert report.matches, report.steps
    assert report.code is not None and report.code.source == "current"
    assert executions(marks, "train") == 2  # really recomputed, not a cache hit
    rerun = sqlite_platform.pipelines.get_run(report.rerun)
    assert rerun.run.reproduces == original.run.id
