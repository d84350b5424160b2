"""Ray executor: each step attempt is a Ray task with the step's resource request
(`num_cpus`, `num_gpus`, `memory`), on a local Ray (started here) or a cluster
(`ray_address`). Workers on a cluster must reach the blob store (use S3 or a shared path).
"""

from __future__ import annotations

import time
from typing import Any

import cloudpickle

from meshops.kernel.db import utcnow
from meshops.pipelines.executors.base import StepResult, StepTask, run_task

# Seconds a task may overrun its step timeout before Ray is told to kill it (the step's own
# SIGALRM normally fires first, inside the task).
TIMEOUT_GRACE = 5.0


def _run_pickled(payload: bytes) -> StepResult:
    task: StepTask = cloudpickle.loads(payload)
    return run_task(task)


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None, num_cpus: int | None = None) -> None:
        import ray

        if not ray.is_initialized():
            if address:
                ray.init(address=address, log_to_driver=False)
            else:
                ray.init(num_cpus=num_cpus or 2, include_dashboard=False, log_to_driver=False)
        self.ray = ray
        self.remote_fn = ray.remote(_run_pickled)
        self.pending: dict[Any, tuple[StepTask, float]] = {}

    def submit(self, task: StepTask) -> None:
        resources = task.step.options.resources
        options: dict[str, Any] = {
            "num_cpus": resources.cpus,
            "num_gpus": resources.gpus,
            "max_retries": 0,  # the engine retries, with backoff, and records attempts
        }
        if resources.memory:
            options["memory"] = resources.memory
        ref = self.remote_fn.options(**options).remote(cloudpickle.dumps(task))
        self.pending[ref] = (task, time.monotonic())

    def wait(self, timeout: float | None) -> list[StepResult]:
        if not self.pending:
            return []
        done, _ = self.ray.wait(list(self.pending), num_returns=1, timeout=timeout)
        results = []
        for ref in done:
            task, _started = self.pending.pop(ref)
            try:
                results.append(self.ray.get(ref))
            except Exception as exc:  # the task's worker died, or Ray cancelled it
                results.append(_failed(task, f"Ray task failed: {type(exc).__name__}: {exc}"))
        results.extend(self._kill_overdue())
        return results

    def _kill_overdue(self) -> list[StepResult]:
        now = time.monotonic()
        killed = []
        for ref, (task, started) in list(self.pending.items()):
            limit = task.step.options.timeout
            if limit is not None and now - started > limit + TIMEOUT_GRACE:
                self.ray.cancel(ref, force=True)
                self.pending.pop(ref)
                killed.append(_failed(task, f"StepTimeout: killed after {limit}s", True))
        return killed

    def close(self) -> None:
        for ref in self.pending:
            self.ray.cancel(ref, force=True)
        self.pending.clear()


def _failed(task: StepTask, error: str, timed_out: bool = False) -> StepResult:
    now = utcnow()
    return StepResult(task.node, False, task.attempt, now, now, error=error, timed_out=timed_out)
