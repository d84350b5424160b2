"""B3: point-in-time correct training set, 10M label rows x 3 feature views of 1M rows x 10
features, vs Feast `get_historical_features` (file offline store, peer venv) and a
hand-written DuckDB ASOF JOIN over the same Parquet files (the limit).

meshops reads the views through the governed read path of published data products and
records the training set (entity rows stored as a blob, digest, lineage); its rows are
streamed out (RecordBatchReader) and consumed batch by batch, as are the hand-written
join's. Every system runs in its own process, so peak RSS is its own.

    .venv/bin/python benchmarks/b3_training_set.py [--labels 10000000] [--rows 1000000]
        [--repeat 3] [--feast-labels N] [--feast-timeout 600] [--only meshops|feast]

`--only meshops` runs meshops and the hand-written join at --labels (no Feast); `--only
feast` runs Feast once at --feast-labels and meshops --repeat times at the same labels (the
ratio only). Each child reports its wall time and its CPU time (all threads), so a run on a
shared machine can be read for how much of the wall time was waiting for a core.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import os
import resource
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

sys.path.insert(0, str(Path(__file__).resolve().parent))
from harness import DATA_DIR, HERE, Row, median, peer_python, record, run_peer

ROOT = HERE.parent
VIEWS, FEATURES, TTL_DAYS = 3, 10, 180
START_US = 1_704_067_200_000_000  # 2024-01-01 UTC
YEAR_US = 365 * 86_400 * 1_000_000
TS = pa.timestamp("us", tz="UTC")


def data_dir(rows: int, entities: int, root: Path = DATA_DIR) -> Path:
    return root / f"b3_r{rows}_e{entities}"


def labels_file(folder: Path, labels: int) -> Path:
    return folder / f"labels_{labels}.parquet"


def view_file(folder: Path, i: int) -> Path:
    return folder / f"view{i}.parquet"


def generate(rows: int, entities: int, labels: int, root: Path = DATA_DIR) -> Path:
    """Views and labels with a fixed seed (cached on disk), written in parts of 10M rows so
    that 100M labels never sit in memory twice."""
    folder = data_dir(rows, entities, root)
    folder.mkdir(parents=True, exist_ok=True)
    for i in range(VIEWS):
        if view_file(folder, i).exists():
            continue
        rng = np.random.default_rng(100 + i)
        with _writer(view_file(folder, i), rows) as write:
            for part in _parts(rows):
                columns: dict[str, Any] = {
                    "entity_id": rng.integers(0, entities, part, dtype=np.int64),
                    "event_timestamp": pa.array(START_US + rng.integers(0, YEAR_US, part), TS),
                }
                for j in range(FEATURES):
                    columns[f"v{i}_f{j}"] = rng.random(part)
                write(pa.table(columns))
    if not labels_file(folder, labels).exists():
        rng = np.random.default_rng(7)
        with _writer(labels_file(folder, labels), labels) as write:
            for part in _parts(labels):
                # Labels in the second half of the year: nearly every one has a value within
                # the TTL (Feast's file store drops label rows that have none).
                ids = rng.integers(0, entities, part, dtype=np.int64)
                times = START_US + rng.integers(YEAR_US // 2, YEAR_US, part)
                write(pa.table({"entity_id": ids, "event_timestamp": pa.array(times, TS)}))
    return folder


PART_ROWS = 10_000_000


def _parts(rows: int) -> list[int]:
    return [min(PART_ROWS, rows - start) for start in range(0, rows, PART_ROWS)]


@contextlib.contextmanager
def _writer(path: Path, rows: int) -> Iterator[Callable[[pa.Table], None]]:
    """A Parquet file written part by part (into a temp name, renamed when complete)."""
    partial = path.with_suffix(".partial")
    writer: pq.ParquetWriter | None = None

    def write(table: pa.Table) -> None:
        nonlocal writer
        writer = writer or pq.ParquetWriter(partial, table.schema)
        writer.write_table(table)

    yield write
    if writer is not None:
        writer.close()
    partial.rename(path)


def feature_refs() -> list[str]:
    return [f"view{i}:v{i}_f{j}" for i in range(VIEWS) for j in range(FEATURES)]


# --- meshops ---------------------------------------------------------------------------


def _platform(folder: Path) -> Any:
    from meshops.client import Platform
    from meshops.kernel.config import load_settings
    from meshops.kernel.home import Home

    settings = load_settings(home=folder / "home", env={"MESHOPS_USER": "bench"})
    return Platform(settings, home=Home(settings))


def setup_meshops(folder: Path) -> None:
    """Publish the three views as data products and apply the feature definitions."""
    from meshops.features.models import Entity, Feature, FeatureRepo, FeatureView, SourceRef

    platform = _platform(folder)
    views = []
    for i in range(VIEWS):
        product = f"bench.view{i}"
        table = pq.read_table(view_file(folder, i))
        try:
            platform.mesh.get_version(product)
        except Exception:
            properties = [
                {"name": "entity_id", "logicalType": "integer"},
                {"name": "event_timestamp", "logicalType": "timestamp"},
            ] + [{"name": f"v{i}_f{j}", "logicalType": "number"} for j in range(FEATURES)]
            platform.mesh.publish_arrow(
                {"apiVersion": "v1.0.0", "kind": "DataProduct", "id": product,
                 "name": f"view{i}", "domain": "bench", "version": "1.0.0", "status": "active",
                 "description": {"purpose": "benchmark data"},
                 "team": {"members": [{"username": "bench", "role": "owner"}]},
                 "outputPorts": [{"name": "main", "version": "1.0.0", "contractId": "c"}]},
                {"main": {"apiVersion": "v3.0.2", "kind": "DataContract", "id": "c",
                          "version": "1.0.0", "status": "active",
                          "schema": [{"name": "main", "properties": properties}]}},
                {"main": table},
            )  # fmt: skip
        views.append(
            FeatureView(
                name=f"view{i}",
                entities=["entity"],
                source=SourceRef(product=product),
                event_time="event_timestamp",
                ttl_seconds=TTL_DAYS * 86_400,
                features=[Feature(name=f"v{i}_f{j}", type="float64") for j in range(FEATURES)],
            )
        )
    platform.features.apply(
        FeatureRepo(entities=[Entity(name="entity", join_keys=["entity_id"])], feature_views=views)
    )
    platform.close()


def child_meshops(folder: Path, labels: int) -> dict[str, Any]:
    import pyarrow.compute as pc

    platform = _platform(folder)
    table = pq.read_table(labels_file(folder, labels))
    start, cpu = time.perf_counter(), time.process_time()
    result = platform.features.training_set(table, feature_refs(), name="b3")
    rows, checksum = 0, 0.0
    for batch in result.reader():
        rows += batch.num_rows
        checksum += pc.sum(batch.column("v0_f0")).as_py() or 0.0
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
            "rows": rows, "checksum": checksum}  # fmt: skip


def child_duckdb(folder: Path, labels: int, memory_limit: str | None) -> dict[str, Any]:
    """The hand-written limit: three chained ASOF LEFT JOINs with the TTL, streamed (with
    `memory_limit`, DuckDB spills beyond it into the data folder)."""
    import duckdb
    import pyarrow.compute as pc

    table = pq.read_table(labels_file(folder, labels))
    start, cpu = time.perf_counter(), time.process_time()
    con = duckdb.connect()
    con.execute("SET TimeZone = 'UTC'")
    if memory_limit:
        con.execute(f"SET memory_limit = '{memory_limit}'")
        con.execute(f"SET temp_directory = '{folder / 'spill'}'")
        con.execute("SET preserve_insertion_order = false")
    con.register("labels", table)
    select, joins = ["l.entity_id", "l.event_timestamp"], []
    for i in range(VIEWS):
        joins.append(
            f"ASOF LEFT JOIN read_parquet('{view_file(folder, i)}') v{i} "
            f"ON l.entity_id = v{i}.entity_id AND l.event_timestamp >= v{i}.event_timestamp"
        )
        select += [
            f"CASE WHEN v{i}.event_timestamp >= l.event_timestamp - INTERVAL {TTL_DAYS} DAY "
            f"THEN v{i}.v{i}_f{j} END AS v{i}_f{j}"
            for j in range(FEATURES)
        ]
    sql = f"SELECT {', '.join(select)} FROM labels l {' '.join(joins)}"
    rows, checksum = 0, 0.0
    for batch in con.sql(sql).to_arrow_reader(128 * 1024):
        rows += batch.num_rows
        checksum += pc.sum(batch.column("v0_f0")).as_py() or 0.0
    return {"seconds": time.perf_counter() - start, "cpu_seconds": time.process_time() - cpu,
            "rows": rows, "checksum": checksum}  # fmt: skip


def run_child(
    kind: str,
    folder: Path,
    labels: int,
    *,
    rss_limit_mib: float = 8192,
    duckdb_memory_limit: str | None = None,
    timeout: float | None = None,
) -> dict[str, Any]:
    """One system in its own process, killed if its RSS passes `rss_limit_mib` (the machine
    is shared: a run that would take more must not take it from the others)."""
    command = [sys.executable, __file__, "--child", kind, "--folder", str(folder),
               "--labels", str(labels)]  # fmt: skip
    if duckdb_memory_limit:
        command += ["--duckdb-memory-limit", duckdb_memory_limit]
    with subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT / "src")},
    ) as proc:  # fmt: skip
        watch = RssWatch(proc, rss_limit_mib)
        watch.start()
        try:
            stdout, stderr = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.communicate()
            return {"failed": f"did not finish in {timeout:,.0f} s", "rss_mib": watch.peak_mib}
        watch.join()
    if watch.killed:
        return {"failed": f"killed at {watch.peak_mib:,.0f} MiB RSS (limit {rss_limit_mib:,.0f})",
                "rss_mib": watch.peak_mib}  # fmt: skip
    if proc.returncode != 0:
        raise RuntimeError(f"{kind} child failed:\n{stderr[-4000:]}")
    result: dict[str, Any] = json.loads(stdout.strip().splitlines()[-1])
    return result


class RssWatch(threading.Thread):
    """Samples a child's resident memory 10 times a second and kills it above the limit."""

    def __init__(self, proc: subprocess.Popen[str], limit_mib: float) -> None:
        super().__init__(daemon=True)
        self.proc, self.limit_mib = proc, limit_mib
        self.peak_mib, self.killed = 0.0, False

    def run(self) -> None:
        status = Path(f"/proc/{self.proc.pid}/status")
        while self.proc.poll() is None:
            # (a child that has just exited has no VmRSS line: StopIteration)
            with contextlib.suppress(OSError, ValueError, StopIteration):
                line = next(x for x in status.read_text().splitlines() if x.startswith("VmRSS"))
                self.peak_mib = max(self.peak_mib, int(line.split()[1]) / 1024)
            if self.peak_mib > self.limit_mib:
                self.killed = True
                self.proc.kill()
                return
            time.sleep(0.1)


