"""The one codec for tables that cross the wire: Arrow IPC streams (and Parquet files, which
every reader here also accepts, so a user can upload what pandas or Spark wrote).

Requests and answers of the RPC layer (`meshops.kernel.rpc`), the mesh's reads and
publishes, the feature store's retrievals, the monitoring uploads and serving's batches all
encode with `encode_table` and decode with `decode_table`; stored references use
`to_parquet`. A body that is neither format is the caller's mistake: `InvalidInput` naming
the field, never a 500 from inside pyarrow.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from meshops.kernel.errors import InvalidInput

if TYPE_CHECKING:
    import pyarrow as pa

ARROW_STREAM = "application/vnd.apache.arrow.stream"
PARQUET_MAGIC = b"PAR1"


def encode_table(table: pa.Table) -> bytes:
    """`table` as one Arrow IPC stream."""
    import pyarrow as pa

    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def decode_table(data: bytes, field: str = "table") -> pa.Table:
    """The table in `data` (an Arrow IPC stream or a Parquet file); InvalidInput naming
    `field` when it is neither."""
    import pyarrow as pa

    try:
        if data[:4] == PARQUET_MAGIC and data[-4:] == PARQUET_MAGIC:
            import pyarrow.parquet as pq

            return pq.read_table(io.BytesIO(data))
        with pa.ipc.open_stream(pa.py_buffer(data)) as reader:
            return reader.read_all()
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidInput(
            f"{field} is not an Arrow IPC stream or a Parquet file: {exc}",
            {"field": field, "fix": "send pyarrow.ipc.new_stream or parquet.write_table output"},
        ) from exc


def decode_reader(data: bytes, field: str = "table") -> pa.RecordBatchReader:
    """The batches of an Arrow IPC stream, read lazily."""
    import pyarrow as pa

    try:
        return pa.ipc.open_stream(pa.py_buffer(data))
    except (pa.ArrowException, OSError, ValueError) as exc:
        raise InvalidInput(
            f"{field} is not an Arrow IPC stream: {exc}",
            {"field": field, "fix": "send pyarrow.ipc.new_stream output"},
        ) from exc


def to_parquet(table: pa.Table) -> bytes:
    """`table` as a zstd-compressed Parquet file (stored references, snapshots)."""
    import pyarrow.parquet as pq

    buffer = io.BytesIO()
    pq.write_table(table, buffer, compression="zstd")
    return buffer.getvalue()


class _Drain:
    """A write-only file that hands over what was written since the last `take`."""

    closed = False

    def __init__(self) -> None:
        self.parts: list[bytes] = []

    def write(self, data: Any) -> int:
        self.parts.append(bytes(data))
        return len(self.parts[-1])

    def flush(self) -> None:
        return None

    def take(self) -> bytes:
        data, self.parts = b"".join(self.parts), []
        return data


def stream_chunks(reader: pa.RecordBatchReader) -> Iterator[bytes]:
    """The IPC stream of `reader`, one chunk per record batch (for streaming answers)."""
    import pyarrow as pa

    drain = _Drain()
    writer = pa.ipc.new_stream(pa.PythonFile(drain, mode="w"), reader.schema)
    for batch in reader:
        writer.write_batch(batch)
        yield drain.take()
    writer.close()
    yield drain.take()
