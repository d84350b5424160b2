"""Tables of the kernel itself: the event outbox and the lineage graph."""

from __future__ import annotations

from sqlalchemy import Column, Index, String, Table, Text, UniqueConstraint

from meshops.kernel.db import BigId, JsonColumn, UtcDateTime, metadata

outbox = Table(
    "outbox",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("topic", String(200), nullable=False),
    Column("subject", Text, nullable=False),
    Column("payload", JsonColumn, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("dispatched_at", UtcDateTime, nullable=True),
    Index("ix_outbox_pending", "dispatched_at", "id"),
)

lineage_edges = Table(
    "lineage_edges",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("upstream", Text, nullable=False),
    Column("downstream", Text, nullable=False),
    Column("relation", String(100), nullable=False),
    Column("properties", JsonColumn, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    UniqueConstraint("upstream", "downstream", "relation", name="uq_lineage_edge"),
    Index("ix_lineage_upstream", "upstream"),
    Index("ix_lineage_downstream", "downstream"),
)
