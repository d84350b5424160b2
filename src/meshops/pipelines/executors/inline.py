"""Inline executor: steps run one after another in the calling process (debuggable with
breakpoints; values produced in-process are handed on without a reload)."""

from __future__ import annotations

from collections import deque

from meshops.pipelines.executors.base import ObjectCache, StepResult, StepTask, run_task


class InlineExecutor:
    name = "inline"

    def __init__(self) -> None:
        self.queue: deque[StepTask] = deque()
        self.objects = ObjectCache()

    def submit(self, task: StepTask) -> None:
        self.queue.append(task)

    def wait(self, timeout: float | None) -> list[StepResult]:
        # Run every step submitted so far (one ready set): the engine then releases their
        # children together and looks their cache keys up in one query instead of one each.
        results = []
        while self.queue:
            results.append(run_task(self.queue.popleft(), self.objects))
        return results

    def close(self) -> None:
        self.queue.clear()
