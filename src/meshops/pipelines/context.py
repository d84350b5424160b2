"""What a running step may know about itself: the pipeline run and node it executes for.

Defined in `meshops.kernel.steps` (so every area can read it) and re-exported here, the
place a pipeline author looks:

    from meshops.pipelines.context import current_step

    here = current_step()        # None when the function is called outside a pipeline
    if here is not None:
        print(here.run_id, here.node, here.attempt, here.step_run_urn)

`step_run_urn` names the step run the engine will record (its id is assigned when the step
is submitted; retries keep it). What the step creates through the platform (tracking runs,
model versions, publishes, training sets) is linked to it automatically, embedded and over
HTTP; `platform.lineage.link_to_step(urn)` links anything else (docs/pipelines.md).
"""

from __future__ import annotations

from meshops.kernel.steps import StepContext, current_step, enter, leave

__all__ = ["StepContext", "current_step", "enter", "leave"]
