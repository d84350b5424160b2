"""Point-in-time correct joins with DuckDB's ASOF JOIN, streaming Arrow out.

The join runs on narrow columns only: for each view, DuckDB ASOF-joins the entity rows'
(row number, keys, time) with the view's (keys, event time, row number) and returns, per
entity row, the row number of the view row that applies (or null). The feature values are
then gathered with Arrow `take`, batch by batch, in the entity rows' order. Sorting a few
narrow columns instead of dragging every feature through the join keeps it fast and its
memory small (a plain ASOF JOIN of 10M rows x 30 features needs several GB).

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
import re
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import duckdb
import pyarrow as pa

from meshops.features.models import Feature, FeatureView, OnDemandFeature
from meshops.kernel.errors import InvalidInput

ROW_ID = "__meshops_row"
ORDINAL = "__meshops_ord"
BATCH_ROWS = 256 * 1024
# From this many entity rows the join gets a database of its own (see `_join_database`).
OWN_DATABASE_ROWS = 1_000_000
# What DuckDB may hold of such a join before it spills its sorts. Its columns are narrow (10M
# entity rows sort in memory within it); beyond that it spills, keeping the process of a
# 100M-row join (entity rows, features and matches held by Arrow) within 8 GB.
DEFAULT_MEMORY_LIMIT = "1GB"


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


def with_ordinal(table: pa.Table, name: str, dtype: Any = None) -> pa.Table:
    """The table with a column numbering its rows (zero-copy for the other columns)."""
    import numpy as np

    numbers = np.arange(table.num_rows, dtype=dtype or np.int64)
    return table.append_column(name, pa.array(numbers))


def deduplicated_view_sql(index: int, item: ViewInput) -> str:
    """One row per (keys, event time): the latest created, then the last in the product."""
    view = item.view
    keys = ", ".join(quote(k) for k in item.keys)
    ts = f"CAST({quote(view.event_time)} AS TIMESTAMPTZ)"
    order = f"{ORDINAL} DESC"
    if view.created_time:
        order = f"{quote(view.created_time)} DESC NULLS LAST, {order}"
    return (
        f"SELECT {keys}, {ts} AS __ts, {ORDINAL} FROM src{index} "
        f"WHERE {quote(view.event_time)} IS NOT NULL "
        f"QUALIFY row_number() OVER (PARTITION BY {keys}, {ts} ORDER BY {order}) = 1"
    )


def labels_sql(keys: Sequence[str], timestamp_column: str) -> str:
    """The entity rows as the join reads them: keys, row number and time in UTC."""
    columns = "".join(f"{quote(k)}, " for k in keys)
    return (
        f"SELECT {columns}{ROW_ID}, CAST({quote(timestamp_column)} AS TIMESTAMPTZ) AS __ts "
        "FROM entities"
    )


def matching_rows_sql(index: int, item: ViewInput, timestamp_column: str) -> str:
    """Per entity row: the view row that applies at its time (null if none or too old)."""
    on = " AND ".join(f"l.{quote(k)} = v.{quote(k)}" for k in item.keys)
    match = f"v.{ORDINAL}"
    if item.view.ttl_seconds:
        ttl = int(item.view.ttl_seconds)
        match = f"CASE WHEN v.__ts >= l.__ts - to_seconds({ttl}) THEN v.{ORDINAL} END"
    return (
        f"WITH v AS ({deduplicated_view_sql(index, item)}), "
        f"l AS ({labels_sql(item.keys, timestamp_column)}) "
        f"SELECT l.{ROW_ID} AS row_id, {match} AS match FROM l "
        f"ASOF LEFT JOIN v ON {on} AND l.__ts >= v.__ts"
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
    batch_rows: int = BATCH_ROWS,
) -> pa.RecordBatchReader:
    """Entity rows + point-in-time feature values, in the entity rows' order, streamed.

    With `memory_limit` the join runs in a database of its own that spills its sorts to
    `temp_directory` beyond that limit, so entity rows far larger than memory allows for
    DuckDB's sorts still join (the rows are the same, only slower)."""
    check_entities(entities, views, timestamp_column)
    check_join_settings(threads, memory_limit)
    label_columns = [c for c in entities.column_names if c != ROW_ID]
    workers = int(threads or os.cpu_count() or 1)
    matches = _matching_rows(
        entities, views, timestamp_column,
        threads=workers, memory_limit=memory_limit, temp_directory=temp_directory,
    )  # fmt: skip
    reader = _gather(entities.select(label_columns), views, matches, batch_rows, workers)
    return _with_on_demand(reader, on_demand) if on_demand else reader