def run_feast(folder: Path, labels: int, timeout: float) -> tuple[dict[str, Any] | None, str]:
    """Feast's result, or None and why it did not finish (timeout, crash, OOM kill)."""
    python = peer_python("feast", ["feast"])
    started = time.perf_counter()
    try:
        result = run_peer(
            python, HERE / "peers" / "feast_b3.py", str(folder),
            str(labels_file(folder, labels)), str(TTL_DAYS),
            *[str(view_file(folder, i)) for i in range(VIEWS)], timeout=timeout,
        )  # fmt: skip
        return result, ""
    except subprocess.TimeoutExpired:
        return None, f"did not finish in {timeout:.0f} s"
    except RuntimeError as exc:
        print(f"[b3] Feast at {labels:,} labels failed: {str(exc)[-300:]}", flush=True)
        return (
            None,
            f"crashed after {time.perf_counter() - started:.0f} s (killed, e.g. out of memory)",
        )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--labels", type=int, default=10_000_000)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--entities", type=int, default=100_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--feast-labels", type=int, default=None)
    parser.add_argument("--feast-fallback-labels", type=int, default=1_000_000)
    parser.add_argument("--feast-timeout", type=float, default=600)
    parser.add_argument("--only", choices=["meshops", "feast"], default=None)
    parser.add_argument("--child", choices=["meshops", "duckdb"])
    parser.add_argument("--folder", type=Path)
    parser.add_argument("--data-dir", type=Path, default=DATA_DIR)
    parser.add_argument(
        "--duckdb-memory-limit",
        default=None,
        help="memory_limit of the hand-written join (it spills beyond it)",
    )
    parser.add_argument("--child-timeout", type=float, default=None)
    parser.add_argument(
        "--rss-limit-mib",
        type=float,
        default=8192,
        help="a child above this RSS is killed and reported as failed",
    )
    args = parser.parse_args()
    if args.child:
        if args.child == "meshops":
            result = child_meshops(args.folder, args.labels)
        else:
            result = child_duckdb(args.folder, args.labels, args.duckdb_memory_limit)
        result["rss_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(result))
        return

    if args.only == "feast":
        feast_only(args)
        return
    folder = generate(args.rows, args.entities, args.labels, args.data_dir)
    setup_meshops(folder)
    meshops_runs: list[dict[str, Any]] = []
    duckdb_runs: list[dict[str, Any]] = []
    for round_ in range(args.repeat):
        pair = [("meshops", meshops_runs), ("duckdb", duckdb_runs)]
        for kind, runs in pair if round_ % 2 == 0 else pair[::-1]:
            load = Path("/proc/loadavg").read_text().split()[0]
            runs.append(run_child(kind, folder, args.labels, rss_limit_mib=args.rss_limit_mib,
                                  duckdb_memory_limit=args.duckdb_memory_limit,
                                  timeout=args.child_timeout))  # fmt: skip
            print(f"[b3] {kind} (load before {load}): {runs[-1]}", flush=True)
    rows = join_rows(args, meshops_runs, duckdb_runs)
    if args.only == "meshops":
        record_rows(rows)
        return
    feast_labels = args.feast_labels or args.labels
    feast, failure = run_feast(folder, feast_labels, args.feast_timeout)
    if feast is None:
        rows.append(
            Row(f"{feast_labels / 1e6:g}M labels: Feast get_historical_features ({failure})",
                rows[0].meshops, None, "s", higher_is_better=False)
        )  # fmt: skip
        if args.feast_fallback_labels < feast_labels:
            feast_labels = args.feast_fallback_labels
            generate(args.rows, args.entities, feast_labels)
            feast, failure = run_feast(folder, feast_labels, args.feast_timeout)
    if feast is not None:
        print(f"[b3] feast: {feast}", flush=True)
        at_scale = meshops_runs
        if feast_labels != args.labels:
            at_scale = [run_child("meshops", folder, feast_labels) for _ in range(3)]
        rows.append(feast_vs_meshops_row(feast_labels, at_scale, feast))
        rows.append(
            Row(f"{feast_labels / 1e6:g}M labels: peak RSS vs Feast",
                max(r["rss_mib"] for r in at_scale), float(feast["rss_mib"]), "MiB",
                higher_is_better=False)
        )  # fmt: skip
    record_rows(rows)


def join_rows(
    args: argparse.Namespace, meshops_runs: list[dict[str, Any]], duckdb_runs: list[dict[str, Any]]
) -> list[Row]:
    """The rows of meshops vs the hand-written join; a run killed above the RSS limit (or
    one of DuckDB's that failed) shows as — with why."""
    done = [r for r in meshops_runs if "failed" not in r]
    if not done:
        raise SystemExit(f"meshops did not finish: {meshops_runs}")
    duck_done = [r for r in duckdb_runs if "failed" not in r]
    assert all(r["rows"] == args.labels for r in done + duck_done)
    if duck_done:
        assert abs(done[0]["checksum"] - duck_done[0]["checksum"]) < 1e-6 * args.labels
    mesh_s = median([r["seconds"] for r in done])
    duck_s = median([r["seconds"] for r in duck_done]) if duck_done else None
    size = f"{args.labels / 1e6:g}M labels × {VIEWS} views of {args.rows / 1e6:g}M rows"
    why = "" if duck_done else f" (hand-written: {duckdb_runs[0]['failed']})"
    big = args.labels > 10_000_000
    return [
        Row(f"{size} × {FEATURES}: vs hand-written DuckDB ASOF JOIN (limit){why}", mesh_s,
            duck_s, "s", higher_is_better=False, goal="completes" if big else "≥ 1.0×"),
        Row(f"peak RSS of the process ({size})", max(r["rss_mib"] for r in done),
            max(r["rss_mib"] for r in duckdb_runs), "MiB", higher_is_better=False,
            goal="< 8 GB" if big else "< 3 GB"),
        Row(f"CPU seconds, all threads ({size})", median([r["cpu_seconds"] for r in done]),
            median([r["cpu_seconds"] for r in duck_done]) if duck_done else None, "s",
            higher_is_better=False),
    ]  # fmt: skip


def feast_vs_meshops_row(labels: int, meshops_runs: list[Any], feast: dict[str, Any]) -> Row:
    return Row(f"{labels / 1e6:g}M labels: vs Feast get_historical_features (file store)",
               median([r["seconds"] for r in meshops_runs]), float(feast["seconds"]), "s",
               higher_is_better=False, goal="≥ 20×")  # fmt: skip


def feast_only(args: argparse.Namespace) -> None:
    """Feast once and meshops `--repeat` times at the same labels: the ratio alone."""
    labels = args.feast_labels or args.labels
    folder = generate(args.rows, args.entities, labels)
    setup_meshops(folder)
    runs = []
    for _ in range(args.repeat):
        runs.append(run_child("meshops", folder, labels))
        print(f"[b3] meshops: {runs[-1]}", flush=True)
    feast, failure = run_feast(folder, labels, args.feast_timeout)
    if feast is None:
        raise SystemExit(f"Feast at {labels:,} labels {failure}")
    print(f"[b3] feast: {feast}", flush=True)
    record_rows([feast_vs_meshops_row(labels, runs, feast)])


KEPT_ROWS = DATA_DIR / "b3_rows.json"


def record_rows(rows: list[Row]) -> None:
    """Record these rows with the rows of earlier invocations at other sizes (kept in
    KEPT_ROWS, each with its command): the 10M and the 100M runs are separate runs."""
    command = "python benchmarks/b3_training_set.py " + " ".join(sys.argv[1:])
    stamp = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())
    load = Path("/proc/loadavg").read_text().split()[0]
    kept = json.loads(KEPT_ROWS.read_text()) if KEPT_ROWS.exists() else []
    new = [
        {"row": dataclasses.asdict(row), "command": f"{command} [{stamp}, load after {load}]"}
        for row in rows
    ]
    names = {row.workload for row in rows}
    kept = [k for k in kept if k["row"]["workload"] not in names] + new
    KEPT_ROWS.parent.mkdir(parents=True, exist_ok=True)
    KEPT_ROWS.write_text(json.dumps(kept, indent=1))
    commands = list(dict.fromkeys(k["command"] for k in kept))
    record(
        "B3",
        "point-in-time training set",
        "; ".join(commands),
        "peer (hand-written DuckDB / Feast)",
        [Row(**k["row"]) for k in kept],
    )


if __name__ == "__main__":
    main()
