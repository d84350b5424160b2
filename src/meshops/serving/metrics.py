"""Prometheus metrics of the serving data plane, per endpoint and model version.

One worker process: the default registry. Several workers (`meshops serve --workers N`):
the parent sets `PROMETHEUS_MULTIPROC_DIR` before the workers start, each worker writes its
samples to memory-mapped files there, and `/metrics` on any worker aggregates all of them
(prometheus_client's multiprocess mode).

Served requests are not added to the Prometheus metrics one by one: in multiprocess mode
each `inc`/`observe` is a locked write to a memory-mapped file (three for a histogram
observation), a noticeable share of a one-record prediction. `TALLY` counts them in memory
(one lock, a few additions) and `flush` adds the counts in one go: a background thread does
it every `FLUSH_SECONDS`, and `render` does it first, so a scrape of this process sees
every request it answered; another worker's requests of the last `FLUSH_SECONDS` show in
the next scrape. The exposition (names, labels, buckets, values) is the same as when
observing each request.
"""

from __future__ import annotations

import bisect
import logging
import os
import threading
from dataclasses import dataclass, field

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
LABELS = ("endpoint", "model_version", "role")
FLUSH_SECONDS = 0.25
LATENCY_BUCKETS = (0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)

REQUESTS = Counter(
    "meshops_serving_requests",
    "Predictions served, per endpoint, model version and route role",
    LABELS,
)
ERRORS = Counter(
    "meshops_serving_errors",
    "Failed predict requests, per endpoint and error kind",
    ("endpoint", "error"),
)
LATENCY = Histogram(
    "meshops_serving_latency_seconds",
    "Time to answer a predict request (validation, enrichment, model, logging)",
    LABELS,
    buckets=LATENCY_BUCKETS,
)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256, 512)
BATCH = Histogram(
    "meshops_serving_batch_requests",
    "Predict requests scored together in one batch of a worker's event loop (batching.py)",
    buckets=BATCH_BUCKETS,
)

log = logging.getLogger(__name__)
# Histogram buckets hold observations <= their bound; the last is +Inf.
_BOUNDS = (*LATENCY_BUCKETS, float("inf"))
_BATCH_BOUNDS = (*BATCH_BUCKETS, float("inf"))


@dataclass(slots=True)
class RouteCounts:
    """What one route (endpoint, model version, role) served since the last flush."""

    labels: tuple[str, str, str]
    requests: int = 0
    seconds: float = 0.0
    buckets: list[int] = field(default_factory=lambda: [0] * len(_BOUNDS))


class Tally:
    """Served requests and their latencies, counted in memory until `flush` (see module)."""

    def __init__(self, flush_seconds: float = FLUSH_SECONDS) -> None:
        self.flush_seconds = flush_seconds
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, str], RouteCounts] = {}
        self._batches = _Buckets(len(_BATCH_BOUNDS))
        self._thread: threading.Thread | None = None
        self._wake = threading.Event()
        os.register_at_fork(after_in_child=self._after_fork)

    def counts_for(self, endpoint: str, version: str, role: str) -> RouteCounts:
        """The counts of a route, shared by every deployment of the same labels."""
        labels = (endpoint, version, role)
        with self._lock:
            found = self._counts.get(labels)
            if found is None:
                found = self._counts[labels] = RouteCounts(labels)
        self._start()
        return found

    def served(self, counts: RouteCounts, seconds: float) -> None:
        """One request answered in `seconds` (what `inc` and `observe` would record)."""
        at = bisect.bisect_left(_BOUNDS, seconds)
        with self._lock:
            counts.requests += 1
            counts.seconds += seconds
            counts.buckets[at] += 1

    def batch(self, requests: int) -> None:
        """One batch of `requests` predict requests scored together."""
        at = bisect.bisect_left(_BATCH_BOUNDS, requests)
        with self._lock:
            self._batches.add(at, requests)

    def flush(self) -> None:
        """Add everything counted so far to the Prometheus metrics."""
        with self._lock:
            taken = [
                (c.labels, c.requests, c.seconds, c.buckets)
                for c in self._counts.values()
                if c.requests
            ]
            for c in self._counts.values():
                if c.requests:
                    _reset(c)
            batches, self._batches = self._batches, _Buckets(len(_BATCH_BOUNDS))
        for labels, requests, seconds, buckets in taken:
            _add(LATENCY.labels(*labels), seconds, buckets)
            REQUESTS.labels(*labels).inc(requests)
        if batches.total:
            _add(BATCH, batches.total, batches.counts)

    def _start(self) -> None:
        if self._thread is not None:
            return
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="meshops-serving-metrics", daemon=True
                )
                self._thread.start()

    def _run(self) -> None:
        while True:
            self._wake.wait(self.flush_seconds)
            try:
                self.flush()
            except Exception:
                log.exception("flushing the serving metrics failed")

    def _after_fork(self) -> None:
        # The child has no flusher thread yet and must not count its parent's requests
        # again; the routes it inherited keep their (zeroed) counts.
        self._lock = threading.Lock()
        self._thread = None
        for counts in self._counts.values():
            _reset(counts)
        self._batches = _Buckets(len(_BATCH_BOUNDS))


@dataclass(slots=True)
class _Buckets:
    """Observations counted per histogram bucket, and their sum."""

    size: int
    total: float = 0.0
    counts: list[int] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.counts = [0] * self.size

    def add(self, at: int, value: float) -> None:
        self.counts[at] += 1
        self.total += value


def _reset(counts: RouteCounts) -> None:
    counts.requests, counts.seconds, counts.buckets = 0, 0.0, [0] * len(_BOUNDS)


def _add(histogram: Histogram, total: float, buckets: list[int]) -> None:
    # prometheus_client has no bulk observe: its sum and per-bucket counts take the totals
    # (what `observe` adds to one value at a time).
    histogram._sum.inc(total)
    for bucket, count in zip(histogram._buckets, buckets, strict=True):
        if count:
            bucket.inc(count)


TALLY = Tally()


def render() -> tuple[bytes, str]:
    """The exposition text and its content type; this process's counts are flushed first."""
    TALLY.flush()
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
