"""Governed read overhead: `platform.mesh.read` (grant check, plan, usage record) against a
raw pyarrow Parquet read of the same snapshot file, 10M rows. Goal: overhead < 10%.

    .venv/bin/python benchmarks/b_governed_read.py [--rows 10000000] [--repeat 5]

Rows: the owner's read (no grant needed), a consumer's read through an active grant (same
columns, nothing to mask), and, for information, a consumer's read with a PII column hashed
(DuckDB's sha256 over every value; masking is work a raw read does not do). Each workload
alternates with the raw read; medians are reported.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.harness import Row, median, record, timed
from meshops.client import Platform
from meshops.governance.service import GovernanceService
from meshops.kernel.auth import Actor
from meshops.kernel.config import load_settings
from meshops.kernel.home import Home
from meshops.mesh.service import MeshService

COLUMNS = ["order_id", "customer", "region", "amount", "email"]


def make_table(rows: int) -> pa.Table:
    rng = np.random.default_rng(7)
    customers = rng.integers(0, 1_000_000, rows)
    return pa.table(
        {
            "order_id": pa.array(np.arange(rows, dtype=np.int64)),
            "customer": pa.array(customers),
            "region": pa.DictionaryArray.from_arrays(
                pa.array(rng.integers(0, 4, rows).astype(np.int32)),
                pa.array(["EU", "US", "APAC", "LATAM"]),
            ).cast(pa.string()),
            "amount": pa.array(rng.gamma(2.0, 50.0, rows)),
            "email": pa.array([f"c{c}@example.com" for c in customers.tolist()]),
        }
    )


def contract() -> dict[str, object]:
    props = [
        {"name": "order_id", "logicalType": "integer", "physicalType": "BIGINT"},
        {"name": "customer", "logicalType": "integer", "physicalType": "BIGINT"},
        {"name": "region", "logicalType": "string"},
        {"name": "amount", "logicalType": "number"},
        {"name": "email", "logicalType": "string", "classification": "pii"},
    ]
    return {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": "bench-orders",
        "version": "1.0.0",
        "status": "active",
        "schema": [{"name": "orders", "properties": props}],
    }


def descriptor() -> dict[str, object]:
    return {
        "apiVersion": "v1.0.0",
        "kind": "DataProduct",
        "id": "bench.orders",
        "name": "orders",
        "domain": "bench",
        "version": "1.0.0",
        "status": "active",
        "description": {"purpose": "orders for the governed read benchmark"},
        "team": {"members": [{"username": "olivia", "role": "owner"}]},
        "outputPorts": [{"name": "orders", "version": "1.0.0", "contractId": "bench-orders"}],
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(home=Path(tmp) / "home", env={"MESHOPS_USER": "admin"})
        home = Home(settings)
        print(f"[b-governed-read] publishing {args.rows:,} rows", flush=True)
        version = MeshService(home.context()).publish_arrow(
            descriptor(), {"orders": contract()}, {"orders": make_table(args.rows)}
        )
        GovernanceService(home.context()).grant_access("bench.orders", "orders", "carl")
        owner = Platform(settings, home=home, actor=Actor("olivia"))
        consumer = Platform(settings, home=home, actor=Actor("carl"))
        plain = [c for c in COLUMNS if c != "email"]
        with home.blobs.local_path(version.port("orders").snapshot_digest) as path:
            workloads = {
                "owner read, all columns (no grant needed)": (
                    lambda: owner.mesh.read("bench.orders"),
                    lambda: pq.read_table(path),
                ),
                "consumer read through a grant, unclassified columns": (
                    lambda: consumer.mesh.read("bench.orders", columns=plain),
                    lambda: pq.read_table(path, columns=plain),
                ),
                "consumer read, PII column hashed (masking work)": (
                    lambda: consumer.mesh.read("bench.orders"),
                    lambda: pq.read_table(path),
                ),
            }
            rows = []
            for name, (governed, raw) in workloads.items():
                governed()  # warm caches (page cache, compiled plans) for both
                raw()
                g_times, r_times = [], []
                for i in range(args.repeat):
                    # ABBA order: neither side always runs first (page cache, CPU boost).
                    if i % 2 == 0:
                        g_times.append(timed(governed))
                        r_times.append(timed(raw))
                    else:
                        r_times.append(timed(raw))
                        g_times.append(timed(governed))
                g, r = median(g_times), median(r_times)
                print(f"  {name}: governed {g:.3f}s raw {r:.3f}s overhead {g / r - 1:+.1%}")
                goal = "overhead < 10% (ratio ≥ 0.91×)" if "PII" not in name else "info"
                rows.append(Row(name, g, r, "s", higher_is_better=False, goal=goal))
        usage = GovernanceService(home.context()).product_usage("bench.orders")
        expected = len(workloads) * (args.repeat + 1)
        assert usage.reads == expected, (usage.reads, expected)  # every read was recorded
        home.close()
    record(
        "B-governed-read",
        f"governed read vs raw Parquet read, {args.rows:,} rows",
        f".venv/bin/python benchmarks/b_governed_read.py --rows {args.rows}",
        "raw pyarrow read",
        rows,
    )


if __name__ == "__main__":
    main()
