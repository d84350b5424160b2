"""Local process pool: independent steps run in parallel, one process each.

Tasks travel as cloudpickle bytes, so steps defined in scripts and notebooks work too
(importable steps go by reference, see `StepDefinition.__reduce__`). Children are forked:
starting one costs milliseconds instead of re-importing the stack.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from concurrent.futures.process import BrokenProcessPool

import cloudpickle

from meshops.kernel.db import utcnow
from meshops.pipelines.executors.base import StepResult, StepTask, run_task


def run_pickled(payload: bytes) -> StepResult:
    task: StepTask = cloudpickle.loads(payload)
    return run_task(task)


class ProcessExecutor:
    name = "process"

    def __init__(self, max_workers: int | None = None) -> None:
        self.max_workers = max_workers or max(2, os.cpu_count() or 2)
        self.pool = self._new_pool()
        self.futures: dict[Future[StepResult], StepTask] = {}

    def _new_pool(self) -> ProcessPoolExecutor:
        return ProcessPoolExecutor(
            max_workers=self.max_workers, mp_context=multiprocessing.get_context("fork")
        )

    def submit(self, task: StepTask) -> None:
        started = utcnow()
        future = self.pool.submit(run_pickled, cloudpickle.dumps(task))
        future.meshops_started = started  # type: ignore[attr-defined]
        self.futures[future] = task

    def wait(self, timeout: float | None) -> list[StepResult]:
        if not self.futures:
            return []
        done, _ = wait(self.futures, timeout=timeout, return_when=FIRST_COMPLETED)
        results = []
        for future in done:
            task = self.futures.pop(future)
            try:
                results.append(future.result())
            except BrokenProcessPool as exc:
                # A child died (killed, out of memory): fail this attempt, start a new pool.
                results.append(self._crashed(task, future, exc))
                self.pool.shutdown(wait=False, cancel_futures=False)
                self.pool = self._new_pool()
            except Exception as exc:  # the result could not be sent back
                results.append(self._crashed(task, future, exc))
        return results

    def _crashed(self, task: StepTask, future: Future[StepResult], exc: Exception) -> StepResult:
        started = getattr(future, "meshops_started", utcnow())
        return StepResult(
            task.node,
            False,
            task.attempt,
            started,
            utcnow(),
            error=f"the step's process failed: {type(exc).__name__}: {exc}",
        )

    def close(self) -> None:
        self.pool.shutdown(wait=True, cancel_futures=True)
