"""serving: per-endpoint trust_model_code (serve pickled python-flavor models when set)

Revision ID: serving_0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "serving_0002"
down_revision = "serving_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("serving_endpoints") as batch:
        batch.add_column(
            sa.Column("trust_model_code", sa.Boolean, nullable=False, server_default=sa.false())
        )


def downgrade() -> None:
    with op.batch_alter_table("serving_endpoints") as batch:
        batch.drop_column("trust_model_code")
