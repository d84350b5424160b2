"""Point-in-time correct joins with DuckDB's ASOF JOIN, streaming Arrow out.

For each entity row and each feature view, the row gets the view's latest values with
event time <= the row's timestamp, and only if that event time is within the view's TTL
(older values are nulls, never a value from the future). Rows of a view with the same key
and event time are tie-broken by created time, then by their order in the product (the
later row wins), so the result is deterministic. The same rule picks the online value in
`materialize.py`.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from meshops.features.models import Feature, FeatureView, OnDemandFeature
from meshops.kernel.errors import InvalidInput

ROW_ID = "__meshops_row"
ORDINAL = "__meshops_ord"
BATCH_ROWS = 128 * 1024


@dataclass(frozen=True)
class ViewInput:
    """One feature view's data for a join: the table read from the product and the
    features wanted from it, each with its output column name."""

    view: FeatureView
    table: pa.Table
    keys: list[str]
    features: list[tuple[Feature, str]]


@dataclass(frozen=True)
class OnDemandInput:
    feature: OnDemandFeature
    function: Callable[[dict[str, Any]], Any]
    output: str
    # input name as the function sees it -> column of the joined table
    arguments: dict[str, str] = field(default_factory=dict)


def quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


_database: duckdb.DuckDBPyConnection | None = None
_database_lock = threading.Lock()


def connect_duckdb(
    threads: int | None = None,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
) -> duckdb.DuckDBPyConnection:
    """A connection to the process's in-memory DuckDB (opening a database costs ~0.1 s, a
    cursor on it almost nothing; registered tables stay private to the cursor)."""
    global _database  # noqa: PLW0603 - one shared database per process, opened lazily
    with _database_lock:
        if _database is None:
            _database = duckdb.connect(":memory:")
        con = _database.cursor()
    # Every timestamp is compared in UTC; naive timestamps are read as UTC.
    con.execute("SET TimeZone = 'UTC'")
    con.execute(f"SET threads = {int(threads or os.cpu_count() or 1)}")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
    if temp_directory:
        # DuckDB keeps a spill folder it has already used; that one will do.
        with contextlib.suppress(duckdb.Error):
            con.execute(f"SET temp_directory = '{temp_directory}'")
    return con


def with_ordinal(table: pa.Table, name: str) -> pa.Table:
    """The table with a column numbering its rows (zero-copy for the other columns)."""
    import numpy as np

    return table.append_column(name, pa.array(np.arange(table.num_rows, dtype=np.int64)))


def deduplicated_view_sql(index: int, item: ViewInput) -> str:
    """One row per (keys, event time): the latest created, then the last in the product."""
    view = item.view
    keys = ", ".join(quote(k) for k in item.keys)
    ts = f"CAST({quote(view.event_time)} AS TIMESTAMPTZ)"
    order = f"{ORDINAL} DESC"
    if view.created_time:
        order = f"{quote(view.created_time)} DESC NULLS LAST, {order}"
    values = ", ".join(
        f"{quote(feature.source_column)} AS {quote(f'__v{index}_{n}')}"
        for n, (feature, _) in enumerate(item.features)
    )
    return (
        f"SELECT {keys}, {ts} AS __ts{index}{', ' + values if values else ''} "
        f"FROM src{index} WHERE {quote(view.event_time)} IS NOT NULL "
        f"QUALIFY row_number() OVER (PARTITION BY {keys}, {ts} ORDER BY {order}) = 1"
    )


def point_in_time_sql(
    label_columns: Sequence[str],
    views: Sequence[ViewInput],
    timestamp_column: str,
    *,
    preserve_order: bool = True,
) -> str:
    ctes = [
        f"labels AS (SELECT *, CAST({quote(timestamp_column)} AS TIMESTAMPTZ) AS __ts "
        "FROM entities)"
    ]
    ctes += [f"v{i} AS ({deduplicated_view_sql(i, item)})" for i, item in enumerate(views)]
    select = [f"l.{quote(c)}" for c in label_columns]
    joins = []
    for i, item in enumerate(views):
        on = " AND ".join(f"l.{quote(k)} = v{i}.{quote(k)}" for k in item.keys)
        joins.append(f"ASOF LEFT JOIN v{i} ON {on} AND l.__ts >= v{i}.__ts{i}")
        ttl = item.view.ttl_seconds
        for n, (_, output) in enumerate(item.features):
            value = f"v{i}.{quote(f'__v{i}_{n}')}"
            if ttl:
                value = (
                    f"CASE WHEN v{i}.__ts{i} >= l.__ts - to_seconds({int(ttl)}) THEN {value} END"
                )
            select.append(f"{value} AS {quote(output)}")
    order = f" ORDER BY l.{ROW_ID}" if preserve_order else ""
    return (
        f"WITH {', '.join(ctes)} SELECT {', '.join(select)} FROM labels l {' '.join(joins)}{order}"
    )


def check_entities(entities: pa.Table, views: Sequence[ViewInput], timestamp_column: str) -> None:
    names = set(entities.column_names)
    if timestamp_column not in names:
        raise InvalidInput(
            f"the entity rows have no timestamp column {timestamp_column!r}",
            {
                "field": "timestamp_column",
                "columns": sorted(names),
                "fix": "add the label time column or name it with timestamp_column=",
            },
        )
    ts_type = entities.schema.field(timestamp_column).type
    if not (pa.types.is_timestamp(ts_type) or pa.types.is_date(ts_type)):
        raise InvalidInput(
            f"entity column {timestamp_column!r} is {ts_type}, not a timestamp",
            {"field": timestamp_column, "fix": "convert it to a timestamp (e.g. pd.to_datetime)"},
        )
    for item in views:
        missing = [k for k in item.keys if k not in names]
        if missing:
            raise InvalidInput(
                f"the entity rows lack the join key(s) {missing} of feature view "
                f"{item.view.name!r}",
                {"field": "entities", "fix": f"add the column(s) {missing} to the entity rows"},
            )


def point_in_time_join(
    entities: pa.Table,
    views: Sequence[ViewInput],
    timestamp_column: str,
    *,
    on_demand: Sequence[OnDemandInput] = (),
    threads: int | None = None,
    memory_limit: str | None = None,
    temp_directory: str | None = None,
    preserve_order: bool = True,
    batch_rows: int = BATCH_ROWS,
) -> pa.RecordBatchReader:
    """Entity rows + point-in-time feature values, in the entity rows' order, streamed."""
    check_entities(entities, views, timestamp_column)
    label_columns = [c for c in entities.column_names if c != ROW_ID]
    con = connect_duckdb(threads, memory_limit, temp_directory)
    con.register("entities", with_ordinal(entities.select(label_columns), ROW_ID))
    for i, item in enumerate(views):
        con.register(f"src{i}", with_ordinal(item.table, ORDINAL))
    sql = point_in_time_sql(label_columns, views, timestamp_column, preserve_order=preserve_order)
    reader = con.sql(sql).to_arrow_reader(batch_rows)
    if not on_demand:
        return _keep_alive(reader, con)
    return _with_on_demand(_keep_alive(reader, con), on_demand)


def _keep_alive(reader: pa.RecordBatchReader, con: duckdb.DuckDBPyConnection) -> Any:
    """A reader that holds the DuckDB connection open until it is consumed."""

    def batches() -> Iterator[pa.RecordBatch]:
        try:
            yield from reader
        finally:
            con.close()

    return pa.RecordBatchReader.from_batches(reader.schema, batches())


def _with_on_demand(
    reader: pa.RecordBatchReader, on_demand: Sequence[OnDemandInput]
) -> pa.RecordBatchReader:
    from meshops.features.types import arrow_type

    schema = reader.schema
    for item in on_demand:
        schema = schema.append(pa.field(item.output, arrow_type(item.feature.type)))

    def batches() -> Iterator[pa.RecordBatch]:
        for batch in reader:
            columns = {name: batch.column(name).to_pylist() for name in batch.schema.names}
            arrays = list(batch.columns)
            for item in on_demand:
                values = [
                    item.function({arg: columns[col][row] for arg, col in item.arguments.items()})
                    for row in range(batch.num_rows)
                ]
                arrays.append(pa.array(values, type=arrow_type(item.feature.type)))
            yield pa.RecordBatch.from_arrays(arrays, schema=schema)

    return pa.RecordBatchReader.from_batches(schema, batches())
