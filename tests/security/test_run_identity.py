"""A pipeline run acts with its submitter's authority, not the worker's (the confused
deputy of docs/security.md): a principal without a grant cannot make a worker read a
product for it by queueing a run, while a granted one's run reads, recorded as its own
usage. Runs of schedules and triggers act as the principal who created them.

The worker here is embedded on the served home (the in-process Pipelines service, acting as
the home's local user, the platform admin), like `meshops worker` started on the home."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta

import pytest

from meshops.client import Platform
from meshops.kernel.auth import Actor
from meshops.kernel.db import utcnow
from meshops.pipelines.models import RunDetail, RunStatus
from meshops.pipelines.service import PipelinesService
from meshops.pipelines.worker import Worker
from tests.security.conftest import PORT, PRODUCT, SecurityHome

REF = "tests.pipelines.governed_flows:read_governed"
EXECUTORS = ["inline", "process", pytest.param("ray", marks=pytest.mark.slow)]


@pytest.fixture(scope="module", autouse=True)
def _stop_ray() -> Iterator[None]:
    """The Ray executor starts a local Ray on first use: stop it with this module."""
    yield
    ray = __import__("sys").modules.get("ray")
    if ray is not None and ray.is_initialized():
        ray.shutdown()


def _principal(sec: SecurityHome, name: str, role: str, granted: bool) -> str:
    if name not in sec.tokens:
        sec.new_user(name, role)
        if granted:
            sec.admin().grant_access(PRODUCT, PORT, name, purpose="run identity suite")
    return name


def _as(sec: SecurityHome, name: str) -> PipelinesService:
    return PipelinesService(sec.home.context(Actor(name)))


def _embedded_worker(sec: SecurityHome) -> Worker:
    """`meshops worker` on the home: its Pipelines service acts as the home's local user."""
    platform = Platform(sec.settings, home=sec.home)
    return Worker(platform.pipelines)


def _work(worker: Worker, run_id: str) -> RunDetail:
    """Run `run_id` on `worker`; other queued runs of the shared world (left queued by other
    tests, never meant to run) are cancelled first, so the worker claims this one."""
    admin = worker.pipelines
    for queued in admin.list_runs(status="queued", limit=500):
        if queued.id != run_id:
            admin.cancel(queued.id)
    detail = worker.work_one()
    assert detail is not None and detail.run.id == run_id
    return detail


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_run_of_a_principal_without_a_grant_reads_nothing(
    sec: SecurityHome, executor: str
) -> None:
    name = _principal(sec, "run-ds-none", "data_scientist", granted=False)
    before = sec.reads(name)
    run = _as(sec, name).submit(REF, {"where": str(sec.settings.home)}, executor)
    assert run.created_by == name
    detail = _work(_embedded_worker(sec), run.id)
    assert detail.run.status == RunStatus.FAILED, detail.run
    (step,) = detail.steps
    assert step.error is not None and "Forbidden" in step.error, step.error
    assert f"{name} has no" in step.error or name in step.error, step.error
    assert sec.reads(name) == before


@pytest.mark.parametrize("executor", EXECUTORS)
def test_a_run_of_a_granted_principal_reads_as_that_principal(
    sec: SecurityHome, executor: str
) -> None:
    name = _principal(sec, "run-ds-granted", "data_scientist", granted=True)
    before, admin_before = sec.reads(name), sec.reads("alice")
    run = _as(sec, name).submit(REF, {"where": str(sec.settings.home)}, executor)
    worker = _embedded_worker(sec)
    detail = _work(worker, run.id)
    assert detail.run.status == RunStatus.SUCCEEDED, detail.run.error
    (step,) = detail.steps
    (output,) = step.outputs
    from meshops.pipelines import materializers

    value = materializers.by_name(output.materializer).load(output.inline_bytes() or b"")
    assert value == {"actor": name, "rows": 8}
    assert sec.reads(name) == before + 1  # the usage is the submitter's ...
    assert sec.reads("alice") == admin_before  # ... not the worker's


def test_a_scheduled_run_acts_as_the_schedules_creator(sec: SecurityHome) -> None:
    """The worker fires the schedule, but the run is its creator's (here: no grant)."""
    name = _principal(sec, "run-de-none", "data_engineer", granted=False)
    schedule = f"run-identity-{utcnow().timestamp():.0f}"
    _as(sec, name).create_schedule(
        schedule, "* * * * *", REF, {"where": str(sec.settings.home)}, "inline"
    )
    worker = _embedded_worker(sec)
    try:
        fired = worker.pipelines.fire_schedules(utcnow() + timedelta(minutes=2))
        mine = [
            r for r in fired if worker.pipelines.get_run(r).run.origin.get("schedule") == schedule
        ]
        assert len(mine) == 1
        detail = _work(worker, mine[0])
    finally:
        _as(sec, name).delete_schedule(schedule)
    assert detail.run.created_by == name
    assert detail.run.status == RunStatus.FAILED
    assert "Forbidden" in (detail.steps[0].error or "")


def test_the_submitter_comes_from_the_caller_never_the_body(sec: SecurityHome) -> None:
    """Over HTTP the body cannot name who the run is for: extra fields are not a submitter."""
    name = _principal(sec, "run-ds-none", "data_scientist", granted=False)
    body = {"ref": REF, "params": {}, "executor": "inline", "created_by": "alice"}
    answer = sec.client(name).post("/v1/pipelines/runs", json=body)
    assert answer.status_code == 201, answer.text
    assert answer.json()["created_by"] == name
    _as(sec, "alice").cancel(answer.json()["id"])
