"""project: applied objects with their git commit, approvals, webhook deliveries

Revision ID: project_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meshops.kernel.db import BigId, JsonColumn, UtcDateTime

revision = "project_0001"
down_revision = None
branch_labels = ("project",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "project_applied",
        sa.Column("project", sa.String(200), primary_key=True),
        sa.Column("urn", sa.String(500), primary_key=True),
        sa.Column("kind", sa.String(50), nullable=False),
        sa.Column("name", sa.String(300), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("git_commit", sa.String(64), nullable=True),
        sa.Column("applied_at", UtcDateTime, nullable=False),
        sa.Column("applied_by", sa.String(200), nullable=False),
        sa.Column("detail", JsonColumn, nullable=False),
    )
    op.create_table(
        "project_approvals",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("model", sa.String(200), nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("approver", sa.String(200), nullable=False),
        sa.Column("role", sa.String(100), nullable=False),
        sa.Column("comment", sa.Text, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("model", "version", "approver", name="uq_project_approvals"),
    )
    op.create_table(
        "project_webhook_deliveries",
        sa.Column("delivery_id", sa.String(200), primary_key=True),
        sa.Column("source", sa.String(200), nullable=False),
        sa.Column("event", sa.String(100), nullable=False),
        sa.Column("received_at", UtcDateTime, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("detail", JsonColumn, nullable=False),
    )
    op.create_index(
        "ix_project_webhook_deliveries_received", "project_webhook_deliveries", ["received_at"]
    )


def downgrade() -> None:
    op.drop_table("project_webhook_deliveries")
    op.drop_table("project_approvals")
    op.drop_table("project_applied")
