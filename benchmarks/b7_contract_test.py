"""B7: contract test of a data product (Parquet, 24 schema and quality rules), meshops vs
datacontract-cli `test` on the same ODCS contract and the same file.

    .venv/bin/python benchmarks/b7_contract_test.py [--rows 10000000] [--repeat 3]
                        [--duplicate-ids] [--no-peer] [--no-record] [--data-dir benchmarks/.data]

The data (fixed seed) is generated with Arrow and written once to benchmarks/.data/. The
contract is ODCS v3 with a `local` parquet server (what datacontract-cli reads). meshops runs
`meshops.mesh.contracts.run_contract_test` -- the function `meshops product validate` and
`publish` call -- on the contract as `specs.load_contract_for_port` reads it. The two tools
alternate; the table reports median wall seconds and the ratio, and the script prints the
verdict of every rule on both sides (the contract is built so that some rules fail).

Both tools run the same way: a fresh Python process per run that imports its entry module
first, then times reading the contract and testing the data (nothing is warm from an
earlier run in the same process): the timed span of each holds its first-use work (DuckDB
connections, pyarrow kernels, Soda's checks), not the interpreter's start or the entry
module's imports. Each process reports its peak RSS. `--no-peer` runs meshops alone (the
100M-row run: its time and peak RSS). `--duplicate-ids` writes data whose order ids repeat and
are out of order, so the uniqueness rules fail and take the exact (hash) path.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import yaml

from benchmarks.harness import DATA_DIR, Row, median, peer_python, record, run_peer

HERE = Path(__file__).resolve().parent
STATUSES = ["placed", "shipped", "delivered", "cancelled"]
# the version the published figures were measured against (1.2.8 crashed on a second rowCount rule)
PEER_REQUIREMENT = "datacontract-cli[duckdb,parquet]==1.2.8"
COUNTRIES = ["DE", "FR", "NL", "US", "GB", "ES", "IT", "PL", "SE", "XX"]  # XX: invalid


GENERATE_ROWS = 1_000_000  # rows generated and written at a time: one row group


def generate(rows: int, path: Path, duplicate_ids: bool = False) -> None:
    """Write the orders table one row group at a time (100M rows would not fit in memory at
    once); each group has its own seed, so the file is the same on every machine."""
    with pq.ParquetWriter(path, _orders(0, 1, False).schema, compression="zstd") as writer:
        for start in range(0, rows, GENERATE_ROWS):
            count = min(GENERATE_ROWS, rows - start)
            writer.write_table(_orders(start, count, duplicate_ids, total=rows))


def _orders(start: int, rows: int, duplicate_ids: bool, total: int = 0) -> pa.Table:
    """Rows start .. start+rows of the orders table of `total` rows."""
    total = max(total, rows)
    rng = np.random.default_rng([7, start])
    order_id = np.arange(start + 1, start + rows + 1, dtype=np.int64)
    if duplicate_ids:  # 0.1 % of the ids repeat an id from elsewhere in the file
        repeated = rng.choice(rows, max(1, rows // 1000), replace=False)
        order_id[repeated] = rng.integers(1, total + 1, len(repeated))
    customer = rng.integers(1, max(2, total // 10), rows, dtype=np.int64)
    email = pc.binary_join_element_wise(
        pa.array(np.full(rows, "c")), pc.cast(pa.array(customer), pa.string()), "@example.com", ""
    )
    bad_email = rng.random(rows) < 0.001  # 0.1 % malformed e-mails: the pattern rule fails
    email = pc.if_else(pa.array(bad_email), pa.scalar("not-an-email"), email)
    note_choice = rng.integers(0, 4, rows)
    notes = np.array(["", "n/a", "gift", "express"], dtype=object)[note_choice]
    discount = rng.random(rows) * 0.3
    discount_null = rng.random(rows) < 0.2
    return pa.table(
        {
            "order_id": order_id,
            "customer_id": customer,
            "status": pa.array(np.array(STATUSES, dtype=object)[rng.integers(0, 4, rows)]),
            "country": pa.array(
                np.array(COUNTRIES, dtype=object)[rng.choice(10, rows, p=[0.11] * 9 + [0.01])]
            ),
            "email": email,
            "amount": np.round(rng.gamma(2.0, 30.0, rows), 2),
            "quantity": rng.integers(1, 120, rows, dtype=np.int32),
            "discount": pa.array(discount, mask=discount_null),
            "created_at": pa.array(
                (1_700_000_000 + rng.integers(0, 30_000_000, rows)) * 1_000_000,
                pa.timestamp("us"),
            ),
            "note": pa.array(notes),
        }
    )


def contract(parquet: Path) -> dict[str, Any]:
    """ODCS v3: 10 schema rules (5 required, 1 unique, 4 physicalType) and 14 quality rules
    (12 executed; a custom and a text rule that meshops reports as not evaluated)."""

    def prop(name: str, logical: str, physical: str | None = None, **extra: Any) -> dict[str, Any]:
        out: dict[str, Any] = {"name": name, "logicalType": logical}
        if physical:
            out["physicalType"] = physical
        return {**out, **extra}

    return {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": "b7-orders",
        "name": "orders",
        "version": "1.0.0",
        "status": "active",
        "servers": [
            {"server": "local", "type": "local", "path": str(parquet), "format": "parquet"}
        ],
        "schema": [
            {
                "name": "orders",
                "physicalType": "table",
                "properties": [
                    prop("order_id", "integer", "bigint", required=True, unique=True),
                    prop(
                        "customer_id",
                        "integer",
                        required=True,
                        quality=[
                            {"type": "library", "metric": "nullValues", "mustBe": 0},
                            {
                                "type": "custom",
                                "engine": "soda",
                                "description": "reported, not run: Soda's own check",
                                "implementation": "type: duplicate_percent\ncolumns: [customer_id]",
                            },
                        ],
                    ),
                    prop(
                        "status",
                        "string",
                        "varchar",
                        required=True,
                        quality=[
                            {
                                "type": "library",
                                "metric": "invalidValues",
                                # a null among the valid values changes nothing
                                "arguments": {"validValues": [*STATUSES, None]},
                                "mustBe": 0,
                            }
                        ],
                    ),
                    prop(
                        "country",
                        "string",
                        quality=[
                            {
                                "type": "library",
                                "metric": "invalidValues",
                                "arguments": {"validValues": COUNTRIES[:-1]},
                                "mustBe": 0,
                            }
                        ],
                    ),
                    prop(
                        "email",
                        "string",
                        quality=[
                            # bounds excluded (ODCS): -1 < nulls < 1
                            {"type": "library", "metric": "nullValues", "mustBeBetween": [-1, 1]},
                            {
                                "type": "library",
                                "metric": "invalidValues",
                                "arguments": {"pattern": "^c[0-9]+@example\\.com$"},
                                "mustBe": 0,
                            },
                        ],
                    ),
                    prop("amount", "number", "double", required=True),
                    prop(
                        "quantity",
                        "integer",
                        quality=[
                            {
                                "type": "library",
                                "metric": "duplicateValues",
                                "mustBeGreaterThan": 0,
                            },
                            {  # the placeholders of the ODCS docs, quoted by meshops
                                "type": "sql",
                                "query": "SELECT count(*) FROM {object} "
                                "WHERE {property} NOT BETWEEN 1 AND 119",
                                "mustBe": 0,
                            },
                        ],
                    ),
                    prop(
                        "discount",
                        "number",
                        quality=[
                            {
                                "type": "library",
                                "metric": "nullValues",
                                "mustBeLessThan": 25,
                                "unit": "percent",
                            }
                        ],
                    ),
                    prop("created_at", "timestamp", "timestamp", required=True),
                    prop(
                        "note",
                        "string",
                        quality=[
                            {
                                "type": "library",
                                "metric": "missingValues",
                                "arguments": {"missingValues": [None, "", "n/a"]},
                                "mustBeLessThan": 40,
                                "unit": "percent",
                            }
                        ],
                    ),
                ],
                "quality": [
                    {"type": "library", "metric": "rowCount", "mustBeGreaterThan": 0},
                    {"type": "text", "description": "An order is final once shipped."},
                    {
                        "type": "library",
                        "metric": "duplicateValues",
                        "arguments": {"properties": ["order_id"]},
                        "mustBe": 0,
                    },
                    {
                        "type": "sql",
                        "query": "SELECT count(*) FROM {model} WHERE amount < 0",
                        "mustBe": 0,
                    },
                    {
                        "type": "sql",
                        "query": "SELECT count(*) FROM {model} WHERE quantity > 100",
                        "mustBeLessThan": 10,
                    },
                ],
            }
        ],
    }


def children_cpu() -> float:
    """User+system CPU seconds of the finished child processes: less load-dependent than
    wall time on a shared machine."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def meshops_child(contract_path: str, parquet: str) -> None:
    """One timed meshops run in this (fresh) process; prints one JSON line like the peer."""
    from meshops.mesh import contracts, specs

    started = time.perf_counter()
    doc = specs.load_yaml(Path(contract_path))
    port = specs.load_contract_for_port(doc, "orders", "b7-orders")
    report = contracts.run_contract_test(parquet, "orders", port.columns, port.schema_object, [])
    seconds = time.perf_counter() - started
    results = [r.model_dump(mode="json") for r in report.results]
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux: KiB
    print(json.dumps({"seconds": seconds, "results": results, "peak_mb": peak_mb}))


