"""Pipelines the tests run (module level, so workers can load them by file path)."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from sklearn.linear_model import LogisticRegression

from meshops.pipelines import pipeline, step


def _mark(marks: str, name: str) -> None:
    """Append one line per execution, so tests can count how often a step really ran."""
    with open(Path(marks) / f"{name}.log", "a") as fh:
        fh.write(f"{os.getpid()} {time.time()}\n")


@step
def load(n: int, marks: str) -> pd.DataFrame:
    _mark(marks, "load")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n, 3))
    return pd.DataFrame({"a": x[:, 0], "b": x[:, 1], "y": (x[:, 0] + x[:, 2] > 0).astype(int)})


@step
def split(frame: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    half = len(frame) // 2
    return frame.iloc[:half], frame.iloc[half:]


@step
def train(frame: pd.DataFrame, c: float, marks: str) -> LogisticRegression:
    _mark(marks, "train")
    return LogisticRegression(C=c).fit(frame[["a", "b"]], frame["y"])


@step
def evaluate(model: LogisticRegression, frame: pd.DataFrame) -> dict[str, float]:
    return {"accuracy": float(model.score(frame[["a", "b"]], frame["y"]))}


@step
def to_arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


@step
def column_sum(table: pa.Table) -> np.ndarray:
    return np.asarray(table.column("a").to_numpy(), dtype=float).cumsum()


@pipeline
def training(n: int = 200, c: float = 1.0, marks: str = "/tmp") -> object:
    frame = load(n, marks)
    train_set, test_set = split(frame)
    model = train(train_set, c, marks)
    sums = column_sum(to_arrow(frame))
    return evaluate(model, test_set), sums


@step
def nap(seconds: float, label: str, marks: str) -> dict[str, float]:
    start = time.time()
    time.sleep(seconds)
    _mark(marks, label)
    return {"start": start, "end": time.time()}


@step
def join_naps(a: dict[str, float], b: dict[str, float]) -> float:
    return max(a["end"], b["end"]) - min(a["start"], b["start"])


@pipeline
def two_naps(seconds: float = 1.0, marks: str = "/tmp") -> object:
    return join_naps(nap(seconds, "first", marks), nap(seconds, "second", marks))


@step(retries=2, retry_backoff=0.05, cache=False)
def flaky(marks: str, succeed_on: int) -> int:
    """Fails until it has been attempted `succeed_on` times (counted in the marks dir)."""
    _mark(marks, "flaky")
    attempts = len((Path(marks) / "flaky.log").read_text().splitlines())
    if attempts < succeed_on:
        raise RuntimeError(f"attempt {attempts} fails on purpose")
    return attempts


@pipeline
def retrying(marks: str = "/tmp", succeed_on: int = 2) -> object:
    return flaky(marks, succeed_on)


@step(timeout=0.5, cache=False)
def slow(seconds: float) -> int:
    time.sleep(seconds)
    return 1


@pipeline
def timing_out(seconds: float = 5.0) -> object:
    return slow(seconds)


@step
def source(marks: str) -> list[int]:
    _mark(marks, "source")
    return [1, 2, 3]


@step
def maybe_fail(values: list[int], marks: str) -> list[int]:
    _mark(marks, "maybe_fail")
    if (Path(marks) / "fail").exists():
        raise ValueError("told to fail by the fail file")
    return [v * 2 for v in values]


@step
def after(values: list[int], marks: str) -> int:
    _mark(marks, "after")
    return sum(values)


@step
def independent(marks: str) -> str:
    _mark(marks, "independent")
    return "ok"


@pipeline
def resumable(marks: str = "/tmp") -> object:
    values = source(marks)
    return after(maybe_fail(values, marks), marks), independent(marks)


@step(cache=False)
def long_step(marks: str, seconds: float) -> str:
    _mark(marks, "long_start")
    time.sleep(seconds)
    _mark(marks, "long_end")
    return "done"


@step(cache=False)
def final(value: str, marks: str) -> str:
    _mark(marks, "final")
    return value + "!"


@pipeline
def long_running(marks: str = "/tmp", seconds: float = 3.0) -> object:
    return final(long_step(marks, seconds), marks)


@step(cache=False)
def record_event(marks: str, tag: str) -> str:
    _mark(marks, f"event-{tag}")
    return tag


@pipeline
def on_event(marks: str = "/tmp", tag: str = "x") -> object:
    return record_event(marks, tag)


MIB = 1024 * 1024


def _ray_assignment(label: str, seconds: float) -> dict[str, Any]:
    """When this step ran and what Ray assigned to it (runs inside a Ray task)."""
    import ray

    start = time.time()
    time.sleep(seconds)
    return {
        "label": label,
        "start": start,
        "end": time.time(),
        "pid": os.getpid(),
        "resources": ray.get_runtime_context().get_assigned_resources(),
    }


def _rendezvous(folder: str, label: str, others: list[str], timeout: float = 120.0) -> None:
    """Wait until the other steps have started too: only steps that really run at the same
    time get past this (run one after another, the first would time out)."""
    Path(folder, label).touch()
    deadline = time.monotonic() + timeout
    while not all(Path(folder, other).exists() for other in others):
        if time.monotonic() > deadline:
            raise TimeoutError(f"step {label}: {others} did not run at the same time")
        time.sleep(0.01)


@step(cpus=1, gpus=0.5, memory=256 * MIB, cache=False)
def ray_light(label: str, other: str, rendezvous: str, seconds: float) -> dict[str, Any]:
    _rendezvous(rendezvous, label, [other])
    return _ray_assignment(label, seconds)


@step(cpus=2, cache=False)
def ray_wide(after: dict[str, Any], seconds: float) -> dict[str, Any]:
    return _ray_assignment(f"wide after {after['label']}", seconds)


@pipeline
def ray_resources(rendezvous: str, light_seconds: float = 0.5, wide_seconds: float = 0.3) -> object:
    """Two light steps that fit side by side on 2 CPUs / 1 GPU (and wait for each other),
    then two steps that each need both CPUs (ready together: Ray must run them in turn)."""
    first = ray_light("a", "b", rendezvous, light_seconds)
    second = ray_light("b", "a", rendezvous, light_seconds)
    return ray_wide(first, wide_seconds), ray_wide(second, wide_seconds)
