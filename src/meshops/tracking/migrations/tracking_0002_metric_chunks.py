"""tracking: metric values as columnar chunks (replaces one row per value)

Revision ID: tracking_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meshops.kernel.db import BigId

revision = "tracking_0002"
down_revision = "tracking_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_table("tracking_metrics")
    op.create_table(
        "tracking_metric_chunks",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("count", sa.Integer, nullable=False),
        sa.Column("min_step", sa.BigInteger, nullable=False),
        sa.Column("max_step", sa.BigInteger, nullable=False),
        sa.Column("values", sa.LargeBinary, nullable=False),
        sa.Column("steps", sa.LargeBinary, nullable=False),
        sa.Column("timestamps", sa.LargeBinary, nullable=False),
    )
    op.create_index(
        "ix_tracking_metric_chunks_run_key",
        "tracking_metric_chunks",
        ["run_id", "key", "id"],
    )


def downgrade() -> None:
    op.drop_table("tracking_metric_chunks")
    op.create_table(
        "tracking_metrics",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.Float, nullable=False),
    )
    op.create_index(
        "ix_tracking_metrics_run_key_step", "tracking_metrics", ["run_id", "key", "step"]
    )
