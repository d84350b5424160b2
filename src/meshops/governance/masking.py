"""Masking of classified columns on read, on Arrow data and in DuckDB SQL.

Methods (the `ReadPlan.masks` values):
- `hash`: the SHA-256 hex digest of the value's text (nulls stay null). Pseudonymous: equal
  values hash equally, so masked columns still join and group, but are not readable.
- `redact`: the text `****` (nulls stay null); the column becomes a string column.
- `null`: every value null, same type.

The read path applies a plan either to an Arrow table (`apply_plan`) or inside its SQL
(`masked_select_list`), whichever it reads with; both give the same values.
"""

from __future__ import annotations

from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.compute as pc

from meshops.kernel.access import MaskMethod, ReadPlan
from meshops.kernel.errors import InvalidInput

REDACTED = "****"  # the same text as the mesh read path's SQL
METHODS: tuple[MaskMethod, ...] = ("hash", "redact", "null")


def _quote(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


def mask_sql(column: str, method: MaskMethod, sql_type: str = "VARCHAR") -> str:
    """A DuckDB expression computing the masked value of `column` (kept under its name);
    `sql_type` is the column's type, kept by the `null` method."""
    quoted = _quote(column)
    if method == "hash":
        return f"sha256(CAST({quoted} AS VARCHAR)) AS {quoted}"
    if method == "redact":
        return f"CASE WHEN {quoted} IS NULL THEN NULL ELSE '{REDACTED}' END AS {quoted}"
    if method == "null":
        return f"CAST(NULL AS {sql_type}) AS {quoted}"
    raise InvalidInput(f"unknown mask method {method!r}", {"known": list(METHODS)})


def masked_select_list(plan: ReadPlan, types: dict[str, str] | None = None) -> str:
    """`SELECT` list of a plan for DuckDB: visible columns, masked ones replaced."""
    parts = []
    for column in plan.columns:
        method = plan.masks.get(column)
        if method is None:
            parts.append(_quote(column))
        else:
            parts.append(mask_sql(column, method, (types or {}).get(column, "VARCHAR")))
    return ", ".join(parts)


def mask_array(values: pa.Array | pa.ChunkedArray, method: MaskMethod) -> pa.Array:
    if isinstance(values, pa.ChunkedArray):
        values = values.combine_chunks()
    if method == "null":
        return pa.nulls(len(values), type=values.type)
    if method == "redact":
        return pc.if_else(pc.is_valid(values), pa.scalar(REDACTED), pa.scalar(None, pa.string()))
    if method == "hash":
        return _sha256(values)
    raise InvalidInput(f"unknown mask method {method!r}", {"known": list(METHODS)})


def _sha256(values: pa.Array) -> pa.Array:
    # DuckDB's vectorised sha256 over the Arrow buffer (no Python loop per value).
    table = pa.table({"v": values})
    con = duckdb.connect()
    try:
        con.register("masked_input", table)
        query = "SELECT sha256(CAST(v AS VARCHAR)) AS v FROM masked_input"
        hashed: pa.Table = con.sql(query).to_arrow_table()
        return hashed.column("v").combine_chunks()
    finally:
        con.close()


def apply_plan(table: pa.Table, plan: ReadPlan) -> pa.Table:
    """Keep the plan's columns (in its order) and mask the ones it names."""
    missing = [c for c in plan.columns if c not in table.column_names]
    if missing:
        raise InvalidInput(f"unknown columns {missing}", {"field": "columns"})
    selected = table.select(list(plan.columns))
    for column, method in plan.masks.items():
        if column in selected.column_names:
            index = selected.column_names.index(column)
            masked: Any = mask_array(selected.column(column), method)
            selected = selected.set_column(index, column, masked)
    return selected
