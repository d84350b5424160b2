"""Serving metrics counted in memory and added to Prometheus in batches (metrics.TALLY):
the exposition is the one observing each request would give, and a scrape of the process
shows every request it answered. Also the data plane's cheaper `assume_finite` switch."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import orjson
import pytest
import sklearn
from prometheus_client import CollectorRegistry, Counter, Histogram

from meshops.client import Platform
from meshops.kernel.errors import MeshopsError
from meshops.kernel.home import Home
from meshops.serving import metrics, store
from meshops.serving.runtime import runtime_for
from meshops.serving.scoring import _assuming_finite
from meshops.serving.window import read_chunks
from tests.serving.helpers import record, register_churn

# Below, between and on bucket bounds, and beyond the last one (+Inf).
LATENCIES = [0.0001, 0.0005, 0.0007, 0.001, 0.003, 0.02, 0.3, 2.5, 7.0, 0.0012]


def _samples(metric: Any, labels: dict[str, str]) -> dict[tuple[str, str], float]:
    """(sample name, le) -> value of `metric`'s samples with `labels` (no _created)."""
    found = {}
    for family in metric.collect():
        for s in family.samples:
            if s.name.endswith("_created"):
                continue
            if all(s.labels.get(k) == v for k, v in labels.items()):
                found[(s.name, s.labels.get("le", ""))] = s.value
    return found


def test_flushed_tally_exposes_what_observing_each_request_would(uniq: str) -> None:
    registry = CollectorRegistry()
    requests = Counter("ref_requests", "reference", metrics.LABELS, registry=registry)
    latency = Histogram(
        "ref_latency", "reference", metrics.LABELS, buckets=metrics.LATENCY_BUCKETS,
        registry=registry,
    )  # fmt: skip
    labels = (f"ep-{uniq}", "3", "primary")
    tally = metrics.Tally(flush_seconds=3600)  # flushed by hand only
    counts = tally.counts_for(*labels)
    for seconds in LATENCIES:
        tally.served(counts, seconds)
        requests.labels(*labels).inc()
        latency.labels(*labels).observe(seconds)
    assert _samples(metrics.REQUESTS, dict(zip(metrics.LABELS, labels, strict=True))) == {}
    tally.flush()
    tally.flush()  # nothing new: adds nothing
    named = dict(zip(metrics.LABELS, labels, strict=True))

    def renamed(found: dict[tuple[str, str], float], old: str, new: str) -> dict[Any, float]:
        return {(name.replace(old, new), le): v for (name, le), v in found.items()}

    ours = _samples(metrics.LATENCY, named)
    reference = renamed(_samples(latency, named), "ref_latency", metrics.LATENCY._name)
    assert ours.keys() == reference.keys() and len(ours) == len(metrics.LATENCY_BUCKETS) + 3
    for key, value in reference.items():
        assert math.isclose(ours[key], value, rel_tol=1e-12), key
    assert _samples(metrics.REQUESTS, named) == renamed(
        _samples(requests, named), "ref_requests", metrics.REQUESTS._name
    )


def test_a_scrape_shows_every_request_the_process_answered(sqlite_home: Home) -> None:
    platform = Platform(sqlite_home.settings, home=sqlite_home)
    register_churn(platform)
    platform.serving.create_endpoint("churn-api", "churn@champion")
    labels = {"endpoint": "churn-api", "model_version": "1", "role": "primary"}
    before = _samples(metrics.REQUESTS, labels).get(("meshops_serving_requests_total", ""), 0)
    for i in range(7):
        platform.serving.predict("churn-api", [record(i)])
    text = metrics.render()[0].decode()  # right away: no waiting for the flusher thread
    line = 'meshops_serving_requests_total{endpoint="churn-api",model_version="1",role="primary"}'
    value = next(float(x.rsplit(" ", 1)[1]) for x in text.splitlines() if x.startswith(line))
    assert value == before + 7
    count = 'meshops_serving_latency_seconds_count{endpoint="churn-api"'
    assert any(x.startswith(count) for x in text.splitlines())
    platform.close()


def test_the_flusher_thread_adds_counts_without_a_scrape(uniq: str) -> None:
    labels = (f"ep-{uniq}", "1", "canary")
    tally = metrics.Tally(flush_seconds=0.01)
    tally.served(tally.counts_for(*labels), 0.004)
    named = dict(zip(metrics.LABELS, labels, strict=True))
    key = ("meshops_serving_requests_total", "")
    for _ in range(500):
        if _samples(metrics.REQUESTS, named).get(key) == 1.0:
            break
        tally._wake.wait(0.01)
    assert _samples(metrics.REQUESTS, named).get(key) == 1.0


def test_logged_row_is_the_compact_json_of_the_request(sqlite_home: Home) -> None:
    platform = Platform(sqlite_home.settings, home=sqlite_home)
    register_churn(platform)
    platform.serving.create_endpoint("churn-api", "churn@champion")
    sent = [record(1), record(2)]
    answer = platform.serving.predict("churn-api", sent, request_id="row-1")
    runtime_for(sqlite_home).flush()
    with sqlite_home.db.read() as conn:
        chunks = store.unrolled_chunks(conn, "churn-api")
    raw = read_chunks(sqlite_home.blobs, chunks).to_pylist()  # the rows as written
    rows = sorted((r for r in raw if r["request_id"] == "row-1"), key=lambda r: r["record"])
    assert [r["inputs"] for r in rows] == [orjson.dumps(r).decode() for r in sent]
    assert [r["prediction"] for r in rows] == [str(p) for p in answer.predictions]
    assert [r["features"] for r in rows] == ["{}", "{}"]
    platform.close()


def test_assume_finite_is_set_for_the_call_and_restored() -> None:
    assert sklearn.get_config()["assume_finite"] is False
    with _assuming_finite():
        assert sklearn.get_config()["assume_finite"] is True
    assert sklearn.get_config()["assume_finite"] is False
    with pytest.raises(RuntimeError), _assuming_finite():
        raise RuntimeError("the model failed")
    assert sklearn.get_config()["assume_finite"] is False


def test_a_null_still_goes_through_the_estimators_own_check(sqlite_home: Home) -> None:
    platform = Platform(sqlite_home.settings, home=sqlite_home)
    register_churn(platform)
    platform.serving.create_endpoint("churn-api", "churn@champion")
    with pytest.raises(MeshopsError, match="NaN"):
        platform.serving.predict("churn-api", [{**record(0), "spend": None}])
    ok = runtime_for(sqlite_home).predict(sqlite_home.context(), "churn-api", [record(0)])
    assert ok.predictions[0] in (0, 1)
    assert np.isfinite(list(record(0).values())).all()
    platform.close()