def run_meshops(contract_path: Path, parquet: Path) -> dict[str, Any]:
    """One fresh meshops process: its seconds, results and peak RSS (MiB)."""
    return run_peer(
        Path(sys.executable), Path(__file__), "--child", str(contract_path), str(parquet)
    )


_PEER_KIND = {
    "field_is_present": "present",
    "field_type": "type",
    "field_required": "required",
    "field_unique": "unique",
    "field_null_values": "nullValues",
    "field_invalid_values": "invalidValues",
    "field_missing_values": "missingValues",
    "field_duplicate_values": "duplicateValues",
    "row_count": "rowCount",
    "model_duplicate_values": "duplicateValues",
}


def _mesh_key(rule: str, sql_seen: list[str]) -> str:
    parts = rule.split(".")
    if parts[0] == "schema":  # schema.orders.<column>.<check>
        return f"{parts[2]}:{parts[3]}"
    column = "*" if parts[2] == "*" else parts[2]
    label = parts[3]
    if label == "sql" and column != "*":
        return f"{column}:sql"
    if label == "sql":
        sql_seen.append(rule)
        return f"*:sql{len(sql_seen)}"
    return f"{column}:{label}"


def _peer_key(check: dict[str, Any], sql_seen: list[str]) -> str:
    if check["type"] == "model_quality_sql":
        sql_seen.append(check["name"])
        return f"*:sql{len(sql_seen)}"
    if check["type"] == "field_quality_sql":
        return f"{check['field']}:sql"
    return f"{check['field'] or '*'}:{_PEER_KIND.get(check['type'], check['type'])}"


