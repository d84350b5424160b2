"""What the mesh announces on the outbox (`meshops.kernel.outbox`)."""

from __future__ import annotations

from meshops.kernel import outbox


class DataProductPublished(outbox.EventPayload):
    """A new version of a data product was published."""

    topic = outbox.DATAPRODUCT_PUBLISHED
    product: str
    version: str
    urn: str
    digest: str
