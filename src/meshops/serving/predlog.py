"""The buffered prediction-log writer.

Requests append rows to an in-memory buffer; a background thread writes them in batches
(when `batch_rows` are waiting or `flush_seconds` passed) as one Parquet chunk per endpoint
into the blob store, then indexes the chunk in `serving_log_chunks` (blob first, row
second: a crash between leaves only an unreferenced blob, never a dangling index row).

Memory is bounded: once `max_rows` rows are buffered or being written, `append` blocks the
caller until the writer catches up (backpressure) instead of dropping rows. `close()` (on
server shutdown, platform close or interpreter exit) writes everything still buffered.
A failing write (database down) keeps the rows and retries; nothing is dropped silently.
"""

from __future__ import annotations

import io
import json
import logging
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import orjson

from meshops.kernel.db import utcnow
from meshops.kernel.errors import MeshopsError

if TYPE_CHECKING:
    import pyarrow as pa

    from meshops.kernel.home import Home

log = logging.getLogger(__name__)

COLUMNS = [
    "request_id",
    "record",
    "endpoint",
    "model",
    "model_version",
    "role",
    "inputs",
    "features",
    "prediction",
    "latency_ms",
    "time",
]


def log_schema() -> pa.Schema:
    import pyarrow as pa

    return pa.schema(
        [
            ("request_id", pa.string()),
            ("record", pa.int32()),
            ("endpoint", pa.string()),
            ("model", pa.string()),
            ("model_version", pa.int32()),
            # primary | canary | shadow: shadow rows were scored, not returned.
            ("role", pa.string()),
            ("inputs", pa.string()),  # JSON object of the record as the client sent it
            ("features", pa.string()),  # JSON object of values the feature store added
            ("prediction", pa.string()),  # JSON value of the model's output for the record
            ("latency_ms", pa.float64()),
            ("time", pa.timestamp("us", tz="UTC")),
        ]
    )


def rows_to_table(rows: list[tuple[Any, ...]]) -> pa.Table:
    import pyarrow as pa

    columns: list[Any] = list(zip(*rows, strict=True)) if rows else [() for _ in COLUMNS]
    schema = log_schema()
    return pa.table(
        [pa.array(list(col), type=schema.field(i).type) for i, col in enumerate(columns)],
        schema=schema,
    )


_DUMPS_OPTIONS = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> str:
    """Compact JSON text of a logged value; what JSON cannot carry is written as text."""
    try:
        return orjson.dumps(value, default=str, option=_DUMPS_OPTIONS).decode()
    except orjson.JSONEncodeError:
        # orjson refuses integers beyond 64 bits, which Python's encoder writes.
        return json.dumps(value, separators=(",", ":"), default=str)


class LogBackpressure(MeshopsError):
    """The log buffer stayed full for `block_seconds`: the writer cannot keep up."""

    error = "prediction_log_backpressure"
    http_status = 503


class PredictionLogWriter:
    def __init__(
        self,
        home: Home,
        *,
        batch_rows: int = 2_000,
        flush_seconds: float = 1.0,
        max_rows: int = 50_000,
        block_seconds: float = 30.0,
    ) -> None:
        self.home = home
        self.batch_rows = batch_rows
        self.flush_seconds = flush_seconds
        self.max_rows = max_rows
        self.block_seconds = block_seconds
        self._buffer: list[tuple[Any, ...]] = []
        self._in_flight = 0
        self._cond = threading.Condition()
        self._closed = False
        self._flush_requested = 0
        self._flushed = 0
        self.rows_written = 0
        self.chunks_written = 0
        self._thread = threading.Thread(target=self._run, name="meshops-predlog", daemon=True)
        self._thread.start()

    # --- producer side ---------------------------------------------------------------------

    def append(self, rows: list[tuple[Any, ...]]) -> None:
        """Buffer rows (tuples in `COLUMNS` order); blocks while the buffer is full."""
        with self._cond:
            if self._closed:
                raise MeshopsError("the prediction log is closed; the endpoint is shutting down")
            if len(self._buffer) + self._in_flight >= self.max_rows:
                self._wait_for_room()
            self._buffer.extend(rows)
            if len(self._buffer) >= self.batch_rows:
                self._cond.notify_all()

    def _wait_for_room(self) -> None:
        """Backpressure (called holding the lock): wait for the writer, up to block_seconds."""
        deadline = time.monotonic() + self.block_seconds
        while len(self._buffer) + self._in_flight >= self.max_rows:
            self._cond.notify_all()
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise LogBackpressure(
                    "the prediction log buffer is full; retry the request",
                    {"buffered": len(self._buffer), "max_rows": self.max_rows},
                )
            self._cond.wait(min(remaining, 0.1))

    def flush(self, timeout: float = 60.0) -> None:
        """Write everything appended so far before returning."""
        with self._cond:
            self._flush_requested += 1
            ticket = self._flush_requested
            self._cond.notify_all()
            done = self._cond.wait_for(
                lambda: self._flushed >= ticket or not self._thread.is_alive(), timeout
            )
        if not done:
            raise MeshopsError(f"the prediction log did not flush within {timeout} s")

    def close(self, timeout: float = 60.0) -> None:
        with self._cond:
            if self._closed:
                return
            self._closed = True
            self._cond.notify_all()
        self._thread.join(timeout)

    @property
    def buffered(self) -> int:
        with self._cond:
            return len(self._buffer) + self._in_flight

    # --- writer thread ---------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            with self._cond:
                self._cond.wait_for(self._should_write, self.flush_seconds)
                batch, self._buffer = self._buffer, []
                self._in_flight = len(batch)
                ticket = self._flush_requested
                closing = self._closed
            self._write_until_done(batch)
            with self._cond:
                self._in_flight = 0
                self._flushed = max(self._flushed, ticket)
                self._cond.notify_all()
                if closing and not self._buffer:
                    return

    def _should_write(self) -> bool:
        return (
            self._closed
            or len(self._buffer) >= self.batch_rows
            or self._flush_requested > self._flushed
        )

    def _write_until_done(self, batch: list[tuple[Any, ...]]) -> None:
        delay = 0.1
        while batch:
            try:
                self._write(batch)
                return
            except Exception:
                # Keep the rows: the database or blob store may come back. Backpressure
                # stops the buffer from growing meanwhile.
                log.exception("prediction log write failed; retrying in %.1f s", delay)
                time.sleep(delay)
                delay = min(delay * 2, 5.0)

    def _write(self, batch: list[tuple[Any, ...]]) -> None:
        by_endpoint: dict[str, list[tuple[Any, ...]]] = defaultdict(list)
        for row in batch:
            by_endpoint[row[2]].append(row)
        for endpoint, rows in by_endpoint.items():
            self._write_chunk(endpoint, rows)

    def _write_chunk(self, endpoint: str, rows: list[tuple[Any, ...]]) -> None:
        import pyarrow.parquet as pq

        from meshops.serving import store

        table = rows_to_table(rows)
        sink = io.BytesIO()
        pq.write_table(table, sink, compression="zstd")
        digest = self.home.blobs.put_bytes(sink.getvalue())
        times = [r[10] for r in rows]
        with self.home.db.begin() as conn:
            store.insert_chunk(
                conn,
                {
                    "endpoint": endpoint,
                    "digest": digest,
                    "rows": len(rows),
                    "min_time": min(times),
                    "max_time": max(times),
                    "created_at": utcnow(),
                    "rolled_into": None,
                },
            )
        self.rows_written += len(rows)
        self.chunks_written += 1


def now() -> datetime:
    return datetime.now(UTC)
