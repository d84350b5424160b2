"""features: definitions, materialization watermarks, training sets

Revision ID: features_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meshops.kernel.db import JsonColumn, UtcDateTime

revision = "features_0001"
down_revision = None
branch_labels = ("features",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "feature_definitions",
        sa.Column("kind", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("domain", sa.String(200), nullable=True),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("definition", JsonColumn, nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("kind", "name", name="pk_feature_definitions"),
    )
    op.create_table(
        "feature_watermarks",
        sa.Column("view", sa.String(128), nullable=False),
        sa.Column("version", sa.String(64), nullable=False),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("event_time", UtcDateTime, nullable=True),
        sa.Column("created_time", UtcDateTime, nullable=True),
        sa.Column("rows", sa.BigInteger, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("view", name="pk_feature_watermarks"),
    )
    op.create_table(
        "training_sets",
        sa.Column("id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(128), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("entities_digest", sa.String(64), nullable=False),
        sa.Column("timestamp_column", sa.String(128), nullable=False),
        sa.Column("features", JsonColumn, nullable=False),
        sa.Column("columns", JsonColumn, nullable=False),
        sa.Column("sources", JsonColumn, nullable=False),
        sa.Column("definitions", JsonColumn, nullable=False),
        sa.Column("row_count", sa.BigInteger, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_training_sets"),
    )
    op.create_index("ix_training_sets_digest", "training_sets", ["digest"])
    op.create_index("ix_training_sets_name", "training_sets", ["name"])


def downgrade() -> None:
    op.drop_table("training_sets")
    op.drop_table("feature_watermarks")
    op.drop_table("feature_definitions")
