"""kernel.changes: the change epoch moves after any commit (from this process's other
connections, another Home on the same file, another thread) and stays put otherwise."""

from __future__ import annotations

import threading

import pytest
from sqlalchemy import text

from meshops.kernel import changes
from meshops.kernel.config import Settings
from meshops.kernel.home import Home


def write(home: Home) -> None:
    with home.db.begin() as conn:
        conn.execute(text("CREATE TABLE IF NOT EXISTS t_changes (x INTEGER)"))
        conn.execute(text("INSERT INTO t_changes VALUES (1)"))


def test_epoch_is_stable_until_a_commit(sqlite_home: Home) -> None:
    first = changes.epoch(sqlite_home.db)
    assert changes.epoch(sqlite_home.db) == first
    with sqlite_home.db.read() as conn:  # reads are not changes
        conn.execute(text("SELECT 1"))
    assert changes.epoch(sqlite_home.db) == first
    write(sqlite_home)
    second = changes.epoch(sqlite_home.db)
    assert second != first
    assert changes.epoch(sqlite_home.db) == second


def test_a_commit_through_another_home_moves_the_epoch(
    sqlite_home: Home, settings: Settings
) -> None:
    """Another Home on the same file stands for another process (CLI, server worker)."""
    before = changes.epoch(sqlite_home.db)
    other = Home(settings)
    try:
        write(other)
    finally:
        other.close()
    assert changes.epoch(sqlite_home.db) != before


def test_a_commit_seen_by_one_thread_invalidates_stamps_for_all(sqlite_home: Home) -> None:
    stamp = changes.epoch(sqlite_home.db)
    write(sqlite_home)
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(changes.epoch(sqlite_home.db)))
    thread.start()
    thread.join()
    assert seen[0] != stamp
    assert changes.epoch(sqlite_home.db) != stamp


def test_without_a_commit_signal_the_epoch_advances_on_a_poll(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """PostgreSQL: no commit signal, so entries are re-validated every poll."""
    watch = changes.ChangeWatch(None)
    now = [100.0]
    monkeypatch.setattr(changes.time, "monotonic", lambda: now[0])
    first = watch.epoch()
    assert watch.epoch() == first
    now[0] += changes.POLL_SECONDS
    assert watch.epoch() != first
    second = watch.epoch()
    watch.advance()
    assert watch.epoch() != second
