"""registry: registered models, versions, aliases and alias history

Revision ID: registry_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meshops.kernel.db import BigId, JsonColumn, UtcDateTime

revision = "registry_0001"
down_revision = None
branch_labels = ("registry",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "registered_models",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("tags", JsonColumn, nullable=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("domain", sa.String(200), nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("name", name="pk_registered_models"),
    )
    op.create_table(
        "model_versions",
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("flavor", sa.String(50), nullable=False),
        sa.Column("signature", JsonColumn, nullable=True),
        sa.Column("files", JsonColumn, nullable=False),
        sa.Column("metrics", JsonColumn, nullable=False),
        sa.Column("run_id", sa.String(64), nullable=True),
        sa.Column("input_datasets", JsonColumn, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("tags", JsonColumn, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("model_card", sa.Text, nullable=False),
        sa.PrimaryKeyConstraint("model_name", "version", name="pk_model_versions"),
        sa.ForeignKeyConstraint(
            ["model_name"],
            ["registered_models.name"],
            name="fk_model_versions_model_name_registered_models",
        ),
    )
    op.create_index("ix_model_versions_run_id", "model_versions", ["run_id"])
    op.create_table(
        "model_aliases",
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("model_name", "alias", name="pk_model_aliases"),
        sa.ForeignKeyConstraint(
            ["model_name"],
            ["registered_models.name"],
            name="fk_model_aliases_model_name_registered_models",
        ),
    )
    op.create_table(
        "model_alias_history",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("model_name", sa.String(128), nullable=False),
        sa.Column("alias", sa.String(64), nullable=False),
        sa.Column("from_version", sa.Integer, nullable=True),
        sa.Column("to_version", sa.Integer, nullable=True),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("reason", sa.Text, nullable=False),
    )
    op.create_index("ix_model_alias_history_model", "model_alias_history", ["model_name", "alias"])


def downgrade() -> None:
    op.drop_table("model_alias_history")
    op.drop_table("model_aliases")
    op.drop_table("model_versions")
    op.drop_table("registered_models")
