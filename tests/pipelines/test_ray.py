"""The Ray executor against a local Ray started once for this module (slow to start)."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from meshops.client import Platform
from meshops.pipelines.models import RunStatus, StepStatus
from tests.pipelines import flows
from tests.pipelines.conftest import executions

ray = pytest.importorskip("ray")


@pytest.fixture(scope="module", autouse=True)
def local_ray() -> Iterator[None]:
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    yield
    ray.shutdown()


def test_ray_runs_steps_in_parallel_with_resources(sqlite_platform: Platform, marks: Path) -> None:
    detail = sqlite_platform.pipelines.run(
        flows.two_naps, {"seconds": 1.0, "marks": str(marks)}, "ray"
    )
    assert detail.run.status == RunStatus.SUCCEEDED, detail.run.error
    # Steps ran in Ray worker processes, not in this one (overlap is not asserted: Ray
    # starts its second worker lazily, which on a loaded 2-core machine takes seconds).
    pids = {line.split()[0] for n in ("first", "second") for line in (marks / f"{n}.log").open()}
    assert str(os.getpid()) not in pids
    assert executions(marks, "first") == executions(marks, "second") == 1
    again = sqlite_platform.pipelines.run(
        flows.two_naps, {"seconds": 1.0, "marks": str(marks)}, "ray"
    )
    assert {s.status for s in again.steps} == {StepStatus.CACHED}
