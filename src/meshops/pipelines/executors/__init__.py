"""Executors run step tasks: inline (debugging), a local process pool, or Ray."""

from __future__ import annotations

from typing import Any

from meshops.kernel.errors import InvalidInput
from meshops.pipelines.executors.base import Executor, StepResult, StepTask

EXECUTORS = ("inline", "process", "ray")


def make_executor(name: str, **options: Any) -> Executor:
    if name == "inline":
        from meshops.pipelines.executors.inline import InlineExecutor

        return InlineExecutor()
    if name == "process":
        from meshops.pipelines.executors.process import ProcessExecutor

        return ProcessExecutor(max_workers=options.get("max_workers"))
    if name == "ray":
        from meshops.pipelines.executors.ray import RayExecutor

        return RayExecutor(address=options.get("ray_address"))
    raise InvalidInput(
        f"unknown executor {name!r}", {"field": "executor", "fix": f"use one of {EXECUTORS}"}
    )


__all__ = ["EXECUTORS", "Executor", "StepResult", "StepTask", "make_executor"]
