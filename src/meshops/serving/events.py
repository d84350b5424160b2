"""What serving announces on the outbox (`meshops.kernel.outbox`); running endpoints in
any process notice changes through it."""

from __future__ import annotations

from meshops.kernel import outbox


class EndpointChanged(outbox.EventPayload):
    topic = outbox.ENDPOINT_CHANGED
    name: str
    change: str  # e.g. "created", "traffic", "deleted"
    generation: int
