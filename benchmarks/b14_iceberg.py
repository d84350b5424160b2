"""B14 (Iceberg half): an append-only product published as 10 versions, stored as an
Iceberg port against full Parquet snapshots (the default port), in the same meshops home.

Version i (1..10) holds the first i/10 of `--rows` rows: each publish hands meshops the
whole table, as a build does; the Iceberg port recognises the append (the previous
version's rows are the prefix) and writes only the new rows' files, the Parquet port writes
a new full snapshot. Measured: the publish time of each format (contract test and profile
included, the same for both), the storage each leaves (the warehouse folder against the
blob store's snapshots), and a governed read of one version (the owner's read: Parquet
takes pyarrow's fast path, Iceberg the sandbox's DuckDB over the version's data files).
The two formats alternate version by version so machine load hits both alike.

    .venv/bin/python benchmarks/b14_iceberg.py [--rows 10000000] [--versions 10] [--reads 3]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import Row, median, record

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def events(rows: int) -> pa.Table:
    rng = np.random.default_rng(14)
    start = np.datetime64("2024-01-01T00:00:00", "us")
    return pa.table(
        {
            "event_id": pa.array(np.arange(rows, dtype=np.int64)),
            "customer_id": pa.array(rng.integers(0, 1_000_000, rows, dtype=np.int64)),
            "amount": pa.array(rng.gamma(2.0, 30.0, rows)),
            "region": pa.array(np.array(["EU", "US", "APAC", "LATAM"])[rng.integers(0, 4, rows)]),
            "event_time": pa.array(start + np.arange(rows).astype("timedelta64[s]")),
        }
    )


def documents(name: str, version: str, iceberg: bool) -> tuple[dict[str, Any], dict[str, Any]]:
    from tests.support.products import data_contract, data_product

    properties = [
        {"name": "event_id", "logicalType": "integer", "required": True},
        {"name": "customer_id", "logicalType": "integer"},
        {"name": "amount", "logicalType": "number"},
        {"name": "region", "logicalType": "string"},
        {"name": "event_time", "logicalType": "timestamp"},
    ]
    descriptor = data_product(f"bench.{name}", f"bench-{name}", port="events", version=version)
    if iceberg:
        custom = [{"property": "meshops.format", "value": "iceberg"}]
        descriptor["outputPorts"][0]["customProperties"] = custom
    return descriptor, data_contract(f"bench-{name}", "events", properties)


def folder_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--versions", type=int, default=10)
    parser.add_argument("--reads", type=int, default=3)
    args = parser.parse_args()

    from meshops.kernel.config import load_settings
    from meshops.kernel.home import Home
    from meshops.mesh.service import MeshService

    data = events(args.rows)
    home_dir = Path(tempfile.mkdtemp(prefix="b14-iceberg-")) / "home"
    home = Home(load_settings(home=home_dir, env={"MESHOPS_USER": "alice"}))
    mesh = MeshService(home.context())
    publish: dict[str, list[float]] = {"parquet": [], "iceberg": []}
    for i in range(1, args.versions + 1):
        rows = data.slice(0, args.rows * i // args.versions)
        for fmt in ("iceberg", "parquet"):
            descriptor, contract = documents(f"events_{fmt}", f"1.{i - 1}.0", fmt == "iceberg")
            started = time.perf_counter()
            mesh.publish_arrow(descriptor, {"events": contract}, {"events": rows})
            publish[fmt].append(time.perf_counter() - started)
            print(f"[b14] {fmt} 1.{i - 1}.0 ({rows.num_rows:,} rows): {publish[fmt][-1]:.1f} s",
                  flush=True)  # fmt: skip
    storage = {
        "iceberg": folder_bytes(home_dir / "warehouse"),
        "parquet": folder_bytes(home_dir / "blobs" / "sha256"),
    }
    last, middle = f"1.{args.versions - 1}.0", f"1.{args.versions // 2 - 1}.0"
    reads: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.reads):
        for version in (last, middle):
            for fmt in ("iceberg", "parquet"):
                started = time.perf_counter()
                table = mesh.read(f"bench.events_{fmt}", version)
                reads.setdefault((fmt, version), []).append(time.perf_counter() - started)
                assert table.num_rows == args.rows * (int(version.split(".")[1]) + 1) // 10
    home.close()
    shutil.rmtree(home_dir.parent, ignore_errors=True)  # ~1 GB at 10M rows

    mb = 1 << 20
    rows_label = f"{args.rows:,}"
    table_rows = [
        Row(f"storage after {args.versions} versions ({rows_label} rows at the last)",
            storage["iceberg"] / mb, storage["parquet"] / mb, "MiB", higher_is_better=False),
        Row(f"publish, all {args.versions} versions (total)", sum(publish["iceberg"]),
            sum(publish["parquet"]), "s", higher_is_better=False),
        Row(f"publish of the last version ({rows_label} rows, 10% new)", publish["iceberg"][-1],
            publish["parquet"][-1], "s", higher_is_better=False),
        Row(f"read of the last version ({rows_label} rows), median of {args.reads}",
            median(reads[("iceberg", last)]), median(reads[("parquet", last)]), "s",
            higher_is_better=False),
        Row(f"read of version {middle} ({args.rows * (args.versions // 2) // args.versions:,} "
            f"rows), median of {args.reads}", median(reads[("iceberg", middle)]),
            median(reads[("parquet", middle)]), "s", higher_is_better=False),
    ]  # fmt: skip
    command = (
        f".venv/bin/python benchmarks/b14_iceberg.py --rows {args.rows} "
        f"--versions {args.versions} --reads {args.reads}"
    )
    record(
        "B14-iceberg",
        "an append-only product published as 10 versions: Iceberg port vs full Parquet snapshots",
        command,
        "Parquet port (full snapshots)",
        table_rows,
    )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
