"""governance: a usage event counts `reads` reads (online lookups are recorded in batches)

Revision ID: governance_0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "governance_0004"
down_revision = "governance_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Every existing event is one read.
    op.add_column(
        "gov_usage_events",
        sa.Column("reads", sa.Integer, nullable=False, server_default="1"),
    )


def downgrade() -> None:
    with op.batch_alter_table("gov_usage_events") as batch:
        batch.drop_column("reads")
