"""Usage of data products: who reads what, how often, and what a change would touch."""

from __future__ import annotations

import atexit
import logging
import os
import threading
import time
import weakref
from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, func, select

from meshops.governance.models import IdleProduct, ProductUsage, UsageEvent
from meshops.governance.store import grants, usage_events

log = logging.getLogger(__name__)


def events(
    conn: Connection, product: str | None = None, since: datetime | None = None, limit: int = 1000
) -> list[UsageEvent]:
    query = select(usage_events).order_by(usage_events.c.id.desc()).limit(limit)
    if product:
        query = query.where(usage_events.c.product == product)
    if since is not None:
        query = query.where(usage_events.c.at >= since)
    return [_event(r) for r in conn.execute(query).mappings()]


def product_usage(conn: Connection, product: str, since: datetime) -> ProductUsage:
    rows = conn.execute(
        select(
            usage_events.c.actor,
            usage_events.c.at,
            usage_events.c.rows,
            usage_events.c.interface,
            usage_events.c.reads,
        ).where(usage_events.c.product == product, usage_events.c.at >= since)
    ).all()
    last = conn.execute(
        select(func.max(usage_events.c.at)).where(usage_events.c.product == product)
    ).scalar()
    # An event stands for `reads` reads (batched online lookups).
    per_day: Counter[str] = Counter()
    consumers: Counter[str] = Counter()
    interfaces: Counter[str] = Counter()
    for r in rows:
        per_day[r.at.date().isoformat()] += int(r.reads)
        consumers[r.actor] += int(r.reads)
        interfaces[r.interface] += int(r.reads)
    return ProductUsage(
        product=product,
        reads=sum(int(r.reads) for r in rows),
        rows=sum(int(r.rows) for r in rows),
        consumers=dict(consumers),
        reads_per_day=sorted(per_day.items()),
        last_read=_aware(last),
        interfaces=dict(interfaces),
    )


def idle_products(
    conn: Connection, now: datetime, days: int, known: list[str] | None = None
) -> list[IdleProduct]:
    """Products with no read in `days` days: every product ever read or granted, plus the
    `known` ones (e.g. the catalog's products), flagged as deprecation candidates."""
    last_reads: dict[str, datetime | None] = {
        r.product: _aware(r.last)
        for r in conn.execute(
            select(usage_events.c.product, func.max(usage_events.c.at).label("last")).group_by(
                usage_events.c.product
            )
        )
    }
    candidates = set(last_reads) | set(known or [])
    candidates |= {r.product for r in conn.execute(select(grants.c.product).distinct())}
    threshold = now - timedelta(days=days)
    idle = []
    for product in sorted(candidates):
        last = last_reads.get(product)
        if last is None or last < threshold:
            idle.append(
                IdleProduct(
                    product=product,
                    last_read=last,
                    days_idle=(now - last).days if last else None,
                )
            )
    return idle


def versions_read(conn: Connection, product: str) -> list[str]:
    rows = conn.execute(
        select(usage_events.c.version).where(usage_events.c.product == product).distinct()
    )
    return sorted(r.version for r in rows)


def consumers_of(
    conn: Connection, product: str, since: datetime, columns: list[str] | None
) -> dict[str, int]:
    """Readers in the window; with `columns`, only reads that included one of them."""
    wanted = set(columns or [])
    counter: Counter[str] = Counter()
    query = select(usage_events.c.actor, usage_events.c.columns, usage_events.c.reads).where(
        usage_events.c.product == product, usage_events.c.at >= since
    )
    for row in conn.execute(query):
        if not wanted or wanted & set(row.columns):
            counter[row.actor] += int(row.reads)
    return dict(counter)


def _aware(value: Any) -> datetime | None:
    from datetime import UTC

    if value is None:
        return None
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    aware: datetime = value if value.tzinfo else value.replace(tzinfo=UTC)
    return aware


