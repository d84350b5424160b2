"""tracking: index params by (key, value) for search

Revision ID: tracking_0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "tracking_0003"
down_revision = "tracking_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(
        "ix_tracking_params_key_value",
        "tracking_params",
        ["key", "value", "run_id"],
        postgresql_where=sa.text("length(value) < 1000"),
    )


def downgrade() -> None:
    op.drop_index("ix_tracking_params_key_value", "tracking_params")
