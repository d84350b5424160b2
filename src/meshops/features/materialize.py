"""Materialization: the newest values per entity of a feature view, into an online store.

The newest row per entity is chosen by the same rule as the offline join (event time,
then created time, then the later row of the product), among rows with event time <=
`end`. Incremental runs read only what is new since the view's watermark: rows with an
event time after it, or (when the view has a created-time column) created after it, so
late-arriving rows of a new product version are picked up too. Since the online store
keeps the newest record per key, running twice, or out of order, changes nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime

import pyarrow as pa

from meshops.features.models import FeatureView
from meshops.features.offline import ORDINAL, connect_duckdb, quote, with_ordinal
from meshops.features.online.base import OnlineRecord, OnlineStore, entity_key, pack
from meshops.features.types import from_epoch_micros, to_json_value

WRITE_BATCH = 20_000
Progress = Callable[[str, int, int], None]  # (view, rows done, rows total)


@dataclass(frozen=True)
class Window:
    end: datetime
    event_after: datetime | None = None
    created_after: datetime | None = None


@dataclass(frozen=True)
class MaterializeStats:
    rows_read: int
    rows_written: int
    max_event_time: datetime | None
    max_created_time: datetime | None


def newest_per_entity_sql(view: FeatureView, keys: list[str], window: Window) -> str:
    ts = f"CAST({quote(view.event_time)} AS TIMESTAMPTZ)"
    created = f"CAST({quote(view.created_time)} AS TIMESTAMPTZ)" if view.created_time else None
    where = [f"{quote(view.event_time)} IS NOT NULL", f"{ts} <= $end"]
    newer = []
    if window.event_after is not None:
        newer.append(f"{ts} > $event_after")
    if created is not None and window.created_after is not None:
        newer.append(f"{created} > $created_after")
    if newer:
        where.append(f"({' OR '.join(newer)})")
    order = f"{ts} DESC, {created + ' DESC NULLS LAST, ' if created else ''}{ORDINAL} DESC"
    key_list = ", ".join(quote(k) for k in keys)
    values = ", ".join(quote(f.source_column) for f in view.features)
    created_micros = f"epoch_us({created})" if created else "0"
    return (
        f"SELECT {key_list}, epoch_us({ts}) AS __ev, coalesce({created_micros}, 0) AS __cr, "
        f"{values} FROM src WHERE {' AND '.join(where)} "
        f"QUALIFY row_number() OVER (PARTITION BY {key_list} ORDER BY {order}) = 1"
    )


def _records(view: FeatureView, keys: list[str], table: pa.Table) -> Iterator[OnlineRecord]:
    key_columns = [table.column(k).to_pylist() for k in keys]
    events = table.column("__ev").to_pylist()
    created = table.column("__cr").to_pylist()
    names = [f.name for f in view.features]
    values = [[to_json_value(v) for v in table.column(f.source_column).to_pylist()]
              for f in view.features]  # fmt: skip
    for row in range(table.num_rows):
        key = entity_key([column[row] for column in key_columns])
        payload = pack({name: column[row] for name, column in zip(names, values, strict=True)})
        yield OnlineRecord(key, int(events[row]), int(created[row]), payload)


def materialize_table(
    view: FeatureView,
    keys: list[str],
    source: pa.Table,
    store: OnlineStore,
    window: Window,
    *,
    progress: Progress | None = None,
) -> MaterializeStats:
    """Write the newest row per entity of `source` (inside `window`) to `store`."""
    con = connect_duckdb()
    try:
        con.register("src", with_ordinal(source, ORDINAL))
        params = {"end": window.end}
        if window.event_after is not None:
            params["event_after"] = window.event_after
        if window.created_after is not None and view.created_time:
            params["created_after"] = window.created_after
        result = con.sql(newest_per_entity_sql(view, keys, window), params=params)
        newest: pa.Table = result.to_arrow_table()
        max_created = None
        if view.created_time:
            row = con.execute(
                f"SELECT epoch_us(max(CAST({quote(view.created_time)} AS TIMESTAMPTZ))) "
                f"FROM src WHERE CAST({quote(view.event_time)} AS TIMESTAMPTZ) <= $end",
                {"end": window.end},
            ).fetchone()
            max_created = row[0] if row else None
    finally:
        con.close()
    total = newest.num_rows
    written = 0
    batch: list[OnlineRecord] = []
    for record in _records(view, keys, newest):
        batch.append(record)
        if len(batch) >= WRITE_BATCH:
            written += store.write_batch(view.name, batch)
            batch = []
            if progress:
                progress(view.name, written, total)
    if batch:
        written += store.write_batch(view.name, batch)
    if progress:
        progress(view.name, written, total)
    max_event = max(newest.column("__ev").to_pylist(), default=None) if total else None
    return MaterializeStats(
        rows_read=source.num_rows,
        rows_written=written,
        max_event_time=from_epoch_micros(max_event) if max_event is not None else None,
        max_created_time=from_epoch_micros(max_created) if max_created is not None else None,
    )
