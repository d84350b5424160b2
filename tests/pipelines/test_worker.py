"""The durable queue with real worker processes: SIGKILL and lease expiry, schedules and
outbox triggers, on SQLite and PostgreSQL (the `home` fixture)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select

from meshops.kernel import outbox
from meshops.kernel.home import Home
from meshops.kernel.tables import outbox as outbox_table
from meshops.mesh.events import DataProductPublished
from meshops.pipelines.models import RunStatus
from meshops.pipelines.service import PipelinesService
from meshops.pipelines.worker import Worker, WorkerOptions, wait_for
from tests.pipelines.conftest import FLOWS, alert, executions

LEASE = 2.0


def start_worker(home: Home, name: str) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "MESHOPS_HOME": str(home.settings.home),
        "MESHOPS_DATABASE_URL": home.settings.database_url,
        "MESHOPS_USER": home.settings.user,
    }
    command = [sys.executable, "-m", "meshops.cli.main", "worker", "--lease", str(LEASE)]
    return subprocess.Popen(
        [*command, "--poll", "0.2", "--name", name],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_until(condition: object, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(0.05)


def test_killed_worker_run_completes_exactly_once(home: Home, marks: Path) -> None:
    service = PipelinesService(home.context())
    params = {"marks": str(marks), "seconds": 3.0}
    run = service.submit(f"{FLOWS}:long_running", params, executor="inline")
    first = start_worker(home, "doomed")
    others: list[subprocess.Popen[bytes]] = []
    try:
        wait_until(lambda: executions(marks, "long_start") == 1)
        first.send_signal(signal.SIGKILL)
        first.wait()
        # Two workers compete for the orphaned run once its lease expires.
        others = [start_worker(home, "rescuer-a"), start_worker(home, "rescuer-b")]
        detail = wait_for(service, run.id, timeout=60)
    finally:
        for proc in [first, *others]:
            proc.kill()
            proc.wait()
    assert detail.run.status == RunStatus.SUCCEEDED, detail.run.error
    assert detail.run.claims >= 2  # the dead worker's claim, then a rescuer's
    assert executions(marks, "long_start") == 2  # the interrupted step ran again
    assert executions(marks, "long_end") == 1
    assert executions(marks, "final") == 1
    with home.db.read() as conn:
        finished = conn.execute(
            select(func.count())
            .select_from(outbox_table)
            .where(
                outbox_table.c.topic == outbox.PIPELINE_RUN_FINISHED,
                outbox_table.c.subject == run.urn,
            )
        ).scalar_one()
    assert finished == 1


def test_claims_are_exclusive_and_leases_expire(home: Home) -> None:
    service = PipelinesService(home.context())
    run = service.submit(f"{FLOWS}:on_event", {"tag": "x"})
    claimed = service.claim_run("w1", lease_seconds=0.5)
    assert claimed is not None and claimed.id == run.id
    assert service.claim_run("w2", lease_seconds=0.5) is None  # held
    time.sleep(0.7)
    stolen = service.claim_run("w2", lease_seconds=30)
    assert stolen is not None and stolen.claims == 2 and stolen.lease_owner == "w2"
    assert not service.renew_lease(run.id, "w1", 30)  # the old holder lost it


def test_outbox_events_fire_triggers_with_filters_and_limits(home: Home, marks: Path) -> None:
    service = PipelinesService(home.context())
    params = {"marks": str(marks), "tag": "sales"}
    service.create_trigger(
        "on-sales",
        outbox.DATAPRODUCT_PUBLISHED,
        f"{FLOWS}:on_event",
        params,
        match={"product": "sales.x"},
        executor="inline",
    )
    service.create_trigger(
        "on-critical",
        outbox.MONITOR_ALERT,
        f"{FLOWS}:on_event",
        {"marks": str(marks), "tag": "alert"},
        expression='event.payload.severity == "critical"',
        max_concurrent=1,
        executor="inline",
    )
    with home.db.begin() as conn:
        for domain in ("sales", "hr"):
            urn = f"meshops:dataproduct:{domain}.x:1"
            published = DataProductPublished(
                product=f"{domain}.x", version="1", urn=urn, digest="d"
            )
            outbox.emit(conn, urn, published, "alice")
        for severity in ("warning", "critical", "critical"):
            outbox.emit(conn, "meshops:monitor:m1", alert("m1", severity), "alice")
    report = service.dispatch_events()
    assert report.events == 5
    assert len(report.runs) == 2  # sales publish, first critical alert
    assert report.pending == 1  # the second critical alert waits: limit 1, a run is queued
    assert report.skipped == 0  # nothing is lost
    assert service.dispatch_events().events == 0  # marked dispatched exactly once

    worker = Worker(service, options=WorkerOptions(lease_seconds=10, poll_seconds=0.1))
    assert worker.serve(idle_exit=True) == 3  # the waiting alert started once a slot freed
    assert executions(marks, "event-sales") == 1 and executions(marks, "event-alert") == 2
    origins = {r.origin["trigger"] for r in service.list_runs() if r.origin.get("trigger")}
    assert origins == {"on-sales", "on-critical"}


def test_cron_schedule_fires_once_per_tick(home: Home) -> None:
    service = PipelinesService(home.context())
    schedule = service.create_schedule("nightly", "0 3 * * *", f"{FLOWS}:on_event", {"tag": "n"})
    assert service.fire_schedules(schedule.next_fire_at - timedelta(seconds=1)) == []
    queued = service.fire_schedules(schedule.next_fire_at + timedelta(seconds=1))
    assert len(queued) == 1
    assert service.fire_schedules(schedule.next_fire_at + timedelta(seconds=2)) == []
    (after,) = service.list_schedules()
    assert after.next_fire_at == schedule.next_fire_at + timedelta(days=1)
    run = service.get_run(queued[0]).run
    assert run.status == RunStatus.QUEUED and run.origin["schedule"] == "nightly"


def test_bad_cron_and_filters_are_explained(home: Home) -> None:
    from meshops.kernel.errors import InvalidInput

    service = PipelinesService(home.context())
    with pytest.raises(InvalidInput, match="cron"):
        service.create_schedule("bad", "every day", f"{FLOWS}:on_event")
    with pytest.raises(InvalidInput, match="CEL"):
        service.create_trigger(
            "bad", outbox.MONITOR_ALERT, f"{FLOWS}:on_event", expression="event.payload.("
        )
    with pytest.raises(InvalidInput, match="topic"):
        service.create_trigger("bad", "nothing.happened", f"{FLOWS}:on_event")
