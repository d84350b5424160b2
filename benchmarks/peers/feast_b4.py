"""B4 peer: Feast `get_online_features` with its SQLite online store (peer venv).

    python feast_b4.py <work dir> <view parquet> <ttl days> <calls 1> <calls 100>

Prints one JSON line with per-call latencies (p50, p99, in ms) for 1 and 100 entities."""

from __future__ import annotations

import json
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from feast_common import define, feature_store


def percentiles(values: list[float]) -> dict[str, float]:
    return {
        "p50": float(np.percentile(values, 50)) * 1000,
        "p99": float(np.percentile(values, 99)) * 1000,
    }


def main() -> None:
    work, path, ttl_days = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3])
    calls_one, calls_hundred = int(sys.argv[4]), int(sys.argv[5])
    names = [c for c in pq.read_schema(path).names if c.startswith("f")]
    store = feature_store(work)
    define(store, [("view0", path, names)], ttl_days)
    now = datetime.now(UTC)
    store.materialize(start_date=now - timedelta(days=ttl_days), end_date=now)
    refs = [f"view0:{n}" for n in names]
    entities = pq.read_table(path, columns=["entity_id"]).column(0).to_numpy()
    rng = np.random.default_rng(11)
    check = store.get_online_features(features=refs, entity_rows=[{"entity_id": int(entities[0])}])
    first = check.to_dict()[names[0]][0]
    result: dict[str, object] = {"first_value": first}
    for label, size, calls in (("one", 1, calls_one), ("hundred", 100, calls_hundred)):
        times = []
        for _ in range(calls):
            rows = [{"entity_id": int(k)} for k in rng.choice(entities, size)]
            start = time.perf_counter()
            store.get_online_features(features=refs, entity_rows=rows).to_dict()
            times.append(time.perf_counter() - start)
        result[label] = percentiles(times[len(times) // 10 :])  # first 10%: warm-up
    print(json.dumps(result))


if __name__ == "__main__":
    main()
