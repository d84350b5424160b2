"""B11: a governed, sandboxed `product sql` aggregate over 10M rows against the same query
in a raw DuckDB connection on the Parquet snapshot file. Goal: within 1.2x of raw.

    .venv/bin/python benchmarks/b11_sandbox_sql.py [--rows 10000000] [--repeat 7]

meshops side: `platform.mesh.sql(query)` on an embedded home, which is what `meshops product
sql` and `POST /v1/mesh/sql` run: parse and check the text on DuckDB's syntax tree, look the
product up, ask the read guard for the caller's plan, open the sandbox (a fresh DuckDB with
external access off, config locked, the governed view over the snapshot), run, record usage.
Raw side: the same SELECT over `read_parquet('<snapshot file>')` in one DuckDB connection
opened once (no parsing checks, no governance, nothing recorded).

Rows: the owner (no grant needed, nothing masked); a consumer through a grant that masks
the PII column (`hash`, HMAC; the aggregate does not read it, so no hashing happens); a
consumer whose grant has a row filter (the raw query gets the same WHERE). Runs alternate
ABBA; medians are reported.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.b_governed_read import contract, descriptor  # the same product
from benchmarks.harness import Row, median, record, timed
from meshops.client import Platform
from meshops.governance.service import GovernanceService
from meshops.kernel.auth import Actor
from meshops.kernel.config import load_settings
from meshops.kernel.home import Home
from meshops.mesh.service import MeshService

PRODUCT = "bench.orders"
QUERY = (
    "SELECT region, count(*) AS orders, sum(amount) AS revenue, avg(amount) AS mean, "
    "count(DISTINCT customer) AS customers FROM {source}{where} GROUP BY region ORDER BY region"
)
# A light aggregate too: it shows the fixed cost per query (lookups, plan, sandbox, usage).
LIGHT = "SELECT region, count(*) AS orders, sum(amount) AS revenue FROM {source} GROUP BY region"
ROW_FILTER = "region = 'EU'"


def make_table(rows: int) -> pa.Table:
    rng = np.random.default_rng(11)
    customers = rng.integers(0, 1_000_000, rows)
    email = pc.binary_join_element_wise(
        pa.array(np.full(rows, "c")), pc.cast(pa.array(customers), pa.string()), "@example.com", ""
    )
    return pa.table(
        {
            "order_id": pa.array(np.arange(rows, dtype=np.int64)),
            "customer": pa.array(customers),
            "region": pa.DictionaryArray.from_arrays(
                pa.array(rng.integers(0, 4, rows).astype(np.int32)),
                pa.array(["EU", "US", "APAC", "LATAM"]),
            ).cast(pa.string()),
            "amount": pa.array(rng.gamma(2.0, 50.0, rows)),
            "email": email,
        }
    )


def check_same(governed: pa.Table, raw: pa.Table) -> None:
    """The governed and raw answers agree before anything is timed (sums of floats to
    rounding: DuckDB adds in parallel, in no fixed order)."""
    assert governed.column_names == raw.column_names
    for name in governed.column_names:
        a, b = governed.column(name).to_pylist(), raw.column(name).to_pylist()
        if name in ("revenue", "mean"):
            assert np.allclose(a, b, rtol=1e-9), name
        else:
            assert a == b, name


def alternate(governed: object, raw: object, repeat: int) -> tuple[float, float]:
    """Median seconds of each, run ABBA so neither side always goes first."""
    assert callable(governed) and callable(raw)
    governed()  # warm the page cache and both code paths
    raw()
    g_times, r_times = [], []
    for i in range(repeat):
        if i % 2 == 0:
            g_times.append(timed(governed))
            r_times.append(timed(raw))
        else:
            r_times.append(timed(raw))
            g_times.append(timed(governed))
    return median(g_times), median(r_times)


def main() -> None:
    import duckdb

    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=7)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        settings = load_settings(home=Path(tmp) / "home", env={"MESHOPS_USER": "admin"})
        home = Home(settings)
        print(f"[b11] publishing {args.rows:,} rows", flush=True)
        version = MeshService(home.context()).publish_arrow(
            descriptor(), {"orders": contract()}, {"orders": make_table(args.rows)}
        )
        gov = GovernanceService(home.context())
        gov.grant_access(PRODUCT, "orders", "carl")  # email (pii) is masked with `hash`
        gov.grant_access(PRODUCT, "orders", "fiona", row_filter=ROW_FILTER)
        people = {
            n: Platform(settings, home=home, actor=Actor(n)) for n in ("olivia", "carl", "fiona")
        }
        governed_sql = QUERY.format(source=PRODUCT, where="")
        raw_con = duckdb.connect()
        with home.blobs.local_path(version.port("orders").snapshot_digest) as path:
            source = f"read_parquet('{path}')"
            raw_sql = QUERY.format(source=source, where="")
            raw_filtered = QUERY.format(source=source, where=f" WHERE {ROW_FILTER}")
            check_same(
                people["olivia"].mesh.sql(governed_sql), raw_con.sql(raw_sql).to_arrow_table()
            )
            light_governed = LIGHT.format(source=PRODUCT)
            light_raw = LIGHT.format(source=source)
            workloads = {
                "owner, aggregate (no grant needed)": (
                    lambda: people["olivia"].mesh.sql(governed_sql),
                    lambda: raw_con.sql(raw_sql).to_arrow_table(),
                ),
                "consumer through a grant masking the PII column": (
                    lambda: people["carl"].mesh.sql(governed_sql),
                    lambda: raw_con.sql(raw_sql).to_arrow_table(),
                ),
                "consumer through a row-filtered grant (raw: same WHERE)": (
                    lambda: people["fiona"].mesh.sql(governed_sql),
                    lambda: raw_con.sql(raw_filtered).to_arrow_table(),
                ),
                "consumer, light aggregate (count, sum by region)": (
                    lambda: people["carl"].mesh.sql(light_governed),
                    lambda: raw_con.sql(light_raw).to_arrow_table(),
                ),
            }
            rows = []
            for name, (governed, raw) in workloads.items():
                g, r = alternate(governed, raw, args.repeat)
                print(f"  {name}: governed {g:.3f}s raw {r:.3f}s ratio {g / r:.2f}x", flush=True)
                goal = "within 1.2× of raw (ratio ≥ 0.83×)"
                if "light" in name:  # measures the fixed cost per query, reported as such
                    goal = "info: fixed cost per query (lookups, guard, usage, fresh database)"
                rows.append(Row(name, g, r, "s", higher_is_better=False, goal=goal))
        raw_con.close()
        usage = GovernanceService(home.context()).product_usage(PRODUCT)
        expected = 1 + len(workloads) * (args.repeat + 1)
        assert usage.reads == expected, (usage.reads, expected)  # every query was recorded
        for platform in people.values():
            platform.close()
        home.close()
    record(
        "B11",
        f"governed sandboxed `product sql` aggregate vs raw DuckDB, {args.rows:,} rows",
        f".venv/bin/python benchmarks/b11_sandbox_sql.py --rows {args.rows}",
        "raw DuckDB on the Parquet file",
        rows,
    )


if __name__ == "__main__":
    main()
