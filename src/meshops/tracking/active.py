"""The SDK side of logging: a metric buffer and the `with start_run(...) as run:` handle.

Per-value `log_metric` calls only append a tuple to a buffer; the buffer flushes through
the batch path (`log_metric_rows`). Embedded, the flush is synchronous every `max_rows`
values. Over HTTP, a background thread sends batches while the caller keeps logging;
`flush()` (run end, `platform.flush()`/`close()`, interpreter exit) sends what is left.
"""

from __future__ import annotations

import threading
import time
import traceback
from collections import deque
from collections.abc import Callable, Sequence
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any

from meshops.kernel.errors import Conflict
from meshops.tracking.models import (
    Artifact,
    DatasetInput,
    Run,
    RunStatus,
    check_key,
)
from meshops.tracking.store import MetricRow

if TYPE_CHECKING:
    from meshops.tracking.interface import Tracking

SendRows = Callable[[Sequence[MetricRow]], None]
_now = time.time


class MetricBuffer:
    """Collects metric rows and sends them in order, in batches of at most `max_rows`."""

    def __init__(
        self,
        send: SendRows,
        *,
        max_rows: int = 50_000,
        background: bool = False,
        interval_s: float = 0.25,
    ) -> None:
        self._send = send
        self.max_rows = max_rows
        # deque.append and popleft are atomic, so adding needs no lock (the hot path).
        self.rows: deque[MetricRow] = deque()
        self._send_lock = threading.Lock()  # one sender at a time keeps batches in order
        self._error: BaseException | None = None
        self._wake = threading.Event()
        self._background = background
        self._interval_s = interval_s
        self._thread: threading.Thread | None = None
        self._closed = False

    def add(self, row: MetricRow) -> None:
        self.rows.append(row)
        if len(self.rows) >= self.max_rows:
            self.full()

    def full(self) -> None:
        """Called by adders when the buffer reached `max_rows`."""
        size = len(self.rows)
        if not self._background:
            self.flush()
        elif size >= 4 * self.max_rows:
            self.flush()  # the sender is behind: apply back-pressure to the caller
        else:
            self._ensure_thread()
            self._wake.set()

    def pending(self) -> int:
        return len(self.rows)

    def flush(self) -> None:
        """Send everything added so far; raises the first error a background send hit."""
        self._drain()
        error, self._error = self._error, None
        if error is not None:
            raise error

    def _drain(self) -> None:
        with self._send_lock:
            pop = self.rows.popleft
            while self.rows:
                count = min(len(self.rows), self.max_rows)
                self._send([pop() for _ in range(count)])

    def _ensure_thread(self) -> None:
        if self._thread is None and not self._closed:
            self._thread = threading.Thread(
                target=self._loop, name="meshops-metric-sender", daemon=True
            )
            self._thread.start()

    def _loop(self) -> None:
        while not self._closed:
            self._wake.wait(self._interval_s)
            self._wake.clear()
            try:
                self._drain()
            except BaseException as exc:  # surfaced to the caller on the next flush
                self._error = exc

    def close(self) -> None:
        self._closed = True
        self._wake.set()
        self.flush()


class ActiveRun:
    """A running run; ends FINISHED on normal exit and FAILED (with the error) on raise."""

    def __init__(self, tracking: Tracking, run: Run, buffer: MetricBuffer) -> None:
        self.tracking = tracking
        self.run = run
        self.id = run.id
        self._buffer = buffer
        self._rows = buffer.rows
        self._max_rows = buffer.max_rows
        self._valid_keys: set[str] = set()  # emptied when the run ends
        self._ended = False

    @property
    def urn(self) -> str:
        return self.run.urn

    def _check_running(self) -> None:
        if self._ended:
            raise Conflict(
                f"run {self.id} has ended; it takes no more params, metrics or artifacts",
                {"run_id": self.id, "fix": "start a new run"},
            )

    def log_metric(
        self, key: str, value: float, step: int = 0, timestamp: float | None = None
    ) -> None:
        # The hot path (one call per value): a key is checked once per run, then each call
        # converts value/step/timestamp (bad ones raise here, not at flush) and appends a
        # tuple; the buffer flushes through the columnar batch path every `max_rows`.
        if key not in self._valid_keys:
            self._check_running()
            self._valid_keys.add(check_key(key, "metric"))
        rows = self._rows
        rows.append(
            (
                self.id,
                key,
                float(value),
                int(step),
                _now() if timestamp is None else float(timestamp),
            )
        )
        if len(rows) >= self._max_rows:
            self._buffer.full()

    def log_metrics(
        self, metrics: dict[str, float], step: int = 0, timestamp: float | None = None
    ) -> None:
        ts = time.time() if timestamp is None else timestamp
        for key, value in metrics.items():
            self.log_metric(key, value, step, ts)

    def log_param(self, key: str, value: Any) -> None:
        self.log_params({key: value})

    def log_params(self, params: dict[str, Any]) -> None:
        self._check_running()
        self.tracking.log_params(self.id, params)

    def set_tag(self, key: str, value: str) -> None:
        self.tracking.set_tags(self.id, {key: value})

    def set_tags(self, tags: dict[str, str]) -> None:
        self.tracking.set_tags(self.id, tags)

    def log_artifact(
        self, local_path: str | Path, artifact_path: str | None = None
    ) -> list[Artifact]:
        self._check_running()
        return self.tracking.log_artifact(self.id, local_path, artifact_path)

    def log_input(
        self, urn: str | DatasetInput, digest: str = "", name: str = "", context: str = "training"
    ) -> None:
        self._check_running()
        dataset = (
            urn
            if isinstance(urn, DatasetInput)
            else DatasetInput(urn=urn, digest=digest, name=name, context=context)
        )
        self.tracking.log_input(self.id, dataset)

    def flush(self) -> None:
        self._buffer.flush()

    def end(self, status: RunStatus | str = RunStatus.FINISHED, error: str | None = None) -> Run:
        if self._ended:
            return self.run
        try:
            self._buffer.flush()
        finally:
            self._ended = True
            self._valid_keys.clear()
            self.run = self.tracking.end_run(self.id, str(status), error)
        return self.run

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if exc is None:
            self.end(RunStatus.FINISHED)
            return
        detail = "".join(traceback.format_exception(exc_type, exc, tb))
        status = RunStatus.KILLED if isinstance(exc, KeyboardInterrupt) else RunStatus.FAILED
        try:
            self.end(status, detail)
        except Exception:
            # The block's own error matters more than a failure to record it.
            if not self._ended:
                self._ended = True
                self.run = self.tracking.end_run(self.id, str(status), detail)
