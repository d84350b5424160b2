"""UI: server time of the main pages with 10,000 data products and 100,000 runs (< 300 ms).

    .venv/bin/python benchmarks/b_ui_pages.py [--products 10000] [--runs 100000] [--repeat 15]

Seeding, in bulk: the 10,000 catalog entries go through the mesh catalog's own indexing
function (what publish calls), 20 of them are also really published through
`MeshService.publish_arrow` (the product pages open those); the 100,000 runs (in one
experiment, the worst case for the runs table) are inserted into the tracking tables in
batches, and their params and metric histories (3 steps x 2 metrics each) go through
`TrackingService.log_metric_rows`, the service's batch path that also maintains the latest
values the table sorts on. Pages are requested in-process (FastAPI TestClient, logged in with
a token), so the time is the server's: routing, services, queries and template rendering.
"""

from __future__ import annotations

import argparse
import random
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import pyarrow as pa
from fastapi.testclient import TestClient

from benchmarks.harness import Row, median, percentile, record
from meshops.api.app import create_app
from meshops.governance.authn import authenticate_token
from meshops.governance.service import GovernanceService
from meshops.kernel.config import load_settings
from meshops.kernel.home import Home
from meshops.mesh import catalog, catalog_index
from meshops.mesh.service import MeshService
from meshops.tracking import store as tracking_store
from meshops.tracking.service import TrackingService

DOMAINS = [f"domain{i:02d}" for i in range(20)]
# A business vocabulary of ~2,000 words drawn with a Zipf-like skew (as real catalogs reuse a
# few words a lot and most rarely); a handful of words would make every query match everything.
_SYLLABLES = [
    "or",
    "der",
    "cus",
    "to",
    "mer",
    "re",
    "ve",
    "nue",
    "pay",
    "ment",
    "ship",
    "stock",
    "sup",
    "pli",
    "cam",
    "paign",
    "ses",
    "sion",
]
WORDS = sorted({a + b + c for a in _SYLLABLES for b in _SYLLABLES for c in ("", "s", "er", "ing")})
_WEIGHTS = [1 / (rank + 1) for rank in range(len(WORDS))]


def word(rng: random.Random) -> str:
    return rng.choices(WORDS, _WEIGHTS)[0]


CLASSES = ["public", "internal", "confidential", "restricted"]


def seed_products(home: Home, count: int, rng: random.Random) -> list[str]:
    mesh = MeshService(home.context())
    for d in DOMAINS:
        mesh.create_domain(d, f"the {d} domain", owners=["bench"])
    published = []
    for i in range(20):
        domain, name = DOMAINS[i % len(DOMAINS)], f"real_{i}"
        descriptor = {
            "apiVersion": "v1.0.0",
            "kind": "DataProduct",
            "id": f"{domain}.{name}",
            "name": name,
            "domain": domain,
            "version": "1.0.0",
            "status": "active",
            "description": {"purpose": f"{word(rng)} facts"},
            "team": {"members": [{"username": "bench", "role": "owner"}]},
            "outputPorts": [{"name": "main", "version": "1.0.0", "contractId": f"c-{i}"}],
        }
        contract = {
            "apiVersion": "v3.1.0",
            "kind": "DataContract",
            "id": f"c-{i}",
            "version": "1.0.0",
            "status": "active",
            "schema": [
                {
                    "name": "main",
                    "properties": [
                        {"name": "id", "logicalType": "integer", "primaryKey": True},
                        {"name": "email", "logicalType": "string", "classification": "restricted"},
                    ],
                }
            ],
        }
        table = pa.table({"id": list(range(100)), "email": [f"u{k}@x.org" for k in range(100)]})
        mesh.publish_arrow(descriptor, {"main": contract}, {"main": table})
        published.append(f"{domain}.{name}")
    batch = []
    for i in range(count - len(published)):
        a, b = word(rng), word(rng)
        batch.append(
            catalog.entry(
                f"{DOMAINS[i % len(DOMAINS)]}.{a}_{b}_{i}",
                domain=DOMAINS[i % len(DOMAINS)],
                name=f"{a}_{b}_{i}",
                status="published" if i % 10 else "deprecated",
                description=f"{a} and {b} for the {word(rng)} team",
                tags=[word(rng) for _ in range(2)],
                owners=[f"user{i % 300}"],
                columns=[
                    {"name": f"{word(rng)}_{j}", "classification": rng.choice(CLASSES)}
                    for j in range(10)
                ],
                latest_version="1.0.0",
            )
        )
        if len(batch) == 5000:
            with home.db.begin() as conn:
                catalog_index.index(conn, batch)
            batch = []
    with home.db.begin() as conn:
        catalog_index.index(conn, batch)
    return published