MEMORY_LIMIT = re.compile(r"^\d+(\.\d+)?\s*(KB|MB|GB|TB|KiB|MiB|GiB|TiB)$", re.IGNORECASE)
MAX_THREADS = 256


def check_join_settings(threads: int | None, memory_limit: str | None) -> None:
    """The `[features]` settings of the join, checked before DuckDB reads them."""
    if memory_limit is not None and not MEMORY_LIMIT.match(str(memory_limit)):
        raise InvalidInput(
            f"features.memory_limit {memory_limit!r} is not a size",
            {"field": "features.memory_limit", "fix": "write it as e.g. '1GB' or '512MB'"},
        )
    if threads is not None and not (isinstance(threads, int) and 1 <= threads <= MAX_THREADS):
        raise InvalidInput(
            f"features.threads {threads!r} is not a number of threads",
            {"field": "features.threads", "fix": f"an integer from 1 to {MAX_THREADS}"},
        )


def _join_database(
    rows: int, threads: int, memory_limit: str | None, temp_directory: str | None
) -> duckdb.DuckDBPyConnection:
    """The process's shared database for small joins (opening one costs ~0.1 s); a database
    of its own for a large one or one with a memory limit, because the limit, the spill
    folder and the row order setting are per database, not per cursor."""
    if memory_limit is None and rows < OWN_DATABASE_ROWS:
        return connect_duckdb(threads)
    config: dict[str, Any] = {
        "threads": threads,
        "preserve_insertion_order": False,
        "memory_limit": memory_limit or DEFAULT_MEMORY_LIMIT,
    }
    if temp_directory:
        config["temp_directory"] = temp_directory
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET TimeZone = 'UTC'")
    return con


def _index_type(rows: int) -> Any:
    """int32 row numbers when they fit: half the memory for the matches of 100M rows."""
    import numpy as np

    return np.int32 if rows < 2**31 - 1 else np.int64


def _matching_rows(
    entities: pa.Table,
    views: Sequence[ViewInput],
    timestamp_column: str,
    *,
    threads: int,
    memory_limit: str | None,
    temp_directory: str | None,
) -> list[Any]:
    """Per view, a numpy array: the matching view row of each entity row, or -1.

    The entity rows are read by DuckDB straight from Arrow (no copy into a table) and the
    pairs come back in batches, scattered into the array as they arrive, so the only
    full-size results are the arrays themselves."""
    import numpy as np

    keys = list(dict.fromkeys(k for item in views for k in item.keys))
    narrow = entities.select([*keys, timestamp_column])
    row_type = _index_type(entities.num_rows)
    con = _join_database(entities.num_rows, threads, memory_limit, temp_directory)
    try:
        con.register("entities", with_ordinal(narrow, ROW_ID, row_type))
        result = []
        for i, item in enumerate(views):
            view_rows = _index_type(item.table.num_rows)
            con.register(f"src{i}", with_ordinal(_narrow_view(item), ORDINAL, view_rows))
            match = np.full(entities.num_rows, -1, dtype=view_rows)
            sql = matching_rows_sql(i, item, timestamp_column)
            with _out_of_memory_as_error(memory_limit):
                for batch in con.sql(sql).to_arrow_reader(BATCH_ROWS):
                    rows = batch.column(0).to_numpy()
                    match[rows] = batch.column(1).fill_null(-1).to_numpy()
            result.append(match)
            con.unregister(f"src{i}")
        return result
    finally:
        con.close()


