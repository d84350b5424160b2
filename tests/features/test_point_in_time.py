"""Leakage tests of the point-in-time join: hand-built edge cases and a property test
against a brute-force reference. No value from the future, ever; TTL edges inclusive."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

import pyarrow as pa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshops.features.models import Feature, FeatureView, SourceRef
from meshops.features.offline import ViewInput, point_in_time_join

T0 = datetime(2024, 3, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")
US = timedelta(microseconds=1)


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def view(
    name: str = "v",
    *,
    keys: tuple[str, ...] = ("k",),
    ttl: int | None = None,
    created: str | None = None,
    features: tuple[str, ...] = ("x",),
    event_time: str = "ts",
) -> ViewInput:
    fv = FeatureView(
        name=name,
        entities=["e"],
        source=SourceRef(product="d.p"),
        event_time=event_time,
        created_time=created,
        features=[Feature(name=f, type="int64") for f in features],
        ttl_seconds=ttl,
    )
    return ViewInput(fv, pa.table({}), list(keys), [(f, f"{name}_{f.name}") for f in fv.features])


def join(labels: dict[str, Any], *views: tuple[ViewInput, pa.Table]) -> dict[str, list[Any]]:
    inputs = [ViewInput(v.view, table, v.keys, v.features) for v, table in views]
    result: dict[str, list[Any]] = (
        point_in_time_join(pa.table(labels), inputs, "t", threads=1).read_all().to_pydict()
    )
    return result


def test_never_a_future_value_and_the_boundary_is_inclusive() -> None:
    source = pa.table({"k": [1, 1], "ts": pa.array([at(10), at(20)], TS), "x": [10, 20]})
    labels = {"k": [1, 1, 1, 1], "t": pa.array([at(10) - US, at(10), at(20) - US, at(20)], TS)}
    out = join(labels, (view(), source))
    assert out["v_x"] == [None, 10, 10, 20]


def test_ties_on_event_time_go_to_the_latest_created_then_the_last_row() -> None:
    source = pa.table(
        {
            "k": [1, 1, 1, 2, 2],
            "ts": pa.array([at(5)] * 5, TS),
            "created": pa.array([at(7), at(9), at(8), at(1), at(1)], TS),
            "x": [1, 2, 3, 4, 5],
        }
    )
    labels = {"k": [1, 2], "t": pa.array([at(6), at(6)], TS)}
    out = join(labels, (view(created="created"), source))
    assert out["v_x"] == [2, 5]
    # Without a created-time column, the later row of the product wins.
    out = join(labels, (view(), source.drop_columns(["created"])))
    assert out["v_x"] == [3, 5]


def test_ttl_edges() -> None:
    source = pa.table({"k": [1], "ts": pa.array([at(0)], TS), "x": [7]})
    ttl = 600
    labels = {"k": [1, 1, 1], "t": pa.array([at(10) - US, at(10), at(10) + US], TS)}
    out = join(labels, (view(ttl=ttl), source))
    assert out["v_x"] == [7, 7, None]


def test_a_stale_newer_value_does_not_fall_back_to_an_older_one() -> None:
    source = pa.table({"k": [1, 1], "ts": pa.array([at(0), at(50)], TS), "x": [1, 2]})
    labels = {"k": [1], "t": pa.array([at(200)], TS)}
    assert join(labels, (view(ttl=60), source))["v_x"] == [None]


def test_late_arriving_rows_count_by_event_time_not_by_arrival() -> None:
    # The row for minute 5 arrives last (created late, appended at the end).
    source = pa.table(
        {
            "k": [1, 1, 1],
            "ts": pa.array([at(0), at(10), at(5)], TS),
            "created": pa.array([at(0), at(10), at(30)], TS),
            "x": [0, 10, 5],
        }
    )
    labels = {"k": [1, 1, 1], "t": pa.array([at(4), at(7), at(12)], TS)}
    out = join(labels, (view(created="created"), source))
    assert out["v_x"] == [0, 5, 10]


def test_several_views_with_different_clocks_keys_and_time_types() -> None:
    hourly = pa.table({"k": [1, 1, 2], "ts": pa.array([at(0), at(60), at(30)], TS), "x": [1, 2, 3]})
    # Naive timestamps are UTC; a date is midnight UTC.
    daily = pa.table(
        {
            "k": [1, 1],
            "day": pa.array([date(2024, 2, 29), date(2024, 3, 1)], pa.date32()),
            "y": [100, 200],
        }
    )
    naive = pa.table(
        {
            "k": [1],
            "k2": ["a"],
            "ts": pa.array([datetime(2024, 3, 1, 0, 45)], pa.timestamp("ms")),
            "z": [9],
        }
    )
    labels = {
        "k": [1, 1, 2, 1],
        "k2": ["a", "a", "a", "b"],
        "t": pa.array([at(59), at(61), at(31), at(61)], TS),
    }
    out = join(
        labels,
        (view("h"), hourly),
        (view("d", event_time="day", features=("y",)), daily),
        (view("n", keys=("k", "k2"), features=("z",)), naive),
    )
    assert out["h_x"] == [1, 2, 3, 2]
    assert out["d_y"] == [200, 200, None, 200]
    assert out["n_z"] == [9, 9, None, None]
    assert out["k"] == [1, 1, 2, 1]  # the entity rows' order is kept


def test_null_keys_and_null_event_times_never_match() -> None:
    source = pa.table({"k": [1, None], "ts": pa.array([None, at(0)], TS), "x": [1, 2]})
    labels = {"k": pa.array([1, None], pa.int64()), "t": pa.array([at(5), at(5)], TS)}
    assert join(labels, (view(), source))["v_x"] == [None, None]


# --- property test against a brute-force reference -----------------------------------


def brute_force(
    labels: list[tuple[int, int]],
    rows: list[tuple[int, int, int, int]],
    ttl_minutes: int | None,
) -> list[int | None]:
    """For each label (key, minute): the value of the row with the greatest
    (event minute, created, position) among rows of the key with event <= label and
    within the TTL."""
    result = []
    for key, minute in labels:
        best: tuple[int, int, int] | None = None
        value = None
        for position, (k, event, created, x) in enumerate(rows):
            if k != key or event > minute:
                continue
            rank = (event, created, position)
            if best is None or rank > best:
                best, value = rank, x
        if best is not None and ttl_minutes is not None and minute - best[0] > ttl_minutes:
            value = None
        result.append(value)
    return result


rows_strategy = st.lists(
    st.tuples(st.integers(0, 3), st.integers(0, 40), st.integers(0, 3), st.integers(-1000, 1000)),
    max_size=30,
)
labels_strategy = st.lists(
    st.tuples(st.integers(0, 4), st.integers(0, 50)), min_size=1, max_size=25
)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    rows_a=rows_strategy,
    rows_b=rows_strategy,
    labels=labels_strategy,
    ttl_a=st.one_of(st.none(), st.integers(1, 30)),
    ttl_b=st.one_of(st.none(), st.integers(1, 30)),
)
def test_matches_brute_force(
    rows_a: list[tuple[int, int, int, int]],
    rows_b: list[tuple[int, int, int, int]],
    labels: list[tuple[int, int]],
    ttl_a: int | None,
    ttl_b: int | None,
) -> None:
    def table(rows: list[tuple[int, int, int, int]]) -> pa.Table:
        return pa.table(
            {
                "k": pa.array([r[0] for r in rows], pa.int64()),
                "ts": pa.array([at(r[1]) for r in rows], TS),
                "created": pa.array([at(r[2]) for r in rows], TS),
                "x": pa.array([r[3] for r in rows], pa.int64()),
            }
        )

    label_table = {
        "k": pa.array([k for k, _ in labels], pa.int64()),
        "t": pa.array([at(m) for _, m in labels], TS),
    }
    out = join(
        label_table,
        (view("a", ttl=ttl_a * 60 if ttl_a else None, created="created"), table(rows_a)),
        (view("b", ttl=ttl_b * 60 if ttl_b else None, created="created"), table(rows_b)),
    )
    assert out["a_x"] == brute_force(labels, rows_a, ttl_a)
    assert out["b_x"] == brute_force(labels, rows_b, ttl_b)
