"""governance: web sessions of the UI (separate from API tokens)

Revision ID: governance_0003
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meshops.kernel.db import UtcDateTime

revision = "governance_0003"
down_revision = "governance_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gov_web_sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("token_id", sa.String(32), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_gov_web_sessions_token", "gov_web_sessions", ["token_id"])
    op.create_index("ix_gov_web_sessions_expires", "gov_web_sessions", ["expires_at"])


def downgrade() -> None:
    op.drop_table("gov_web_sessions")