def seed_runs(home: Home, count: int, rng: random.Random) -> list[str]:
    tracking = TrackingService(home.context())
    experiment = tracking.create_experiment("big", "100k runs").id
    start = datetime.now(UTC) - timedelta(days=30)
    ids = [f"{i:032x}" for i in range(count)]
    for lo in range(0, count, 10_000):
        chunk = ids[lo : lo + 10_000]
        runs = [
            {
                "id": rid,
                "experiment_id": experiment,
                "name": f"run-{lo + k}",
                "status": "RUNNING",  # finished below, once the metrics are in
                "user": "bench",
                "start_time": start + timedelta(seconds=lo + k),
                "end_time": start + timedelta(seconds=lo + k + 60),
                "parent_run_id": None,
                "error": None,
            }
            for k, rid in enumerate(chunk)
        ]
        params = [
            {"run_id": rid, "key": key, "value": str(rng.choice(values))}
            for rid in chunk
            for key, values in (("lr", (0.01, 0.1, 0.3)), ("model", ("rf", "gbm", "lr")))
        ]
        with home.db.begin() as conn:
            conn.execute(tracking_store.runs.insert(), runs)
            conn.execute(tracking_store.params.insert(), params)
        rows = [
            (rid, key, rng.random() * (1 + step), step, 1.7e9 + step)
            for rid in chunk
            for key in ("loss", "accuracy")
            for step in range(3)
        ]
        tracking.log_metric_rows(rows)
        with home.db.begin() as conn:
            conn.execute(
                tracking_store.runs.update()
                .where(tracking_store.runs.c.id.in_(chunk))
                .values(status="FINISHED")
            )
    return ids


def measure(client: TestClient, url: str, repeat: int) -> list[float]:
    client.get(url)  # warm caches (templates, SQLite pages)
    timings = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        response = client.get(url)
        timings.append((time.perf_counter() - t0) * 1000)
        assert response.status_code == 200, (url, response.status_code, response.text[:300])
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--products", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=15)
    args = parser.parse_args()
    rng = random.Random(9)
    with tempfile.TemporaryDirectory() as tmp:
        home = Home(load_settings(home=Path(tmp), env={"MESHOPS_USER": "bench"}))
        t0 = time.perf_counter()
        products = seed_products(home, args.products, rng)
        t1 = time.perf_counter()
        runs = seed_runs(home, args.runs, rng)
        t2 = time.perf_counter()
        print(
            f"seeded {args.products} products in {t1 - t0:.1f} s, "
            f"{args.runs} runs in {t2 - t1:.1f} s"
        )
        token = GovernanceService(home.context()).create_token("bench").token
        client = TestClient(create_app(home, authenticate=authenticate_token))
        client.post("/ui/login", data={"token": token})
        pages = {
            "home": "/ui",
            "catalog (first page + facets)": "/ui/catalog",
            f"catalog search '{WORDS[40]}' (typical word)": f"/ui/catalog?q={WORDS[40]}",
            f"catalog search '{WORDS[0]}' (most frequent word)": f"/ui/catalog?q={WORDS[0]}",
            "catalog facet domain + page 5": f"/ui/catalog?domain={DOMAINS[3]}&page=5",
            "data product page": f"/ui/products/{products[0]}",
            "runs table (newest 50)": "/ui/experiments/big",
            "runs table sorted by metric": "/ui/experiments/big?sort=metrics.%60loss%60+ASC",
            "runs table filtered": "/ui/experiments/big?filter="
            + quote("metrics.loss < 0.1 and params.model = 'rf'"),
            "run page (charts)": f"/ui/runs/{runs[-1]}",
            "compare 3 runs": f"/ui/runs/compare?run={runs[1]}&run={runs[2]}&run={runs[3]}",
            "governance": "/ui/governance",
        }
        rows = []
        for label, url in pages.items():
            timings = measure(client, url, args.repeat)
            p50, p95 = median(timings), percentile(timings, 95)
            print(f"{label:34s} p50 {p50:7.1f} ms   p95 {p95:7.1f} ms")
            rows.append(
                Row(
                    f"{label}, p95",
                    p95,
                    None,
                    "ms",
                    higher_is_better=False,
                    goal="< 300 ms",
                )
            )
        client.close()
        home.close()
    record(
        "UI",
        f"web UI page server time, {args.products:,} products / {args.runs:,} runs",
        "python benchmarks/b_ui_pages.py",
        "—",
        rows,
    )


if __name__ == "__main__":
    main()
