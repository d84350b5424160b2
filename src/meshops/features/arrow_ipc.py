"""Arrow IPC streams as bytes: how tables cross HTTP in both directions."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa


def table_to_bytes(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue())


def bytes_to_reader(data: bytes) -> pa.RecordBatchReader:
    return pa.ipc.open_stream(pa.py_buffer(data))


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
    """The IPC stream of `reader`, one chunk per record batch (for streaming responses)."""
    drain = _Drain()
    writer = pa.ipc.new_stream(pa.PythonFile(drain, mode="w"), reader.schema)
    for batch in reader:
        writer.write_batch(batch)
        yield drain.take()
    writer.close()
    yield drain.take()
