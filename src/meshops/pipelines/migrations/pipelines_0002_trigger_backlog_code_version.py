"""pipelines: trigger backlog (events kept behind a concurrency limit, coalesced or dropped
visibly) and the git code version of each run

Revision ID: pipelines_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meshops.kernel.db import JsonColumn, UtcDateTime

revision = "pipelines_0002"
down_revision = "pipelines_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("pipeline_triggers") as batch:
        batch.add_column(sa.Column("max_pending", sa.Integer, nullable=False, server_default="100"))
        batch.add_column(
            sa.Column("coalesce_pending", sa.Boolean, nullable=False, server_default=sa.false())
        )
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.add_column(sa.Column("code", JsonColumn, nullable=True))
    op.create_table(
        "pipeline_trigger_events",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("trigger_name", sa.String(200), nullable=False),
        sa.Column("event_id", sa.BigInteger, nullable=False),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("subject", sa.Text, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.Column("decided_at", UtcDateTime, nullable=True),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("superseded_by", sa.BigInteger, nullable=True),
        sa.Column("reason", sa.Text, nullable=True),
        sa.UniqueConstraint("trigger_name", "event_id", name="uq_pipeline_trigger_events_event"),
    )
    op.create_index(
        "ix_pipeline_trigger_events_status",
        "pipeline_trigger_events",
        ["status", "trigger_name", "event_id"],
    )


def downgrade() -> None:
    op.drop_table("pipeline_trigger_events")
    with op.batch_alter_table("pipeline_runs") as batch:
        batch.drop_column("code")
    with op.batch_alter_table("pipeline_triggers") as batch:
        batch.drop_column("coalesce_pending")
        batch.drop_column("max_pending")
