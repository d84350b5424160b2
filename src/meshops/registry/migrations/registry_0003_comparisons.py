"""registry: champion/challenger comparisons recorded by record_comparison (read by the
promotion gate)

Revision ID: registry_0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meshops.kernel.db import BigId, JsonColumn, UtcDateTime

revision = "registry_0003"
down_revision = "registry_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "model_comparisons",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("challenger_version", sa.Integer, nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("champion_version", sa.Integer, nullable=True),
        sa.Column("metric", sa.String(64), nullable=False),
        sa.Column("direction", sa.String(3), nullable=False),
        sa.Column("challenger_score", sa.Float, nullable=False),
        sa.Column("champion_score", sa.Float, nullable=True),
        sa.Column("tolerance", sa.Float, nullable=False),
        sa.Column("allowed", sa.Boolean, nullable=False),
        sa.Column("reasons", JsonColumn, nullable=False),
        sa.Column("detail", JsonColumn, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=False),
        sa.Column("data_digest", sa.String(64), nullable=False),
        sa.Column("data_urn", sa.String(1000), nullable=False),
        sa.Column("recorded_by", sa.String(200), nullable=False),
        sa.Column("recorded_at", UtcDateTime, nullable=False),
    )
    op.create_index(
        "ix_model_comparisons_model", "model_comparisons", ["model_name", "challenger_version"]
    )


def downgrade() -> None:
    op.drop_index("ix_model_comparisons_model", table_name="model_comparisons")
    op.drop_table("model_comparisons")