def _unique(pairs: list[tuple[str, dict[str, Any]]]) -> dict[str, dict[str, Any]]:
    """Keys in order, a repeated one numbered (two rowCount rules: *:rowCount, *:rowCount#2)."""
    out: dict[str, dict[str, Any]] = {}
    for key, value in pairs:
        name, n = key, 1
        while name in out:
            n += 1
            name = f"{key}#{n}"
        out[name] = value
    return out


def compare(
    mesh: list[dict[str, Any]], peer: list[dict[str, Any]]
) -> tuple[list[str], int, int, list[str]]:
    """Rule-by-rule verdicts; returns (report lines, compared, agreeing, disagreements)."""
    mesh_sql: list[str] = []
    peer_sql: list[str] = []
    mine = _unique([(_mesh_key(r["rule"], mesh_sql), r) for r in mesh])
    theirs = _unique([(_peer_key(c, peer_sql), c) for c in peer])
    lines, compared, agree, differ = [], 0, 0, []
    for key in sorted(set(mine) | set(theirs)):
        m, d = mine.get(key), theirs.get(key)
        judged = m is not None and not str(m.get("status", "")).startswith("not ")
        passed = bool(m and m["passed"])
        m_verdict = ("pass" if passed else "FAIL") if judged else "—"
        if m and not judged:
            m_verdict = str(m["status"])
        d_verdict = d["result"] if d else "—"
        note = ""
        if judged and d and d["result"] in ("passed", "failed"):
            compared += 1
            if (d["result"] == "passed") == passed:
                agree += 1
            else:
                differ.append(key)
                note = "  <-- DISAGREE"
        elif judged and d:
            note = f"  (datacontract-cli: {d['reason'][:60]})"
        elif m:
            note = "  (datacontract-cli has no such check)"
        lines.append(f"  {key:<28} meshops {m_verdict:<5} datacontract-cli {d_verdict:<8}{note}")
    return lines, compared, agree, differ


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--duplicate-ids", action="store_true", help="order ids repeat")
    parser.add_argument(
        "--data-dir", type=Path, default=DATA_DIR, help="where the Parquet file is written"
    )
    parser.add_argument(
        "--no-peer", action="store_true", help="meshops only (datacontract-cli not run)"
    )
    parser.add_argument(
        "--no-record", action="store_true", help="print the figures, leave RESULTS.md alone"
    )
    parser.add_argument("--child", nargs=2, metavar=("CONTRACT", "PARQUET"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        meshops_child(*args.child)
        return
    data_dir: Path = args.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    name = f"b7_orders_{args.rows}{'_dup' if args.duplicate_ids else ''}"
    parquet = data_dir / f"{name}.parquet"
    if not parquet.exists():
        began = time.perf_counter()
        generate(args.rows, parquet, args.duplicate_ids)
        print(f"generated {args.rows:,} rows in {time.perf_counter() - began:.1f} s", flush=True)
    contract_path = data_dir / f"{name}.odcs.yaml"
    contract_path.write_text(yaml.safe_dump(contract(parquet), sort_keys=False))
    loads = [os.getloadavg()[0]]
    mesh, peer = _Runs(), None if args.no_peer else _Runs()
    python = None if args.no_peer else peer_python("datacontract", [PEER_REQUIREMENT])
    script = HERE / "peers" / "datacontract_b7.py"
    for _ in range(args.repeat):  # the tools alternate: both see the same load
        _run_once("meshops", lambda: run_meshops(contract_path, parquet), mesh)
        if peer is not None and python is not None:
            _run_once(
                "datacontract-cli", lambda: run_peer(python, script, str(contract_path)), peer
            )
    loads.append(os.getloadavg()[0])
    print(f"load average (1 min) before {loads[0]:.1f}, after {loads[1]:.1f}", flush=True)
    agree = compared = 0
    if peer is not None:
        lines, compared, agree, differ = compare(mesh.results, peer.results)
        print("\n".join(lines))
        print(f"rules compared: {compared}, same verdict: {agree}, disagreements: {differ}")
    (data_dir / f"b7_verdicts_{name.removeprefix('b7_orders_')}.json").write_text(
        json.dumps({"meshops": mesh.results, "datacontract": peer and peer.results}, indent=1)
    )
    if not args.no_record:
        record_runs(args, mesh, peer, (agree, compared))


@dataclass
class _Runs:
    """One tool's runs: wall seconds, process CPU seconds, peak RSS (MiB), last results."""

    seconds: list[float] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)
    peak_mb: list[float] = field(default_factory=list)
    results: list[dict[str, Any]] = field(default_factory=list)


def _run_once(label: str, run: Callable[[], dict[str, Any]], runs: _Runs) -> None:
    """`run` (one fresh process) once, its figures added to `runs`."""
    cpu_before = children_cpu()
    out = run()
    runs.cpu.append(children_cpu() - cpu_before)
    runs.seconds.append(float(out["seconds"]))
    runs.peak_mb.append(float(out["peak_mb"]))
    runs.results = list(out.get("results") or out.get("checks") or [])
    print(
        f"{label}: {runs.seconds[-1]:.2f} s, process CPU {runs.cpu[-1]:.2f} s, "
        f"peak RSS {runs.peak_mb[-1]:.0f} MiB, load {os.getloadavg()[0]:.1f}",
        flush=True,
    )


def record_runs(
    args: argparse.Namespace, mesh: _Runs, peer: _Runs | None, verdicts: tuple[int, int]
) -> None:
    rows = [
        Row(
            f"contract test, {args.rows:,} rows, 24 rules (s, median of {args.repeat})",
            median(mesh.seconds),
            median(peer.seconds) if peer else None,
            "s",
            higher_is_better=False,
            goal="≥ 10×" if peer else "",
        ),
        Row(
            "CPU seconds of the whole process (user+sys, with start-up and imports)",
            median(mesh.cpu),
            median(peer.cpu) if peer else None,
            "s",
            higher_is_better=False,
        ),
        Row(
            "peak RSS of the whole process (MiB, the largest run)",
            max(mesh.peak_mb),
            max(peer.peak_mb) if peer else None,
            "MiB",
            higher_is_better=False,
            goal="≤ 4,096 MiB" if args.rows >= 100_000_000 else "",
        ),
    ]
    if peer:
        rows.append(
            Row(
                "rules both tools judged (pass/fail): same verdict",
                float(verdicts[0]),
                float(verdicts[1]),
                "rules",
                goal="same verdicts",
            )
        )
    bench_id = "B7" if args.rows == 10_000_000 else f"B7-{args.rows}"
    flags = " --duplicate-ids" if args.duplicate_ids else ""
    flags += " --no-peer" if args.no_peer else ""
    record(
        bench_id + ("-duplicate-ids" if args.duplicate_ids else ""),
        f"contract test ({args.rows:,} rows{', repeated order ids' if args.duplicate_ids else ''})",
        f"python benchmarks/b7_contract_test.py --rows {args.rows} --repeat {args.repeat}{flags}",
        "datacontract-cli",
        rows,
    )


if __name__ == "__main__":
    main()
