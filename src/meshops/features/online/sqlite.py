"""The default online store: one SQLite file (`<home>/online.db`), one table per view.

Its tables are not part of the metadata database: they hold data, are rebuilt by
materialization, and are read on the request path with a plain `sqlite3` connection per
thread (no ORM on the hot path).
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Sequence
from pathlib import Path

from meshops.features.online.base import OnlineRecord, OnlineStore, StoredValues, unpack

_UPSERT = (
    "INSERT INTO {t} (key, event_ts, created_ts, payload) VALUES (?, ?, ?, ?) "
    "ON CONFLICT(key) DO UPDATE SET event_ts = excluded.event_ts, "
    "created_ts = excluded.created_ts, payload = excluded.payload "
    "WHERE excluded.event_ts > {t}.event_ts OR "
    "(excluded.event_ts = {t}.event_ts AND excluded.created_ts >= {t}.created_ts)"
)
# SQLite's default limit of host parameters is 32766; stay well below it.
_READ_CHUNK = 500


def _table(view: str) -> str:
    # View names are checked names ([a-z][a-z0-9_]*), so this is a safe identifier.
    return f"fv_{view}"


class SqliteOnlineStore(OnlineStore):
    name = "sqlite"

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._known: set[str] = set()

    def _conn(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            self._local.conn = conn
        return conn

    def _ensure(self, view: str) -> None:
        if view in self._known:
            return
        with self._conn() as conn:
            conn.execute(
                f"CREATE TABLE IF NOT EXISTS {_table(view)} (key TEXT PRIMARY KEY, "
                "event_ts INTEGER NOT NULL, created_ts INTEGER NOT NULL, payload BLOB NOT NULL)"
                " WITHOUT ROWID"
            )
        self._known.add(view)

    def write_batch(self, view: str, records: Sequence[OnlineRecord]) -> int:
        self._ensure(view)
        sql = _UPSERT.format(t=_table(view))
        with self._conn() as conn:
            conn.executemany(
                sql, ((r.key, r.event_micros, r.created_micros, r.payload) for r in records)
            )
        return len(records)

    def read(self, view: str, keys: Sequence[str]) -> list[StoredValues | None]:
        table = _table(view)
        conn = self._conn()
        found: dict[str, StoredValues] = {}
        try:
            if len(keys) == 1:
                rows = conn.execute(
                    f"SELECT key, event_ts, payload FROM {table} WHERE key = ?", (keys[0],)
                ).fetchall()
            else:
                rows = []
                unique = list(dict.fromkeys(keys))
                for start in range(0, len(unique), _READ_CHUNK):
                    chunk = unique[start : start + _READ_CHUNK]
                    marks = ",".join("?" * len(chunk))
                    rows += conn.execute(
                        f"SELECT key, event_ts, payload FROM {table} WHERE key IN ({marks})",
                        chunk,
                    ).fetchall()
        except sqlite3.OperationalError as exc:
            if "no such table" in str(exc):
                return [None] * len(keys)
            raise
        for key, event_ts, payload in rows:
            found[key] = StoredValues(event_ts, unpack(payload))
        return [found.get(key) for key in keys]

    def update(self, keep: Sequence[str], delete: Sequence[str]) -> None:
        for view in keep:
            self._ensure(view)
        with self._conn() as conn:
            for view in delete:
                conn.execute(f"DROP TABLE IF EXISTS {_table(view)}")
                self._known.discard(view)

    def count(self, view: str) -> int:
        try:
            row = self._conn().execute(f"SELECT count(*) FROM {_table(view)}").fetchone()
        except sqlite3.OperationalError:
            return 0
        return int(row[0]) if row else 0

    def teardown(self) -> None:
        conn = self._conn()
        names = [
            r[0]
            for r in conn.execute(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name LIKE 'fv\\_%' "
                "ESCAPE '\\'"
            )
        ]
        with conn:
            for name in names:
                conn.execute(f"DROP TABLE IF EXISTS {name}")
        self._known.clear()

    def close(self) -> None:
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None
