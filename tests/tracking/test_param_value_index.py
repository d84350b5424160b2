"""A param equality can be answered from the (key, value) index on PostgreSQL too, where
that index is partial (short values only): the condition the search compiles says so."""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import select

from meshops.kernel.home import Home
from meshops.tracking import service, store
from meshops.tracking.search import parse_filter
from tests.conftest import make_settings


def test_param_equality_can_use_the_partial_index_on_postgresql(
    postgres_url: str, tmp_path: Path
) -> None:
    home = Home(make_settings(tmp_path / "home", postgres_url))
    try:
        expr = parse_filter("params.p2 IN ('v3', 'v4')")
        assert expr is not None
        query = select(store.runs.c.id).where(service.compile_filter(expr))
        with home.db.read() as conn:
            conn.exec_driver_sql("SET enable_seqscan = off")  # may the index serve it?
            compiled = query.compile(conn, compile_kwargs={"literal_binds": True})
            plan = "\n".join(r[0] for r in conn.exec_driver_sql(f"EXPLAIN {compiled}"))
        assert "ix_tracking_params_key_value" in plan, plan
        long_value = parse_filter(f"params.p2 = '{'x' * 2000}'")
        assert long_value is not None  # a long literal: no length condition, still correct
        assert "length" not in str(service.compile_filter(long_value))
    finally:
        home.close()
