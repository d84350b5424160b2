"""B3 peer: Feast `get_historical_features` with its file offline store (peer venv).

    python feast_b3.py <data dir> <labels parquet> <ttl days> <view parquet>...

Prints one JSON line: seconds, rows, peak RSS (MiB)."""

from __future__ import annotations

import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from feast_common import define, feature_store


def main() -> None:
    labels_path, ttl_days = Path(sys.argv[2]), int(sys.argv[3])
    view_paths = [Path(p) for p in sys.argv[4:]]
    views = []
    for i, path in enumerate(view_paths):
        names = [c for c in pq.read_schema(path).names if c.startswith(f"v{i}_")]
        views.append((f"view{i}", path, names))
    with tempfile.TemporaryDirectory(dir=sys.argv[1]) as folder:
        store = feature_store(Path(folder))
        define(store, views, ttl_days)
        labels: pd.DataFrame = pq.read_table(labels_path).to_pandas()
        refs = [f"{name}:{f}" for name, _, features in views for f in features]
        start = time.perf_counter()
        frame = store.get_historical_features(entity_df=labels, features=refs).to_df()
        seconds = time.perf_counter() - start
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        checksum = float(frame[refs[0].split(":")[1]].sum(skipna=True))
        print(
            json.dumps(
                {"seconds": seconds, "rows": len(frame), "rss_mib": rss, "checksum": checksum}
            )
        )


if __name__ == "__main__":
    main()
