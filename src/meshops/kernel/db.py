"""The metadata database: SQLAlchemy 2 Core over SQLite (embedded) or PostgreSQL.

Tables are declared by each area's `store` module on the shared `metadata`; their schema
is created only by Alembic migrations (see `meshops.kernel.migrations`).
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import threading
import weakref
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Connection,
    DateTime,
    Engine,
    Integer,
    MetaData,
    TypeDecorator,
    create_engine,
    event,
)
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql
from sqlalchemy.engine import Dialect
from sqlalchemy.pool import QueuePool

from meshops.kernel.errors import NoSpace

NAMING = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
metadata = MetaData(naming_convention=NAMING)

# JSONB on PostgreSQL, JSON text on SQLite.
JsonColumn = JSON().with_variant(postgresql.JSONB(), "postgresql")
# SQLite only autoincrements INTEGER PRIMARY KEY; PostgreSQL wants BIGINT for big tables.
BigId = BigInteger().with_variant(Integer(), "sqlite")

SQLITE_BUSY_TIMEOUT_MS = 30_000
CONNECT_TIMEOUT = 5  # seconds, for a server database (PostgreSQL)


class UtcDateTime(TypeDecorator[datetime]):
    """Timestamps stored as UTC and always returned timezone-aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class _UnitOfWork:
    db: Database
    conn: Connection
    after_commit: list[Callable[[], None]] = field(default_factory=list)


# The unit of work this thread (or task) is inside, if any; see `Database.unit_of_work`.
_current_unit: ContextVar[_UnitOfWork | None] = ContextVar("meshops_unit_of_work", default=None)


