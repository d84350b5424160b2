"""What the project workflow announces on the outbox (`meshops.kernel.outbox`).

A received webhook carries what the platform acts on: for GitHub the fields of a push or a
pull request (`project.webhooks.summarize_github`), for any other source its `payload`.
Fields a source does not send are left out of the stored event."""

from __future__ import annotations

from typing import Any

from meshops.kernel import outbox


class WebhookReceived(outbox.EventPayload):
    topic = outbox.WEBHOOK_RECEIVED
    source: str
    event: str
    delivery: str
    payload: Any = None  # a generic source's JSON body
    repository: str | None = None
    sender: str | None = None
    ref: str | None = None
    branch: str | None = None
    before: str | None = None
    commit: str | None = None
    deleted: bool | None = None
    message: str | None = None
    action: str | None = None
    number: int | None = None
    base: str | None = None
    merged: bool | None = None
