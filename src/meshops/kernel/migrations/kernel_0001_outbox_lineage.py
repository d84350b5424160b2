"""kernel: event outbox and lineage edges

Revision ID: kernel_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meshops.kernel.db import BigId, JsonColumn, UtcDateTime

revision = "kernel_0001"
down_revision = None
branch_labels = ("kernel",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "outbox",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("payload", JsonColumn, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("dispatched_at", UtcDateTime, nullable=True),
    )
    op.create_index("ix_outbox_pending", "outbox", ["dispatched_at", "id"])
    op.create_table(
        "lineage_edges",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("upstream", sa.Text, nullable=False),
        sa.Column("downstream", sa.Text, nullable=False),
        sa.Column("relation", sa.String(100), nullable=False),
        sa.Column("properties", JsonColumn, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("upstream", "downstream", "relation", name="uq_lineage_edge"),
    )
    op.create_index("ix_lineage_upstream", "lineage_edges", ["upstream"])
    op.create_index("ix_lineage_downstream", "lineage_edges", ["downstream"])


def downgrade() -> None:
    op.drop_table("lineage_edges")
    op.drop_table("outbox")
