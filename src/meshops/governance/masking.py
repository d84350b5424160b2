"""Masking of classified columns outside the SQL read path: Arrow tables (`mask_array`,
`apply_plan`) and Python values of online feature lookups (`mask_values`).

The mesh's read path does not call this module: it runs the governed SELECT of
`meshops.kernel.sandbox` over the snapshot. Both take each method from its one definition,
`kernel.sandbox.MASKINGS` (the `ReadPlan.masks` values):
- `hash`: HMAC-SHA256 of the value's text, keyed with the home's masking key (hex). Pseudonymous:
  equal values hash equally, so masked columns still join and group, but nobody without the
  key (kept outside the metadata database, kernel/secrets.py) can hash guesses to reverse them.
- `redact`: the text `****`; the column becomes a string column.
- `null`: every value null, same type.
Nulls stay null under every method.
"""

from __future__ import annotations

import os
import threading
from typing import Any

import duckdb
import pyarrow as pa

from meshops.kernel.access import MaskMethod, ReadPlan
from meshops.kernel.errors import InvalidInput
from meshops.kernel.sandbox import (
    MASK_METHODS,
    REDACTED,
    TIMEZONE,
    mask_expression,
    masking,
    masking_key,
)

__all__ = ["METHODS", "REDACTED", "apply_plan", "mask_array", "mask_values", "masking_key"]

METHODS: tuple[MaskMethod, ...] = MASK_METHODS


def mask_array(values: pa.Array | pa.ChunkedArray, method: MaskMethod, key: bytes) -> pa.Array:
    """The method's SQL, vectorised over the Arrow buffer (no Python loop per value). Platform
    SQL over one registered table, on a cursor of a process-wide database (opening a
    database costs 10-30 ms, a cursor ~0)."""
    expression = mask_expression("v", method, key)
    con = _cursor()
    try:
        con.register("masked_input", pa.table({"v": values}))
        masked: pa.Table = con.sql(f"SELECT {expression} AS v FROM masked_input").to_arrow_table()
        return masked.column("v").combine_chunks()
    finally:
        con.close()


_database: duckdb.DuckDBPyConnection | None = None
_database_lock = threading.Lock()
_inherited: list[object] = []


def _after_fork_in_child() -> None:
    # A forked child opens its own database; the parent's stays referenced (destroying a
    # DuckDB database in a forked child joins threads the child does not have).
    global _database, _database_lock
    _inherited.append(_database)
    _database, _database_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_after_fork_in_child)


def _cursor() -> duckdb.DuckDBPyConnection:
    global _database  # noqa: PLW0603 - one masking database per process, opened lazily
    with _database_lock:
        if _database is None:
            _database = duckdb.connect(":memory:")
        cursor = _database.cursor()
    # The same session as the sandbox's: timestamps with a zone are spelt in UTC.
    cursor.execute(f"SET TimeZone = '{TIMEZONE}'")
    return cursor


def apply_plan(table: pa.Table, plan: ReadPlan, key: bytes) -> pa.Table:
    """Keep the plan's columns (in its order) and mask the ones it names."""
    missing = [c for c in plan.columns if c not in table.column_names]
    if missing:
        raise InvalidInput(f"unknown columns {missing}", {"field": "columns"})
    selected = table.select(list(plan.columns))
    for column, method in plan.masks.items():
        if column in selected.column_names:
            index = selected.column_names.index(column)
            masked: Any = mask_array(selected.column(column), method, key)
            selected = selected.set_column(index, column, masked)
    return selected


def mask_values(
    values: list[Any], method: MaskMethod, key: bytes, value_type: pa.DataType
) -> list[Any]:
    """The masked Python values of one column of `value_type` (online feature lookups: a
    few values per call), equal to what the SQL read path gives: the method's Python form,
    sparing DuckDB on the hot path, unless it holds for text alone and the values are not
    text (values as Arrow takes them: datetimes, not ISO text); those take `mask_array`."""
    found = masking(method)
    if found.text_only and not (
        pa.types.is_string(value_type) or pa.types.is_large_string(value_type)
    ):
        masked: list[Any] = mask_array(pa.array(values, type=value_type), method, key).to_pylist()
        return masked
    return [None if v is None else found.value(v, key) for v in values]
