"""Trigger concurrency limits keep matched events in a durable backlog (the metadata DB), start
them one slot at a time, coalesce or drop them only as configured and always visibly, and
consume each event exactly once with several dispatchers on one database (SQLite and
PostgreSQL through the `home` fixture)."""

from __future__ import annotations

import itertools
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import func, select

from meshops.client import Platform
from meshops.kernel import outbox
from meshops.kernel.home import Home
from meshops.pipelines import store
from meshops.pipelines.models import RunStatus, TriggerEventStatus
from meshops.pipelines.remote import run_host
from meshops.pipelines.service import PipelinesService
from meshops.pipelines.worker import Worker, WorkerOptions
from tests.pipelines import flows
from tests.pipelines.conftest import FLOWS, alert, executions


def emit_alert(home: Home, subject: str, severity: str = "critical") -> None:
    with home.db.begin() as conn:
        outbox.emit(conn, subject, alert(subject.rpartition(":")[2], severity), "alice")


def finish_one_run(service: PipelinesService, owner: str) -> str | None:
    """Act as a worker whose run succeeds at once: claim a queued run and finish it."""
    run = service.claim_run(owner, lease_seconds=30)
    if run is None:
        return None
    service.finish_run(run.id, RunStatus.SUCCEEDED, None, owner)
    return run.id


def test_limit_one_runs_waiting_events_one_after_another(home: Home, marks: Path) -> None:
    service = PipelinesService(home.context())
    service.create_trigger(
        "retrain",
        outbox.MONITOR_ALERT,
        f"{FLOWS}:long_running",
        {"marks": str(marks), "seconds": 0.3},
        max_concurrent=1,
        executor="inline",
    )
    emit_alert(home, "meshops:monitor:m1")
    first = service.dispatch_events()
    assert len(first.runs) == 1
    for monitor in ("m2", "m3", "m4"):  # three more arrive while the first run is active
        emit_alert(home, f"meshops:monitor:{monitor}")
    waiting = service.dispatch_events()
    assert (waiting.events, waiting.runs, waiting.pending, waiting.skipped) == (3, [], 3, 0)
    assert service.dispatch_events().runs == []  # still one active run: the slot is taken

    # Two workers share the database; the limit, not the number of workers, decides.
    workers = [
        Worker(service, options=WorkerOptions(lease_seconds=10, poll_seconds=0.05), name=n)
        for n in ("w1", "w2")
    ]
    threads = [threading.Thread(target=w.serve, daemon=True) for w in workers]
    for thread in threads:
        thread.start()
    try:
        deadline = time.monotonic() + 60
        while len(service.list_runs(status="succeeded")) < 4:
            assert time.monotonic() < deadline, "the waiting events did not all run"
            time.sleep(0.1)
    finally:
        for worker in workers:
            worker.stopping.set()
        for thread in threads:
            thread.join(timeout=30)

    runs = sorted(service.list_runs(), key=lambda r: r.created_at)
    assert len(runs) == 4 and executions(marks, "final") == 4
    # One after another: each run started after the previous one finished.
    for before, after in itertools.pairwise(runs):
        assert before.finished_at is not None and after.started_at is not None
        assert after.started_at >= before.finished_at
    # In arrival order, each event once.
    subjects = [r.origin["subject"] for r in runs]
    assert subjects == [f"meshops:monitor:m{i}" for i in range(1, 5)]
    events = service.list_trigger_events("retrain")
    assert {e.status for e in events} == {TriggerEventStatus.STARTED}
    assert sorted(e.run_id for e in events if e.run_id) == sorted(r.id for r in runs)
    (state,) = service.trigger_states()
    assert state.events == {"started": 4} and state.active_runs == 0


def test_backlog_coalesces_per_subject_and_drops_over_max_pending_visibly(home: Home) -> None:
    service = PipelinesService(home.context())
    service.create_trigger(
        "retrain",
        outbox.MONITOR_ALERT,
        f"{FLOWS}:on_event",
        max_concurrent=1,
        max_pending=2,
        coalesce_pending=True,
    )
    emit_alert(home, "meshops:monitor:a")
    assert len(service.dispatch_events().runs) == 1
    for subject in ("a", "a", "b", "c"):
        emit_alert(home, f"meshops:monitor:{subject}")
    report = service.dispatch_events()
    # The second "a" supersedes the first waiting one; "c" finds the backlog full (a, b).
    assert (report.runs, report.pending, report.coalesced, report.dropped) == ([], 2, 1, 1)

    events = {e.event_id: e for e in service.list_trigger_events("retrain")}
    by_status = {
        status: sorted(i for i, e in events.items() if e.status == status)
        for status in TriggerEventStatus
    }
    first, old_a, new_a, b, c = sorted(events)
    assert by_status[TriggerEventStatus.STARTED] == [first]
    assert by_status[TriggerEventStatus.COALESCED] == [old_a]
    assert events[old_a].superseded_by == new_a and "superseded" in (events[old_a].reason or "")
    assert by_status[TriggerEventStatus.PENDING] == [new_a, b]
    assert by_status[TriggerEventStatus.DROPPED] == [c]
    assert "backlog full" in (events[c].reason or "")
    (state,) = service.trigger_states()
    assert state.active_runs == 1
    assert state.events == {"started": 1, "coalesced": 1, "pending": 2, "dropped": 1}

    # A slot frees: the oldest waiting event starts, then the next.
    def started_events() -> list[int]:
        return [service.get_run(r).run.origin["event_id"] for r in service.dispatch_events().runs]

    finish_one_run(service, "w")
    assert started_events() == [new_a]
    finish_one_run(service, "w")
    assert started_events() == [b]
    finish_one_run(service, "w")
    assert started_events() == []

    # Deleting the trigger drops what still waits, on the record.
    emit_alert(home, "meshops:monitor:d")
    emit_alert(home, "meshops:monitor:e")
    service.dispatch_events()
    service.delete_trigger("retrain")
    dropped = service.list_trigger_events("retrain", status="dropped")
    assert {e.reason for e in dropped} >= {"the trigger was deleted"}