@contextlib.contextmanager
def _out_of_memory_as_error(memory_limit: str | None) -> Iterator[None]:
    """DuckDB out of memory even with spilling (its error reaches us through Arrow as an
    OSError): the caller's error, naming the setting to raise."""
    try:
        yield
    except (duckdb.OutOfMemoryException, OSError) as exc:
        if "Out of Memory" not in str(exc):
            raise
        raise InvalidInput(
            f"the point-in-time join ran out of memory within "
            f"{memory_limit or DEFAULT_MEMORY_LIMIT}: {str(exc).splitlines()[0]}",
            {
                "field": "features.memory_limit",
                "fix": "raise memory_limit in the [features] table of meshops.toml",
            },
        ) from exc


def _narrow_view(item: ViewInput) -> pa.Table:
    view = item.view
    needed = [*item.keys, view.event_time, *([view.created_time] if view.created_time else [])]
    return item.table.select(needed)


def _gather(
    labels: pa.Table,
    views: Sequence[ViewInput],
    matches: list[Any],
    batch_rows: int,
    threads: int,
) -> pa.RecordBatchReader:
    """The output batches: entity columns plus each feature taken at its matching row."""
    sources = [
        [(_contiguous(item.table.column(feature.source_column)), output)
         for feature, output in item.features]
        for item in views
    ]  # fmt: skip
    fields = list(labels.schema)
    for item_sources in sources:
        fields += [pa.field(output, column.type) for column, output in item_sources]
    schema = pa.schema(fields)

    def batch_at(start: int, pool: ThreadPoolExecutor) -> pa.RecordBatch:
        part = labels.slice(start, batch_rows).combine_chunks()
        tasks = []
        for match, item_sources in zip(matches, sources, strict=True):
            taker = _Taker(match[start : start + batch_rows])
            tasks += [(taker, column) for column, _ in item_sources]
        # Arrow's take lets go of the GIL: the columns are gathered on every core.
        features = pool.map(lambda task: task[0].take(task[1]), tasks)
        arrays = [column.chunk(0) for column in part.columns] if part.num_columns else []
        return pa.RecordBatch.from_arrays([*arrays, *features], schema=schema)

    def batches() -> Iterator[pa.RecordBatch]:
        with ThreadPoolExecutor(max_workers=threads) as pool:
            for start in range(0, labels.num_rows, batch_rows):
                yield batch_at(start, pool)

    return pa.RecordBatchReader.from_batches(schema, batches())


def _contiguous(column: pa.ChunkedArray) -> pa.Array:
    """One array per column (taking from a chunked column would join its chunks per batch)."""
    return column.chunk(0) if column.num_chunks == 1 else column.combine_chunks()


def contiguous(table: pa.Table) -> pa.Table:
    """The table with one chunk per column, joined column by column: a view read in row
    groups is copied once here, not again by each join over it."""
    if all(column.num_chunks <= 1 for column in table.columns):
        return table
    return pa.Table.from_arrays(
        [_contiguous(column) for column in table.columns], schema=table.schema
    )


class _Taker:
    """Takes the rows of a batch's matches from feature columns. The take runs with indices
    that have no nulls (a row without a match takes row 0) and the rows without a match
    are then made null through the validity bitmap: a masked take is about twice as slow."""

    def __init__(self, match: Any) -> None:
        import numpy as np

        missing = match < 0
        self.any_missing = bool(missing.any())
        self.masked = pa.array(match, mask=missing) if self.any_missing else pa.array(match)
        self.safe = pa.array(np.where(missing, 0, match)) if self.any_missing else self.masked
        self.valid = pa.array(~missing) if self.any_missing else None

    def take(self, column: pa.Array) -> pa.Array:
        if self.valid is None:
            return column.take(self.safe)
        if len(column) == 0:
            return pa.nulls(len(self.safe), column.type)
        if not _flat(column.type):
            return column.take(self.masked)
        import pyarrow.compute as pc

        taken = column.take(self.safe)
        valid = self.valid if taken.null_count == 0 else pc.and_(self.valid, taken.is_valid())
        buffers = taken.buffers()
        return pa.Array.from_buffers(taken.type, len(taken), [valid.buffers()[1], *buffers[1:]])


def _flat(arrow_type: pa.DataType) -> bool:
    """A type whose arrays are a validity bitmap and their own value buffers (no children)."""
    special = pa.types.is_nested(arrow_type) or pa.types.is_dictionary(arrow_type)
    return not (special or pa.types.is_null(arrow_type) or isinstance(arrow_type, pa.ExtensionType))


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
