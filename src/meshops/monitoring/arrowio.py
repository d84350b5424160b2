"""Arrow tables to and from Parquet bytes (stored references, HTTP uploads)."""

from __future__ import annotations

import io
from typing import TYPE_CHECKING

from meshops.kernel.errors import InvalidInput

if TYPE_CHECKING:
    import pyarrow as pa


def to_parquet(table: pa.Table) -> bytes:
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


def from_parquet(data: bytes, what: str = "table") -> pa.Table:
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        return pq.read_table(io.BytesIO(data))
    except (pa.ArrowInvalid, OSError) as exc:
        raise InvalidInput(
            f"the {what} is not a readable Parquet file: {exc}",
            {"field": what, "fix": "send a Parquet file (e.g. pyarrow.parquet.write_table)"},
        ) from exc
