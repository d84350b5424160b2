"""What a running pipeline step may know about itself, readable from every area.

The pipelines executors set it around each attempt (inline, process pool and Ray alike).
It lives in the kernel so that lower areas (mesh publishes, tracking runs, registry
versions, feature builds, OpenLineage events) can link what they create to the step and
its pipeline run without importing `meshops.pipelines`:

    from meshops.kernel.steps import current_step

    here = current_step()        # None when the code runs outside a pipeline
    if here is not None:
        print(here.run_id, here.node, here.attempt, here.step_run_urn)
"""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

from meshops.kernel.urn import Urn


@dataclass(frozen=True)
class StepContext:
    run_id: str
    node: str
    attempt: int
    # The id the step run will be recorded under; "" when the executor did not assign one.
    step_run_id: str = ""

    @property
    def run_urn(self) -> str:
        """The URN of the pipeline run (the lineage node of the whole run)."""
        return str(Urn.of("pipelinerun", self.run_id))

    @property
    def step_run_urn(self) -> str | None:
        """The URN of this step's run, when the executor assigned its id up front."""
        return str(Urn.of("steprun", self.step_run_id)) if self.step_run_id else None


_current: contextvars.ContextVar[StepContext | None] = contextvars.ContextVar(
    "meshops_current_step", default=None
)


def current_step() -> StepContext | None:
    return _current.get()


def enter(context: StepContext) -> contextvars.Token[StepContext | None]:
    return _current.set(context)


def leave(token: contextvars.Token[StepContext | None]) -> None:
    _current.reset(token)
