"""The monitor service compares Parquet data out of core, with the figures of the same data
in memory, bit for bit.

A stored reference (a Parquet blob) and a Parquet source's files stay on disk: drift
monitors read them column by column in batches of at most `streams.PARQUET_BATCH_ROWS`
rows. Tables passed to a run (an SDK call with a DataFrame) are compared in memory. Both
must give the same tests, scores, p-values, verdicts and plots.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from meshops.client import Platform
from meshops.monitoring import streams
from meshops.monitoring.models import (
    METHODS,
    FeatureDriftSetting,
    MonitorResult,
    MonitorSource,
    MonitorSpec,
)
from meshops.monitoring.monitors import EvaluationError, evaluate
from meshops.monitoring.streams import ParquetData

PROPERTY = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
CATEGORICAL_METHODS = ["chisquare", "z", "psi", "jensenshannon"]
BUDGET = 2_048  # rows per batch in the service tests
ROWS = 30_000  # per side: many batches, and the binned (not scipy) path of the tests


def frame(rng: np.random.Generator, rows: int, shift: float) -> pa.Table:
    """Numeric columns of every family the tests tell apart, with nulls and NaN;
    categorical strings and booleans with nulls; a 0/1 prediction."""
    gaps = rng.random(rows) < 0.03
    with_nan = rng.normal(shift, 1.0, rows)
    with_nan[rng.random(rows) < 0.02] = np.nan
    labels = np.array(["red", "green", "blue", "grey"])
    return pa.table(
        {
            "wide": rng.normal(10 * shift, 3.0, rows),
            "skewed": rng.lognormal(shift, 0.7, rows),
            "gappy": pa.array(with_nan, mask=gaps),
            "few": rng.integers(0, 4, rows).astype(np.float64) + (shift > 0.5),
            "twenty": rng.integers(0, 18, rows) + round(shift * 3),
            "colour": pa.array(labels[rng.integers(0, 4, rows)], mask=rng.random(rows) < 0.05),
            "flag": pa.array(rng.random(rows) < 0.3 + shift / 3),
            "prediction": rng.integers(0, 2, rows),
        }
    )


def rechunked(table: pa.Table, rows_per_chunk: int) -> pa.Table:
    """The same rows in other chunks (the in-memory batches)."""
    return pa.Table.from_batches(table.to_batches(max_chunksize=rows_per_chunk), table.schema)


def on_disk(table: pa.Table, path: Path, row_group: int, batch_rows: int) -> ParquetData:
    pq.write_table(table, path, row_group_size=row_group)
    data = ParquetData.open(str(path))
    data.batch_rows = batch_rows
    return data


def outcome(run: Callable[[], object]) -> str:
    """What a run gives, exactly (floats by repr, so NaN compares too), or its error."""
    try:
        return repr(run())
    except EvaluationError as exc:
        return f"error: {exc}"


@st.composite
def monitor_specs(draw: st.DrawFn) -> MonitorSpec:
    kind = draw(st.sampled_from(["data_drift", "data_drift", "prediction_drift"]))
    drift = {
        name: FeatureDriftSetting(method=draw(st.sampled_from([None, *methods])))
        for name, methods in (
            ("wide", METHODS),
            ("skewed", METHODS),
            ("gappy", METHODS),
            ("twenty", METHODS),
            ("colour", CATEGORICAL_METHODS),
        )
    }
    return MonitorSpec(name="m", kind=kind, drift=drift, drift_share=0.5)


sizes = st.one_of(st.integers(3, 900), st.integers(900, 4_000), st.integers(6_000, 14_000))


@PROPERTY
@given(
    st.integers(0, 2**32 - 1),
    monitor_specs(),
    sizes,
    sizes,
    st.floats(0.0, 1.0),
    st.integers(97, 5_000),  # rows per batch read from Parquet
    st.integers(89, 5_000),  # rows per chunk in memory
)
def test_parquet_data_evaluates_bit_for_bit_like_tables_in_memory(  # noqa: PLR0917 - drawn
    tmp_path_factory: pytest.TempPathFactory,
    seed: int,
    spec: MonitorSpec,
    reference_rows: int,
    current_rows: int,
    shift: float,
    batch_rows: int,
    chunk_rows: int,
) -> None:
    rng = np.random.default_rng(seed)
    reference, current = frame(rng, reference_rows, 0.0), frame(rng, current_rows, shift)
    folder = tmp_path_factory.mktemp("frames")
    groups = int(rng.integers(1, 7_000))
    ref_disk = on_disk(reference, folder / "reference.parquet", groups, batch_rows)
    cur_disk = on_disk(current, folder / "current.parquet", groups + 13, batch_rows)
    ref_memory, cur_memory = rechunked(reference, chunk_rows), rechunked(current, chunk_rows)

    in_memory = outcome(lambda: evaluate(spec, cur_memory, ref_memory))
    assert outcome(lambda: evaluate(spec, cur_disk, ref_disk)) == in_memory
    assert outcome(lambda: evaluate(spec, cur_memory, ref_disk)) == in_memory


def test_the_binned_tests_stream_bit_for_bit_too(tmp_path: Path) -> None:
    """Above 10,000 rows Wasserstein and KS come from histograms and the reference's spread
    merged across batches: still the figures of the columns in memory, to the last bit."""
    rng = np.random.default_rng(7)
    reference, current = frame(rng, ROWS, 0.0), frame(rng, ROWS + 777, 0.6)
    spec = MonitorSpec(name="m", kind="data_drift", drift={"twenty": {"method": "ks"}})
    streamed = evaluate(
        spec,
        on_disk(current, tmp_path / "current.parquet", 9_999, 1_000),
        on_disk(reference, tmp_path / "reference.parquet", 7_000, 3_333),
    )
    in_memory = evaluate(spec, rechunked(current, 65_000), rechunked(reference, 4_321))
    assert repr(streamed) == repr(in_memory)
    binned = {c.feature: c.method for c in streamed.features if not c.exact}
    expected = {"wide": "wasserstein", "skewed": "wasserstein", "gappy": "wasserstein"}
    assert binned == {**expected, "twenty": "ks"}


# --------------------------------------------------------------- through the service


class Reads:
    """Counts the batches each Parquet file is read in, and any whole-column read."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.batches: dict[str, list[int]] = defaultdict(list)
        self.whole: list[str] = []
        batches, whole = streams.DatasetColumn.batches, streams.DatasetColumn.whole
        reads = self

        def counted_batches(column: streams.DatasetColumn) -> Iterator[pa.Array]:
            for batch in batches(column):
                reads.batches[_file(column)].append(len(batch))
                yield batch

        def counted_whole(column: streams.DatasetColumn) -> pa.ChunkedArray:
            reads.whole.append(f"{_file(column)}:{column.name}")
            return whole(column)

        monkeypatch.setattr(streams, "PARQUET_BATCH_ROWS", BUDGET)
        monkeypatch.setattr(streams.DatasetColumn, "batches", counted_batches)
        monkeypatch.setattr(streams.DatasetColumn, "whole", counted_whole)


