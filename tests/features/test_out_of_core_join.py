"""The point-in-time join out of core: a memory limit far below what its sorts need makes
DuckDB spill, and the rows are exactly those of the join in memory. Also the gather's
null handling (unmatched rows, null feature values, types taken through a mask)."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from meshops.features.models import Feature, FeatureView, SourceRef
from meshops.features.offline import ViewInput, point_in_time_join
from meshops.kernel.errors import InvalidInput

TS = pa.timestamp("us", tz="UTC")
START_US = int(datetime(2024, 1, 1, tzinfo=UTC).timestamp() * 1_000_000)
DAY_US = 86_400 * 1_000_000


def view_input(name: str, table: pa.Table, features: list[str], ttl_days: int) -> ViewInput:
    fv = FeatureView(
        name=name,
        entities=["e"],
        source=SourceRef(product="d.p"),
        event_time="ts",
        ttl_seconds=ttl_days * 86_400,
        features=[Feature(name=f, type="float64") for f in features],
    )
    return ViewInput(fv, table, ["k"], [(f, f"{name}_{f.name}") for f in fv.features])


def random_view(seed: int, rows: int, entities: int) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "k": rng.integers(0, entities, rows, dtype=np.int64),
            "ts": pa.array(START_US + rng.integers(0, 365 * DAY_US, rows), TS),
            "x": rng.random(rows),
            "y": rng.random(rows),
        }
    )


def random_labels(rows: int, entities: int) -> pa.Table:
    rng = np.random.default_rng(1)
    return pa.table(
        {
            # some keys no view has: those rows match nothing
            "k": rng.integers(0, entities + 50, rows, dtype=np.int64),
            "t": pa.array(START_US + rng.integers(0, 365 * DAY_US, rows), TS),
        }
    )


def test_a_join_spilling_under_a_small_memory_limit_gives_the_same_rows(tmp_path: Path) -> None:
    labels = random_labels(1_000_000, 20_000)
    views = [
        view_input(f"v{i}", random_view(10 + i, 200_000, 20_000), ["x", "y"], 30 + 30 * i)
        for i in range(2)
    ]
    in_memory = point_in_time_join(labels, views, "t", threads=2).read_all()
    spill = tmp_path / "spill"
    spilled = point_in_time_join(
        labels, views, "t", threads=2, memory_limit="32MB", temp_directory=str(spill),
        batch_rows=50_000,
    ).read_all()  # fmt: skip
    assert spilled.equals(in_memory)
    assert spilled.column("k").equals(labels.column("k"))  # the entity rows' order is kept
    unmatched = spilled.column("v0_x").null_count
    assert 0 < unmatched < labels.num_rows  # both kinds of row are in the comparison


def test_a_memory_limit_too_small_even_to_spill_is_a_clear_error(tmp_path: Path) -> None:
    labels = random_labels(1_000_000, 20_000)
    views = [view_input("v", random_view(10, 200_000, 20_000), ["x"], 30)]
    with pytest.raises(InvalidInput) as caught:
        point_in_time_join(labels, views, "t", memory_limit="4MB", temp_directory=str(tmp_path))
    assert caught.value.detail["field"] == "features.memory_limit"


def test_unmatched_rows_and_null_values_are_null_in_every_type() -> None:
    t0 = START_US
    source = pa.table(
        {
            "k": pa.array([1, 2, 3], pa.int64()),
            "ts": pa.array([t0, t0, t0], TS),
            "x": pa.array([1.5, None, 3.5], pa.float64()),
            "s": pa.array(["a", None, "c"]),
            "l": pa.array([[1], None, [3, 4]], pa.list_(pa.int64())),
            "b": pa.array([True, None, False]),
        }
    )
    fv = FeatureView(
        name="v",
        entities=["e"],
        source=SourceRef(product="d.p"),
        event_time="ts",
        features=[Feature(name="x", type="float64"), Feature(name="s", type="string"),
                  Feature(name="b", type="bool")],
    )  # fmt: skip
    features = [*[(f, f.name) for f in fv.features], (Feature(name="l", type="string"), "l")]
    item = ViewInput(fv, source, ["k"], features)
    labels = pa.table({"k": pa.array([3, 2, 9, 1], pa.int64()), "t": pa.array([t0 + 1] * 4, TS)})
    out = point_in_time_join(labels, [item], "t", threads=2).read_all().to_pydict()
    assert out["x"] == [3.5, None, None, 1.5]
    assert out["s"] == ["c", None, None, "a"]
    assert out["b"] == [False, None, None, True]
    assert out["l"] == [[3, 4], None, None, [1]]


def test_a_view_with_no_rows_gives_nulls() -> None:
    empty = random_view(3, 0, 10)
    labels = random_labels(10, 10)
    out = point_in_time_join(labels, [view_input("v", empty, ["x"], 30)], "t").read_all()
    assert out.column("v_x").null_count == 10


@pytest.mark.parametrize(
    ("setting", "value"),
    [("memory_limit", "lots"), ("memory_limit", "1GB; DROP"), ("threads", 0), ("threads", 10_000)],
)
def test_join_settings_out_of_bounds_are_refused(setting: str, value: object) -> None:
    labels = random_labels(10, 10)
    views = [view_input("v", random_view(3, 10, 10), ["x"], 30)]
    with pytest.raises(InvalidInput) as caught:
        point_in_time_join(labels, views, "t", **{setting: value})  # type: ignore[arg-type]
    assert caught.value.detail["field"] == f"features.{setting}"