def _event(row: Any) -> UsageEvent:
    return UsageEvent(
        id=row["id"],
        at=row["at"],
        actor=row["actor"],
        product=row["product"],
        domain=row["domain"],
        version=row["version"],
        port=row["port"],
        columns=list(row["columns"]),
        masked=list(row["masked"]),
        rows=int(row["rows"]),
        interface=row["interface"],
        grant_id=row["grant_id"],
        reads=int(row["reads"]),
    )


# --- usage of hot read paths, written in batches -------------------------------------------

FLUSH_SECONDS = 1.0
IDLE_ROUNDS = 5  # the flush thread ends after this many empty rounds (add() restarts it)
# What makes two reads the same event: actor, product, domain, version, port, columns,
# masked columns, interface, grant.
UsageKey = tuple[str, str, str, str, str, tuple[str, ...], tuple[str, ...], str, str | None]
KEY_FIELDS = (
    "actor", "product", "domain", "version", "port", "columns", "masked", "interface", "grant_id"
)  # fmt: skip


class UsageBuffer:
    """Usage of a hot read path (online lookups: well under a millisecond each), counted in
    memory and written in batches so that a read pays neither a transaction nor a row:
    identical reads (same actor, product version, port, columns, masks, interface, grant)
    within about FLUSH_SECONDS become one event with `reads` = how many and `rows` their
    sum. A background thread writes them; usage queries of this process flush first, and
    so does the interpreter's exit. Every read is counted."""

    def __init__(self, home: Any) -> None:
        self._home = weakref.ref(home)
        self._pending: dict[UsageKey, list[Any]] = {}  # key -> [reads, rows, last at]
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def add(self, key: UsageKey, rows: int, at: datetime) -> None:
        with self._lock:
            found = self._pending.get(key)
            if found is None:
                self._pending[key] = [1, rows, at]
                if self._thread is None or not self._thread.is_alive():
                    self._thread = threading.Thread(
                        target=self._run, name="meshops-usage-flush", daemon=True
                    )
                    self._thread.start()
            else:
                found[0] += 1
                found[1] += rows
                found[2] = at

    def flush(self) -> int:
        """Write what is pending now; returns how many reads were written."""
        with self._lock:
            pending, self._pending = self._pending, {}
        home = self._home()
        if not pending or home is None:
            return 0
        rows = [
            {**dict(zip(KEY_FIELDS, key, strict=True)), "columns": list(key[5]),
             "masked": list(key[6]), "reads": reads, "rows": total, "at": at}
            for key, (reads, total, at) in pending.items()
        ]  # fmt: skip
        try:
            with home.db.begin() as conn:
                conn.execute(usage_events.insert(), rows)
        except Exception:
            log.exception("could not write %d usage events", len(rows))
            return 0
        return sum(r["reads"] for r in rows)

    def _run(self) -> None:
        idle = 0
        while idle < IDLE_ROUNDS and self._home() is not None:
            time.sleep(FLUSH_SECONDS)
            idle = 0 if self.flush() else idle + 1


class _Buffers:
    """This process's buffers, one per home."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.by_home: weakref.WeakKeyDictionary[Any, UsageBuffer] = weakref.WeakKeyDictionary()
        self.lock = threading.Lock()


_buffers = _Buffers()


def buffer_of(home: Any) -> UsageBuffer:
    found = _buffers.by_home.get(home)
    if found is None:
        with _buffers.lock:
            found = _buffers.by_home.get(home)
            if found is None:
                found = _buffers.by_home[home] = UsageBuffer(home)
    return found


def flush_pending(home: Any) -> None:
    """Write this process's buffered usage of `home` (before answering a usage query)."""
    found = _buffers.by_home.get(home)
    if found is not None:
        found.flush()


@atexit.register
def _flush_all() -> None:
    for found in list(_buffers.by_home.values()):
        found.flush()


# A forked worker starts with no buffers: the parent's pending reads are the parent's to
# write (else counted twice), and a lock may have been held at the fork.
os.register_at_fork(after_in_child=_buffers.reset)
