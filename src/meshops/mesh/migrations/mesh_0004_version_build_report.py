"""mesh: the build report of a published version (engine, blocks, retried block failures)

Revision ID: mesh_0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meshops.kernel.db import JsonColumn

revision = "mesh_0004"
down_revision = "mesh_0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: versions published before, and versions published from Arrow tables
    # (publish_arrow), have no build.
    with op.batch_alter_table("mesh_versions") as batch:
        batch.add_column(sa.Column("build", JsonColumn, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("mesh_versions") as batch:
        batch.drop_column("build")
