"""What a running step may know about itself: the pipeline run and node it executes for.

Set by the executors around each attempt (inline, process pool and Ray alike), so a step
can record its own links, e.g. the tracking run it creates under its pipeline run:

    from meshops.pipelines.context import current_step

    here = current_step()        # None when the function is called outside a pipeline
    if here is not None:
        print(here.run_id, here.node, here.attempt)
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from meshops.pipelines.models import pipeline_run_urn


@dataclass(frozen=True)
class StepContext:
    run_id: str
    node: str
    attempt: int

    @property
    def run_urn(self) -> str:
        """The URN of the pipeline run (the lineage node of the whole run)."""
        return pipeline_run_urn(self.run_id)


_current: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "meshops_current_step", default=None
)


def current_step() -> StepContext | None:
    return _current.get()


def enter(context: StepContext) -> contextvars.Token[StepContext | None]:
    return _current.set(context)


def leave(token: contextvars.Token[StepContext | None]) -> None:
    _current.reset(token)