class Database:
    """An engine plus the transaction discipline every service uses."""

    def __init__(self, url: str, *, echo: bool = False) -> None:
        self.url = url
        self.is_sqlite = url.startswith("sqlite")
        self.engine: Engine = self._create_engine(url, echo)
        self._lock = threading.Lock()

    def _unit(self) -> _UnitOfWork | None:
        unit = _current_unit.get()
        return unit if unit is not None and unit.db is self else None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    def _create_engine(self, url: str, echo: bool) -> Engine:
        if not self.is_sqlite:
            # Pre-ping: connections broken by a database restart are replaced, not used.
            # A connect timeout: a database host that does not answer (rather than refuse)
            # fails the request in seconds (503), never hangs it.
            timeout = {} if "connect_timeout" in url else {"connect_timeout": CONNECT_TIMEOUT}
            return create_engine(
                url, echo=echo, pool_pre_ping=True, future=True, connect_args=timeout
            )
        # Connections are pooled: opening one (file open, WAL and PRAGMAs) costs far more
        # than a short transaction, and a pipeline run asks for one per wave of ready steps.
        # A forked child drops the pooled connections it inherited (never shares them).
        engine = create_engine(
            url,
            echo=echo,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000, "check_same_thread": False},
            poolclass=QueuePool if ":memory:" not in url else None,
            pool_size=5,
            max_overflow=20,
        )
        event.listen(engine, "connect", _sqlite_on_connect)
        event.listen(engine, "begin", _sqlite_on_begin)
        _forget_in_forked_children(engine)
        return engine

    @contextmanager
    def begin(self) -> Iterator[Connection]:
        """A write transaction. On SQLite it takes the write lock up front (BEGIN IMMEDIATE)
        so that concurrent writers wait on the busy timeout instead of failing to upgrade.
        Inside a unit of work it is a savepoint of the unit's transaction: a failure undoes
        this block only (and propagates), a success becomes visible when the unit commits."""
        unit = self._unit()
        if unit is not None:
            with unit.conn.begin_nested():
                yield unit.conn
            return
        with _no_space_as_error(), self.engine.connect() as raw:
            conn = raw.execution_options(meshops_write=True)
            with conn.begin():
                yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction; on SQLite with WAL it never blocks writers. Inside a unit
        of work it reads through the unit's connection, so it sees the unit's own writes."""
        unit = self._unit()
        if unit is not None:
            yield unit.conn
            return
        with self.engine.connect() as conn, conn.begin():
            yield conn

    @contextmanager
    def unit_of_work(self) -> Iterator[None]:
        """One transaction around many service calls (e.g. `meshops apply` across areas).

        Every `begin()`/`read()` of this database in the same thread or task joins it, so the
        calls see each other's writes and all of them commit together or not at all. Work
        that must not happen for a rolled-back write (caches, exports) goes through
        `after_commit`. Joining an enclosing unit is a no-op. On SQLite the unit holds the
        write lock from start to end: keep it to work that belongs together."""
        if self._unit() is not None:
            yield
            return
        with _no_space_as_error(), self.engine.connect() as raw:
            conn = raw.execution_options(meshops_write=True)
            unit = _UnitOfWork(self, conn)
            token = _current_unit.set(unit)
            try:
                with conn.begin():
                    yield
            finally:
                _current_unit.reset(token)
        for callback in unit.after_commit:
            callback()

    def after_commit(self, callback: Callable[[], None]) -> None:
        """Run `callback` once the current unit of work commits (dropped if it rolls back);
        outside a unit, now (the caller's transaction has already committed)."""
        unit = self._unit()
        if unit is None:
            callback()
        else:
            unit.after_commit.append(callback)

    def checkpoint_wal(self) -> None:
        """On SQLite, outside a unit of work: copy the WAL into the database and empty it
        (`wal_checkpoint(TRUNCATE)`); elsewhere nothing. For callers that have just written
        a large transaction. The automatic checkpoint at each commit does not let the WAL
        start over while writes come back to back (the next writer has already appended to
        it), so under a stream of large batches it grew without bound (4.1 GB at 445k
        runs, B2-1000000-sqlite) and every read searched it. This one waits, through the
        busy timeout, for the writer and the readers of older snapshots; if it cannot, the
        WAL is left for a later checkpoint (never an error)."""
        if not self.is_sqlite or self._unit() is not None:
            return
        with self.engine.connect() as conn:
            driver = conn.connection.driver_connection  # autocommit: no BEGIN around it
            assert driver is not None  # a checked-out connection always has one
            driver.execute("PRAGMA wal_checkpoint(TRUNCATE)").fetchall()

    def dispose(self) -> None:
        self.engine.dispose()


@contextmanager
def _no_space_as_error() -> Iterator[None]:
    """SQLite's "database or disk is full" (its transaction rolled back) is the caller's
    clear error, `NoSpace`, in the SDK and the CLI as in the API."""
    try:
        yield
    except sa_exc.OperationalError as exc:
        if "database or disk is full" not in str(exc):
            raise
        raise NoSpace(
            "no space left on device: the database is full; nothing was written",
            {"fix": "free space on the disk of the home (or of the database) and retry"},
        ) from exc


_pooled_engines: weakref.WeakSet[Engine] = weakref.WeakSet()


def _forget_in_forked_children(engine: Engine) -> None:
    _pooled_engines.add(engine)


def _drop_inherited_connections() -> None:
    for engine in list(_pooled_engines):
        engine.dispose(close=False)  # the parent still owns those connections


os.register_at_fork(after_in_child=_drop_inherited_connections)


def _sqlite_on_connect(dbapi_conn: Any, _record: Any) -> None:
    # Take transaction control away from the driver so BEGIN is ours (see `begin`).
    dbapi_conn.isolation_level = None
    cur = dbapi_conn.cursor()
    try:
        cur.execute("PRAGMA journal_mode=WAL")
    except sqlite3.OperationalError as exc:
        _raise_if_disk_full(dbapi_conn, exc)
        raise
    cur.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cur.execute("PRAGMA synchronous=NORMAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.close()


# Below this, SQLite's "disk I/O error" on opening (it cannot size its shared-memory file)
# is the disk being full.
_FULL_BELOW_BYTES = 1 << 20


def _raise_if_disk_full(dbapi_conn: Any, exc: sqlite3.OperationalError) -> None:
    """SQLite reports a full disk at open as a bare "disk I/O error": say what it is."""
    path = next((row[2] for row in dbapi_conn.execute("PRAGMA database_list") if row[2]), "")
    if path and shutil.disk_usage(os.path.dirname(path)).free < _FULL_BELOW_BYTES:
        raise NoSpace(
            f"no space left on device: the database {path} cannot be opened ({exc})",
            {"file": path, "fix": "free space on the disk of the home and retry"},
        ) from exc


def _sqlite_on_begin(conn: Connection) -> None:
    write = conn.get_execution_options().get("meshops_write", False)
    conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")


def insert_ignoring_conflicts(
    conn: Connection, table: Any, rows: list[dict[str, Any]], index_elements: list[str]
) -> None:
    """INSERT ... ON CONFLICT DO NOTHING on both dialects (idempotent writes)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        conn.execute(pg_insert(table).on_conflict_do_nothing(index_elements=index_elements), rows)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        conn.execute(
            sqlite_insert(table).on_conflict_do_nothing(index_elements=index_elements), rows
        )


def upsert(conn: Connection, table: Any, row: dict[str, Any], index_elements: list[str]) -> None:
    """INSERT ... ON CONFLICT (key) DO UPDATE on both dialects: one statement, so two
    transactions writing the same key at once cannot both miss it and collide (a
    delete-then-insert can, under PostgreSQL's READ COMMITTED)."""
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        pg = pg_insert(table).values(row)
        changed = {name: pg.excluded[name] for name in row if name not in index_elements}
        conn.execute(pg.on_conflict_do_update(index_elements=index_elements, set_=changed))
        return
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    lite = sqlite_insert(table).values(row)
    changed = {name: lite.excluded[name] for name in row if name not in index_elements}
    conn.execute(lite.on_conflict_do_update(index_elements=index_elements, set_=changed))
