"""pipelines: who recorded a step run over HTTP (remote cache lookups trust only their own)

Revision ID: pipelines_0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "pipelines_0004"
down_revision = "pipelines_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Existing rows stay NULL (recorded in-process): who recorded them was never stored.
    with op.batch_alter_table("step_runs") as batch:
        batch.add_column(sa.Column("recorded_by", sa.String(200), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("step_runs") as batch:
        batch.drop_column("recorded_by")
