"""A pipeline for the killed-worker test: a step that takes a while before it returns a
large output, then a step that checks that output."""

from __future__ import annotations

import os
import time
from pathlib import Path

import numpy as np

from meshops.pipelines import pipeline, step


def _expected(mib: int) -> np.ndarray:
    return np.arange(mib * 131_072, dtype=np.float64)  # 8 bytes each: `mib` MiB


def _mark(marks: str, name: str) -> None:
    """One line per execution, so the test can count how often a step really ran."""
    with open(Path(marks) / f"{name}.log", "a") as fh:
        fh.write(f"{os.getpid()} {time.time()}\n")


@step(cache=False)
def produce(marks: str, seconds: float, mib: int) -> np.ndarray:
    _mark(marks, "produce_start")
    time.sleep(seconds)
    _mark(marks, "produce_end")
    return _expected(mib)


@step(cache=False)
def check(data: np.ndarray, mib: int) -> int:
    if not np.array_equal(data, _expected(mib)):
        raise ValueError("the output read back is not the output written")
    return int(data.nbytes)


@pipeline
def produce_and_check(marks: str = "/tmp", seconds: float = 2.0, mib: int = 8) -> object:
    return check(produce(marks, seconds, mib), mib)