def _file(column: streams.DatasetColumn) -> str:
    files: list[str] = column.data.dataset.files
    return files[0] if len(files) == 1 else str(files)


def same_figures(streamed: MonitorResult, in_memory: MonitorResult) -> None:
    assert streamed.metrics == in_memory.metrics
    assert streamed.summary == in_memory.summary
    assert (streamed.reference_rows, streamed.current_rows) == (
        in_memory.reference_rows,
        in_memory.current_rows,
    )
    mine = [f.model_dump(exclude={"result_id", "monitor_id", "at"}) for f in streamed.features]
    theirs = [f.model_dump(exclude={"result_id", "monitor_id", "at"}) for f in in_memory.features]
    assert mine == theirs


def drift_spec(name: str, source: MonitorSource | None = None, **schedule: str) -> MonitorSpec:
    return MonitorSpec(
        name=name,
        kind="data_drift",
        drift={"twenty": FeatureDriftSetting(method="ks")},
        builtin_rules=False,
        source=source or MonitorSource(),
        **schedule,
    )


def test_a_run_streams_the_stored_reference_and_a_parquet_source(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(3)
    reference, current = frame(rng, ROWS, 0.0), frame(rng, ROWS, 0.6)
    current_file = tmp_path / "current.parquet"
    pq.write_table(current, current_file, row_group_size=10_000)
    source = MonitorSource(type="parquet", options={"path": str(current_file), "time_column": None})
    platform.monitoring.create_monitor(drift_spec("on-disk", source), reference=reference)
    platform.monitoring.create_monitor(drift_spec("in-memory"))

    reads = Reads(monkeypatch)
    streamed = platform.monitoring.run_monitor("on-disk")
    assert streamed.metrics["drifted_columns"] > 0
    read_files = set(reads.batches)
    assert str(current_file) in read_files and len(read_files) == 2  # and the reference blob
    for sizes in reads.batches.values():
        assert max(sizes) <= BUDGET
        assert len(sizes) >= 7 * ROWS // BUDGET  # 7 features, each read at least once
    assert reads.whole == []  # no column was ever whole in memory

    reads.batches.clear()
    in_memory = platform.monitoring.run_monitor("in-memory", current=current, reference=reference)
    assert reads.batches == {}  # tables passed to the run are compared where they are
    same_figures(streamed, in_memory)
    assert streamed.reference_rows == streamed.current_rows == ROWS


def test_a_scheduled_run_streams_a_window_and_a_reference_path(
    platform: Platform, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    rng = np.random.default_rng(4)
    start = datetime(2030, 1, 1, tzinfo=UTC)
    log = frame(rng, 3 * ROWS, 0.6)
    seconds = np.arange(3 * ROWS) * 3  # 3 s apart: 25 h of rows
    times = pa.array(
        [start + timedelta(seconds=int(s)) for s in seconds], pa.timestamp("us", "UTC")
    )
    pq.write_table(log.append_column("ts", times), tmp_path / "log.parquet", row_group_size=8_192)
    reference = frame(rng, ROWS, 0.0)
    pq.write_table(reference, tmp_path / "train.parquet", row_group_size=5_000)
    options = {
        "path": str(tmp_path / "log.parquet"),
        "reference_path": str(tmp_path / "train.parquet"),
    }
    source = MonitorSource(type="parquet", options=options)
    platform.monitoring.create_monitor(drift_spec("scheduled", source, schedule="1d", window="1d"))
    platform.monitoring.create_monitor(drift_spec("in-memory"))

    reads = Reads(monkeypatch)
    now = start + timedelta(days=1, hours=1)
    [streamed] = platform.monitoring.run_due(now)
    assert streamed.status != "error", streamed.summary
    window_rows = 24 * 3600 // 3  # 01:00 on day 1 to 01:00 on day 2, one row every 3 s
    assert streamed.current_rows == window_rows and streamed.reference_rows == ROWS
    assert all(max(sizes) <= BUDGET for sizes in reads.batches.values())
    assert len(reads.batches[str(tmp_path / "log.parquet")]) >= 7 * window_rows // BUDGET
    assert reads.whole == []

    window = log.slice(1200, window_rows)  # rows of [01:00, 01:00 a day later)
    in_memory = platform.monitoring.run_monitor("in-memory", current=window, reference=reference)
    same_figures(streamed, in_memory)


def test_explicit_tables_still_win_over_the_source(platform: Platform, tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    pq.write_table(frame(rng, 500, 1.0), tmp_path / "current.parquet")
    source = MonitorSource(
        type="parquet", options={"path": str(tmp_path / "current.parquet"), "time_column": None}
    )
    platform.monitoring.create_monitor(drift_spec("both", source), reference=frame(rng, 400, 0.0))
    given_table = frame(rng, 123, 0.0)
    result = platform.monitoring.run_monitor("both", current=given_table)
    assert (result.current_rows, result.reference_rows) == (123, 400)


def test_parquet_data_counts_the_rows_its_window_keeps(tmp_path: Path) -> None:
    import pyarrow.dataset as ds

    table = pa.table({"x": np.arange(10_000.0), "ts": np.arange(10_000)})
    pq.write_table(table, tmp_path / "t.parquet", row_group_size=999)
    data = ParquetData.open(str(tmp_path / "t.parquet"))
    assert data.num_rows == 10_000
    windowed = ParquetData.open(str(tmp_path / "t.parquet"), ds.field("ts") >= 9_000)
    assert windowed.num_rows == 1_000
    assert sum(len(b) for b in windowed.column("x").batches()) == 1_000
    assert windowed.to_table().num_rows == 1_000
