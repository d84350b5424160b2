"""Search pages load params, tags and latest metrics of up to 1,000 runs per statement
(`store.key_values`, `store.latest_metric_details`): what they return is exactly what one
query per run returns, across the 1,000-run boundary, on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Connection, Table, select

from meshops.kernel.home import Home
from meshops.tracking import store

RUNS = 1_050  # past one statement's 1,000 runs


def _seed(home: Home) -> list[str]:
    start = datetime(2026, 1, 1, tzinfo=UTC)
    ids = [f"{i:032x}" for i in range(RUNS)]
    with home.db.begin() as conn:
        conn.execute(
            store.runs.insert(),
            [
                {
                    "id": run_id,
                    "experiment_id": "e",
                    "name": f"r{i}",
                    "status": "FINISHED",
                    "user": "u",
                    "start_time": start + timedelta(seconds=i),
                }
                for i, run_id in enumerate(ids)
            ],
        )
        # Runs with none, one or several keys of each kind; a NaN (NULL) latest value.
        conn.execute(
            store.params.insert(),
            [
                {"run_id": run_id, "key": f"p{j}", "value": f"v{i % 7}"}
                for i, run_id in enumerate(ids)
                for j in range(i % 3)
            ],
        )
        conn.execute(
            store.tags.insert(),
            [{"run_id": run_id, "key": "t", "value": str(i)} for i, run_id in enumerate(ids[::2])],
        )
        conn.execute(
            store.latest_metrics.insert(),
            [
                {
                    "run_id": run_id,
                    "key": f"m{j}",
                    "value": None if i % 11 == 0 else i / 3,
                    "step": i + j,
                    "timestamp": 1_700_000_000.5 + i,
                }
                for i, run_id in enumerate(ids)
                for j in range(i % 4)
            ],
        )
    return ids


def _one_run_at_a_time(conn: Connection, table: Table, ids: list[str], *columns: str) -> Any:
    out: dict[str, dict[str, Any]] = {}
    for run_id in ids:
        query = select(table.c.key, *(table.c[c] for c in columns)).where(table.c.run_id == run_id)
        rows = conn.execute(query).all()
        out[run_id] = {row[0]: row[1] if len(columns) == 1 else tuple(row[1:]) for row in rows}
    return out


def test_bulk_loads_equal_one_query_per_run(home: Home) -> None:
    ids = _seed(home)
    wanted = [*reversed(ids), "f" * 32]  # any order; an unknown id gets an empty dict
    with home.db.read() as conn:
        for table in (store.params, store.tags, store.latest_metrics):
            bulk = store.key_values(conn, table, wanted)
            assert bulk == _one_run_at_a_time(conn, table, wanted, "value")
        details = store.latest_metric_details(conn, wanted)
        expected = _one_run_at_a_time(conn, store.latest_metrics, wanted, "step", "timestamp")
        assert details == {
            run_id: {k: (int(step), float(stamp)) for k, (step, stamp) in keys.items()}
            for run_id, keys in expected.items()
        }
    assert sum(len(v) for v in details.values()) == sum(i % 4 for i in range(RUNS))
    assert details[ids[7]]["m1"] == (8, 1_700_000_007.5)
