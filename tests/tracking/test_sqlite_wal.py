"""On SQLite, batch run creation keeps the write-ahead log bounded: each `create_runs` call
leaves it empty, also while other batches and searches run at the same time (issue #20:
back-to-back batches grew it to 4.1 GB and slowed every read)."""

from __future__ import annotations

import threading
from pathlib import Path

from meshops.client import Platform
from meshops.kernel.home import Home
from meshops.tracking.models import Metric, RunSpec

RUNS_PER_BATCH = 300
BATCHES_PER_WRITER = 8


def _batch(first: int) -> list[RunSpec]:
    return [
        RunSpec(
            experiment="wal",
            name=f"r{i}",
            status="FINISHED",
            params={f"p{j}": f"v{(i + j) % 7}" for j in range(5)},
            metrics=[
                Metric(key=f"m{j}", value=(i * 31 + j) % 97 / 97, step=0, timestamp=0.0)
                for j in range(5)
            ],
        )
        for i in range(first, first + RUNS_PER_BATCH)
    ]


def _wal(home: Home) -> Path:
    database = Path(home.db.url.split("///", 1)[1])
    return database.with_name(database.name + "-wal")


def _wal_bytes(home: Home) -> int:
    wal = _wal(home)
    return wal.stat().st_size if wal.exists() else 0


def test_each_batch_leaves_the_wal_empty(sqlite_home: Home) -> None:
    platform = Platform(sqlite_home.settings, home=sqlite_home)
    after_each = []
    for number in range(5):
        platform.tracking.create_runs(_batch(number * RUNS_PER_BATCH))
        after_each.append(_wal_bytes(sqlite_home))
    assert after_each == [0] * 5
    assert len(platform.tracking.search_runs(["wal"], max_results=5_000).runs) == 5 * 300


def test_the_wal_stays_bounded_under_concurrent_batches_and_reads(sqlite_home: Home) -> None:
    """Two writers send batches back to back while a reader searches: the WAL never holds
    more than the batches in flight (without the checkpoint it kept every batch)."""
    platform = Platform(sqlite_home.settings, home=sqlite_home)
    one_batch = _wal_of_one_batch(platform, sqlite_home)
    platform.tracking.create_runs(_batch(0))
    seen: list[int] = []
    writing = threading.Event()
    writing.set()
    failures: list[BaseException] = []

    def write(first: int) -> None:
        try:
            for number in range(BATCHES_PER_WRITER):
                platform.tracking.create_runs(_batch(first + number * RUNS_PER_BATCH))
                seen.append(_wal_bytes(sqlite_home))
        except BaseException as exc:  # reported by the test thread
            failures.append(exc)

    def read() -> None:
        while writing.is_set():
            platform.tracking.search_runs(["wal"], "metrics.m1 < 0.5", ["metrics.m0 DESC"], 10)

    reader = threading.Thread(target=read)
    writers = [threading.Thread(target=write, args=(base,)) for base in (10_000, 20_000)]
    reader.start()
    for thread in writers:
        thread.start()
    for thread in writers:
        thread.join()
    writing.clear()
    reader.join()
    assert not failures
    total = 2 + 2 * BATCHES_PER_WRITER
    assert len(platform.tracking.search_runs(["wal"], max_results=10_000).runs) == total * 300
    # What is left is the batches in flight (a checkpoint that finds another one running
    # leaves its frames to it, and readers may hold it back): a few batches' worth, where
    # without the checkpoint the WAL kept growing with every batch (to ~20 batches' worth).
    assert one_batch > 0 and max(seen) <= 8 * one_batch, (seen, one_batch)
    platform.tracking.create_runs(_batch(30_000))
    assert _wal_bytes(sqlite_home) == 0


def _wal_of_one_batch(platform: Platform, home: Home) -> int:
    """Bytes of WAL one batch writes: in a unit of work the call does not empty the WAL
    (the unit commits later), and the commit's own checkpoint leaves its size as it is."""
    with home.db.unit_of_work():
        platform.tracking.create_runs(_batch(5_000))
    return _wal_bytes(home)
