"""What the model registry announces on the outbox (`meshops.kernel.outbox`)."""

from __future__ import annotations

from meshops.kernel import outbox


class ModelVersionRegistered(outbox.EventPayload):
    topic = outbox.MODEL_VERSION_REGISTERED
    name: str
    version: int
    flavor: str
    run_id: str | None
    files: list[str]  # digests


class ModelAliasMoved(outbox.EventPayload):
    """An alias now points at `to_version` (None: the alias was deleted)."""

    topic = outbox.MODEL_ALIAS_MOVED
    name: str
    alias: str
    from_version: int | None
    to_version: int | None
    reason: str