def test_concurrent_dispatchers_consume_each_event_once_within_the_limit(home: Home) -> None:
    service = PipelinesService(home.context())
    limit, total = 2, 12
    service.create_trigger(
        "on-alert", outbox.MONITOR_ALERT, f"{FLOWS}:on_event", max_concurrent=limit
    )
    for i in range(total):
        emit_alert(home, f"meshops:monitor:m{i}")
    over_limit: list[int] = []
    errors: list[BaseException] = []

    def dispatcher(name: str) -> None:
        try:
            deadline = time.monotonic() + 60
            while time.monotonic() < deadline:
                service.dispatch_events(limit=3)
                with home.db.read() as conn:
                    active = store.active_runs_of_trigger(conn, "on-alert")
                if active > limit:
                    over_limit.append(active)
                finish_one_run(service, name)
                states = service.trigger_states()
                if states[0].events.get("started", 0) == total and states[0].active_runs == 0:
                    return
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=dispatcher, args=(f"d{i}",)) for i in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=90)
    assert errors == [] and over_limit == []
    events = service.list_trigger_events("on-alert", limit=100)
    assert len(events) == total and {e.status for e in events} == {TriggerEventStatus.STARTED}
    assert len({e.event_id for e in events}) == total  # each event once
    runs = service.list_runs(limit=100)
    assert len(runs) == total and {r.status for r in runs} == {RunStatus.SUCCEEDED}
    assert sorted(r.origin["event_id"] for r in runs) == sorted(e.event_id for e in events)
    with home.db.read() as conn:
        table = store.pipeline_trigger_events
        assert conn.execute(select(func.count()).select_from(table)).scalar_one() == total


def test_trigger_backlog_settings_are_checked(home: Home) -> None:
    from meshops.kernel.errors import InvalidInput

    service = PipelinesService(home.context())
    with pytest.raises(InvalidInput, match="max_pending"):
        service.create_trigger("bad", outbox.MONITOR_ALERT, f"{FLOWS}:on_event", max_pending=-1)
    with pytest.raises(InvalidInput, match="status"):
        service.list_trigger_events(status="lost")


def test_max_pending_zero_starts_what_fits_and_drops_the_rest(home: Home) -> None:
    service = PipelinesService(home.context())
    service.create_trigger(
        "no-backlog", outbox.MONITOR_ALERT, f"{FLOWS}:on_event", max_concurrent=2, max_pending=0
    )
    for monitor in ("m1", "m2", "m3"):
        emit_alert(home, f"meshops:monitor:{monitor}")
    report = service.dispatch_events()
    assert (len(report.runs), report.pending, report.dropped) == (2, 0, 1)
    (dropped,) = service.list_trigger_events("no-backlog", status="dropped")
    assert dropped.subject == "meshops:monitor:m3" and dropped.reason == "backlog full (0 waiting)"


def test_backlog_is_visible_over_every_transport(platform: Platform, marks: Path) -> None:
    """Creating, dispatching and listing through the SDK, embedded and over HTTP."""
    platform.pipelines.create_trigger(
        "after-retrying",
        outbox.PIPELINE_RUN_FINISHED,
        f"{FLOWS}:on_event",
        {"marks": str(marks), "tag": "after"},
        match={"pipeline": "retrying"},  # not its own runs' events: no chain reaction
        max_concurrent=1,
        max_pending=1,
        executor="inline",
    )
    for _ in range(3):  # each finished run is an event the trigger matches
        platform.pipelines.run(flows.retrying, {"marks": str(marks), "succeed_on": 1}, track=False)
    report = run_host(platform.pipelines).dispatch_events()
    assert (len(report.runs), report.pending, report.dropped, report.skipped) == (1, 1, 1, 1)
    (state,) = platform.pipelines.trigger_states()
    assert state.trigger.max_pending == 1 and state.active_runs == 1
    assert state.events == {"started": 1, "pending": 1, "dropped": 1}
    events = platform.pipelines.list_trigger_events("after-retrying")
    assert [e.status for e in events] == [
        TriggerEventStatus.DROPPED,
        TriggerEventStatus.PENDING,
        TriggerEventStatus.STARTED,
    ]  # newest first
    assert events[2].run_id == report.runs[0]
