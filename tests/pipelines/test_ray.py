"""The Ray executor against a local Ray started once for this module (slow to start): steps
run in Ray workers, independent steps overlap in time, and each step's resource request
(cpus, gpus, memory) is what Ray assigns to its task."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from meshops.client import Platform
from meshops.pipelines import materializers
from meshops.pipelines.models import RunDetail, RunStatus, StepStatus
from meshops.pipelines.remote import run_host
from tests.pipelines import flows
from tests.pipelines.conftest import executions

ray = pytest.importorskip("ray")

LOCAL_CPUS = 2


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    # One logical GPU (Ray accounts for it; no device is needed) so GPU requests schedule.
    ray.init(num_cpus=LOCAL_CPUS, num_gpus=1, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def step_outputs(platform: Platform, detail: RunDetail) -> dict[str, Any]:
    values = {}
    for step_run in detail.steps:
        (output,) = step_run.outputs
        data = run_host(platform.pipelines).get_artifact(output.digest)
        values[step_run.node] = materializers.by_name(output.materializer).load(data)
    return values


def overlap(a: dict[str, Any], b: dict[str, Any]) -> bool:
    return bool(a["start"] < b["end"] and b["start"] < a["end"])


def test_ray_runs_steps_in_ray_workers_and_caches(sqlite_platform: Platform, marks: Path) -> None:
    detail = sqlite_platform.pipelines.run(
        flows.two_naps, {"seconds": 0.5, "marks": str(marks)}, "ray"
    )
    assert detail.run.status == RunStatus.SUCCEEDED, detail.run.error
    pids = {line.split()[0] for n in ("first", "second") for line in (marks / f"{n}.log").open()}
    assert str(os.getpid()) not in pids  # Ray worker processes, not this one
    assert executions(marks, "first") == executions(marks, "second") == 1
    again = sqlite_platform.pipelines.run(
        flows.two_naps, {"seconds": 0.5, "marks": str(marks)}, "ray"
    )
    assert {s.status for s in again.steps} == {StepStatus.CACHED}


def test_ray_overlaps_independent_steps_and_honours_resource_requests(
    sqlite_platform: Platform, marks: Path
) -> None:
    # The light steps wait for each other (a rendezvous in `marks`): they finish only if
    # Ray runs them at the same time, however long its workers take to start.
    detail = sqlite_platform.pipelines.run(flows.ray_resources, {"rendezvous": str(marks)}, "ray")
    assert detail.run.status == RunStatus.SUCCEEDED, detail.run.error
    out = step_outputs(sqlite_platform, detail)
    light_a, light_b = out["ray_light"], out["ray_light_2"]
    wide_a, wide_b = out["ray_wide"], out["ray_wide_2"]

    # The two light steps (1 CPU each) ran at the same time, in two Ray workers.
    assert overlap(light_a, light_b), (light_a, light_b)
    assert light_a["pid"] != light_b["pid"] and os.getpid() not in {light_a["pid"], wide_a["pid"]}
    # A 2-CPU step holds the whole node: it overlaps with no other step.
    for wide in (wide_a, wide_b):
        others = [s for s in (light_a, light_b, wide_a, wide_b) if s is not wide]
        assert not any(overlap(wide, other) for other in others), out

    # What each task was assigned is exactly what its step requested.
    light_request = {"CPU": 1.0, "GPU": 0.5, "memory": float(256 * flows.MIB)}
    assert light_a["resources"] == light_b["resources"] == light_request
    assert wide_a["resources"] == wide_b["resources"] == {"CPU": 2.0}
