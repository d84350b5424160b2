"""Arrow tables to and from Parquet bytes (stored references, HTTP uploads)."""

from __future__ import annotations

import io

import pyarrow as pa
import pyarrow.parquet as pq

from meshops.kernel.errors import InvalidInput


def to_parquet(table: pa.Table) -> bytes:
    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def from_parquet(data: bytes, what: str = "table") -> pa.Table:
    try:
        return pq.read_table(io.BytesIO(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(
            f"the {what} is not a readable Parquet file: {exc}",
            {"field": what, "fix": "send a Parquet file (e.g. pyarrow.parquet.write_table)"},
        ) from exc
