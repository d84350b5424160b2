"""tracking: deleted/restored experiments and runs; logged models and their files

Revision ID: tracking_0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meshops.kernel.db import JsonColumn, UtcDateTime

revision = "tracking_0004"
down_revision = "tracking_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for table in ("tracking_experiments", "tracking_runs"):
        with op.batch_alter_table(table) as batch:
            batch.add_column(
                sa.Column("lifecycle_stage", sa.String(16), nullable=False, server_default="active")
            )
            batch.add_column(sa.Column("deleted_at", UtcDateTime(), nullable=True))
    op.create_table(
        "tracking_logged_models",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("experiment_id", sa.String(32), nullable=False),
        sa.Column("run_id", sa.String(32), nullable=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("model_type", sa.String(256), nullable=True),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("status_message", sa.Text(), nullable=True),
        sa.Column("params", JsonColumn, nullable=False),
        sa.Column("tags", JsonColumn, nullable=False),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime(), nullable=False),
        sa.Column("updated_at", UtcDateTime(), nullable=False),
        sa.Column("lifecycle_stage", sa.String(16), nullable=False, server_default="active"),
    )
    op.create_index(
        "ix_tracking_logged_models_experiment",
        "tracking_logged_models",
        ["experiment_id", "created_at"],
    )
    op.create_index("ix_tracking_logged_models_run", "tracking_logged_models", ["run_id"])
    op.create_table(
        "tracking_model_artifacts",
        sa.Column("model_id", sa.String(40), primary_key=True),
        sa.Column("path", sa.String(1000), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("tracking_model_artifacts")
    op.drop_index("ix_tracking_logged_models_run", "tracking_logged_models")
    op.drop_index("ix_tracking_logged_models_experiment", "tracking_logged_models")
    op.drop_table("tracking_logged_models")
    for table in ("tracking_runs", "tracking_experiments"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("deleted_at")
            batch.drop_column("lifecycle_stage")
