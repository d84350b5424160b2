"""Has the metadata database changed? A cheap answer for caches on request hot paths.

A cache stamps each entry with `epoch(db)` read *before* it reads the database, and trusts
the entry only while `epoch(db)` still returns that stamp. The epoch advances after any
commit, by any connection of any process (another server worker, the CLI on the same
home), so a revoked token or a changed policy is seen on the next request:

- On SQLite, `PRAGMA data_version` on a connection that never writes changes whenever
  another connection has committed; reading it costs a few microseconds. The values are
  per connection, so each thread keeps its own connection and last value, and advances the
  shared epoch when its value moves.
- Other databases (PostgreSQL) give no such signal for free: the epoch advances every
  `POLL_SECONDS`, so cached entries are re-validated at least that often.

Why an entry stamped before its read is safe: a commit C that the entry's read missed
happened after the stamp was taken; the next thread to look sees its data_version moved
(C came after its previous look) and advances the epoch before anything is trusted.
"""

from __future__ import annotations

import itertools
import os
import sqlite3
import threading
import time
import weakref
from typing import Any

POLL_SECONDS = 1.0


class ChangeWatch:
    """The change epoch of one database (see the module docstring)."""

    def __init__(self, sqlite_path: str | None) -> None:
        self._path = sqlite_path
        self._local = threading.local()
        self._lock = threading.Lock()
        self._epoch = 0
        self._counter = itertools.count(1)

    def epoch(self) -> int:
        if self._path is None:
            # No commit signal: a new epoch every POLL_SECONDS (plus explicit advances).
            return self._epoch + int(time.monotonic() / POLL_SECONDS) * (1 << 32)
        version = self._data_version()
        if version != getattr(self._local, "seen", None):
            self._local.seen = version
            self.advance()
        return self._epoch

    def advance(self) -> None:
        """Invalidate every entry stamped so far (a change this process knows it made)."""
        with self._lock:
            self._epoch = next(self._counter)

    def _data_version(self) -> int:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None or getattr(self._local, "pid", None) != os.getpid():
            # A forked child opens its own connection (never shares the parent's).
            conn = sqlite3.connect(self._path or "", check_same_thread=False)
            self._local.conn, self._local.pid, self._local.seen = conn, os.getpid(), None
        row = conn.execute("PRAGMA data_version").fetchone()
        return int(row[0])


_watches: weakref.WeakKeyDictionary[Any, ChangeWatch] = weakref.WeakKeyDictionary()
_watches_lock = threading.Lock()


def watch(db: Any) -> ChangeWatch:
    """The watch of `db` (a `kernel.db.Database`), one per database object and process."""
    found = _watches.get(db)
    if found is not None:
        return found
    with _watches_lock:
        found = _watches.get(db)
        if found is None:
            path = db.engine.url.database if db.is_sqlite else None
            found = _watches[db] = ChangeWatch(path if path and path != ":memory:" else None)
    return found


def epoch(db: Any) -> int:
    """The current change epoch of `db`: equal stamps mean no commit happened in between."""
    return watch(db).epoch()
