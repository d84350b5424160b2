"""What tracking announces on the outbox (`meshops.kernel.outbox`)."""

from __future__ import annotations

from meshops.kernel import outbox


class RunFinished(outbox.EventPayload):
    topic = outbox.RUN_FINISHED
    run_id: str
    experiment_id: str
    status: str
