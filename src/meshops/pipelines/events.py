"""What pipelines announce on the outbox (`meshops.kernel.outbox`)."""

from __future__ import annotations

from typing import Any

from meshops.kernel import outbox


class PipelineRunFinished(outbox.EventPayload):
    topic = outbox.PIPELINE_RUN_FINISHED
    run_id: str
    pipeline: str
    status: str
    origin: dict[str, Any]  # what queued the run: manual, schedule, trigger ...
