"""Search plans: the metric-index-driven plan and the filter-driven plan return exactly what a
brute-force Python filter and sort over the same runs returns (with ties, NaN and missing
values, and paging across the runs without a value); on SQLite the metric-ordered plan walks
the order key's (key, value) index."""

from __future__ import annotations

import math
import random
import time
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event

from meshops.client import Platform
from meshops.kernel.home import Home
from meshops.tracking import service
from meshops.tracking.models import Run

VALUES = [0.0, 0.25, 0.5, 0.75, 1.0]  # few distinct values: many ties


def _populate(platform: Platform) -> None:
    rng = random.Random(7)
    tracking = platform.tracking
    for i in range(30):
        run = tracking.create_run("plans", name=f"r{i}", capture_environment=False)
        params = {f"p{j}": f"v{rng.randrange(3)}" for j in range(2) if rng.random() < 0.8}
        if params:
            tracking.log_params(run.id, params)
        rows = [
            (run.id, f"m{j}", rng.choice([*VALUES, math.nan]), 0, time.time())
            for j in range(2)
            if rng.random() < 0.8
        ]
        if rows:
            tracking.log_metric_rows(rows)
        tracking.end_run(run.id)
    tracking.create_run("elsewhere", name="other", capture_environment=False)


Check = Callable[[Run], bool]


def _metric(key: str, op: str, value: float) -> tuple[str, Check]:
    ops: dict[str, Callable[[float, float], bool]] = {
        "<": lambda a, b: a < b,
        "<=": lambda a, b: a <= b,
        ">": lambda a, b: a > b,
        ">=": lambda a, b: a >= b,
        "=": lambda a, b: a == b,
        "!=": lambda a, b: a != b,
    }

    def check(run: Run) -> bool:
        got = run.metrics.get(key)
        return got is not None and not math.isnan(got) and ops[op](got, value)

    return f"metrics.{key} {op} {value}", check


def _param(key: str, op: str, values: list[str]) -> tuple[str, Check]:
    def check(run: Run) -> bool:
        got = run.params.get(key)
        if got is None:
            return False
        return {"=": got == values[0], "!=": got != values[0], "IN": got in values}[op]

    text = f"('{values[0]}')" if op != "IN" else "(" + ", ".join(f"'{v}'" for v in values) + ")"
    return f"params.{key} {op} {text[1:-1] if op != 'IN' else text}", check


_METRICS = st.builds(
    _metric,
    st.sampled_from(["m0", "m1"]),
    st.sampled_from(["<", "<=", ">", ">=", "=", "!="]),
    st.sampled_from(VALUES),
)
_PARAMS = st.builds(
    _param,
    st.sampled_from(["p0", "p1"]),
    st.sampled_from(["=", "!=", "IN"]),
    st.lists(st.sampled_from(["v0", "v1", "v2"]), min_size=1, max_size=2),
)
_CONDITION = st.one_of(_METRICS, _PARAMS)


@st.composite
def _filters(draw: st.DrawFn) -> tuple[str, Check]:
    parts = draw(st.lists(_CONDITION, min_size=0, max_size=3))
    if not parts:
        return "", lambda run: True
    joiner = draw(st.sampled_from(["and", "or"]))
    checks = [check for _, check in parts]
    text = f" {joiner} ".join(source for source, _ in parts)
    if joiner == "and":
        return text, lambda run: all(c(run) for c in checks)
    return text, lambda run: any(c(run) for c in checks)


def _expected(runs: list[Run], check: Check, key: str, descending: bool) -> list[str]:
    def value(run: Run) -> float | None:
        got = run.metrics.get(key)
        return None if got is None or math.isnan(got) else got

    matching = [r for r in runs if check(r)]
    # start_time DESC, id ASC as the tie-breakers; then the key, missing/NaN last
    matching.sort(key=lambda r: r.id)
    matching.sort(key=lambda r: r.start_time, reverse=True)
    with_value = [r for r in matching if value(r) is not None]
    with_value.sort(key=lambda r: value(r) or 0.0, reverse=descending)
    return [r.id for r in with_value] + [r.id for r in matching if value(r) is None]


@pytest.mark.parametrize("drive_by_filter_below", [0, 10**9], ids=["metric-index", "filter"])
def test_search_matches_brute_force(
    platform: Platform, monkeypatch: pytest.MonkeyPatch, drive_by_filter_below: int
) -> None:
    monkeypatch.setattr(service, "DRIVE_BY_FILTER_BELOW", drive_by_filter_below)
    _populate(platform)
    everything = platform.tracking.search_runs(["plans"], "", None, 1000).runs
    assert len(everything) == 30

    @settings(
        max_examples=40,
        deadline=None,
        suppress_health_check=[HealthCheck.function_scoped_fixture],
    )
    @given(
        _filters(),
        st.sampled_from(["m0", "m1"]),
        st.booleans(),
        st.integers(min_value=1, max_value=12),
    )
    def check(flt: tuple[str, Check], key: str, descending: bool, page_size: int) -> None:
        source, predicate = flt
        order = [f"metrics.{key} {'DESC' if descending else 'ASC'}"]
        got: list[str] = []
        token: str | None = None
        while True:
            page = platform.tracking.search_runs(["plans"], source, order, page_size, token)
            got += [r.id for r in page.runs]
            token = page.next_page_token
            if token is None:
                break
        assert got == _expected(everything, predicate, key, descending), (source, order)

    check()


def test_metric_ordered_search_walks_the_metric_index(
    sqlite_home: Home, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Query plans are SQLite's, so this runs on an embedded SQLite home only."""
    home = sqlite_home
    platform = Platform(home.settings, home=home)
    # the plan for a broad filter (a narrow one is driven by the filter instead)
    monkeypatch.setattr(service, "DRIVE_BY_FILTER_BELOW", 0)
    _populate(platform)
    statements: list[tuple[str, Any]] = []

    def grab(conn: Any, cursor: Any, statement: str, parameters: Any, *_: Any) -> None:
        if "order_0" in statement and "ORDER BY" in statement:
            statements.append((statement, parameters))

    event.listen(home.db.engine, "before_cursor_execute", grab)
    try:
        page = platform.tracking.search_runs(
            ["plans"], "metrics.m1 < 0.5 and params.p1 = 'v0'", ["metrics.m0 DESC"], 3
        )
    finally:
        event.remove(home.db.engine, "before_cursor_execute", grab)
    assert page.runs
    assert statements
    statement, parameters = statements[0]
    with home.db.engine.connect() as conn:
        plan = [
            row[3] for row in conn.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, parameters)
        ]
    first = plan[0]
    assert "ix_tracking_latest_metrics_key_value" in first, plan
    assert "SCAN" not in " ".join(plan), plan  # every other step is an index search
    assert not any("USE TEMP B-TREE FOR ORDER BY" in step for step in plan), plan
