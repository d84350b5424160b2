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
        if not self.queue:
            return []
        return [run_task(self.queue.popleft(), self.objects)]

    def close(self) -> None:
        self.queue.clear()
