"""serving: endpoints, prediction-log chunk index, feedback labels

Revision ID: serving_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meshops.kernel.db import BigId, JsonColumn, UtcDateTime

revision = "serving_0001"
down_revision = None
branch_labels = ("serving",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "serving_endpoints",
        sa.Column("name", sa.String(63), nullable=False),
        sa.Column("domain", sa.String(200), nullable=False),
        sa.Column("model", sa.String(300), nullable=False),
        sa.Column("canary", sa.String(300), nullable=True),
        sa.Column("canary_percent", sa.Float, nullable=False),
        sa.Column("shadows", JsonColumn, nullable=False),
        sa.Column("enrichment", JsonColumn, nullable=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("generation", sa.Integer, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_serving_endpoints"),
    )
    op.create_table(
        "serving_log_chunks",
        sa.Column("id", BigId, autoincrement=True, nullable=False),
        sa.Column("endpoint", sa.String(63), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("rows", sa.Integer, nullable=False),
        sa.Column("min_time", UtcDateTime, nullable=False),
        sa.Column("max_time", UtcDateTime, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("rolled_into", sa.String(100), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_serving_log_chunks"),
    )
    op.create_index("ix_serving_log_chunks_window", "serving_log_chunks", ["endpoint", "max_time"])
    op.create_table(
        "serving_feedback",
        sa.Column("endpoint", sa.String(63), nullable=False),
        sa.Column("request_id", sa.String(128), nullable=False),
        sa.Column("record", sa.Integer, nullable=False),
        sa.Column("label", JsonColumn, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("endpoint", "request_id", "record", name="pk_serving_feedback"),
    )


def downgrade() -> None:
    op.drop_table("serving_feedback")
    op.drop_index("ix_serving_log_chunks_window", table_name="serving_log_chunks")
    op.drop_table("serving_log_chunks")
    op.drop_table("serving_endpoints")
