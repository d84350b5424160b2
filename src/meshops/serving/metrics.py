"""Prometheus metrics of the serving data plane, per endpoint and model version.

One worker process: the default registry. Several workers (`meshops serve --workers N`):
the parent sets `PROMETHEUS_MULTIPROC_DIR` before the workers start, each worker writes its
samples to memory-mapped files there, and `/metrics` on any worker aggregates all of them
(prometheus_client's multiprocess mode).
"""

from __future__ import annotations

import os

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
    buckets=(0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5),
)


def render() -> tuple[bytes, str]:
    """The exposition text and its content type."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        return generate_latest(registry), CONTENT_TYPE_LATEST
    return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
