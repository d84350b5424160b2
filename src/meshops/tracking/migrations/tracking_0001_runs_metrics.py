"""tracking: experiments, runs, params, tags, metrics, latest metrics, artifacts, inputs

Revision ID: tracking_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meshops.kernel.db import BigId, JsonColumn, UtcDateTime

revision = "tracking_0001"
down_revision = None
branch_labels = ("tracking",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tracking_experiments",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("tags", JsonColumn, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("name", name="uq_tracking_experiments_name"),
    )
    op.create_table(
        "tracking_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("experiment_id", sa.String(32), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("user", sa.String(200), nullable=False),
        sa.Column("start_time", UtcDateTime, nullable=False),
        sa.Column("end_time", UtcDateTime, nullable=True),
        sa.Column("parent_run_id", sa.String(32), nullable=True),
        sa.Column("error", sa.Text, nullable=True),
    )
    op.create_index(
        "ix_tracking_runs_experiment_start", "tracking_runs", ["experiment_id", "start_time"]
    )
    op.create_index("ix_tracking_runs_parent", "tracking_runs", ["parent_run_id"])
    for name in ("tracking_params", "tracking_tags"):
        op.create_table(
            name,
            sa.Column("run_id", sa.String(32), primary_key=True),
            sa.Column("key", sa.String(250), primary_key=True),
            sa.Column("value", sa.Text, nullable=False),
        )
        op.create_index(f"ix_{name}_key_run", name, ["key", "run_id"])
    op.create_table(
        "tracking_metrics",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("key", sa.String(250), nullable=False),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.Float, nullable=False),
    )
    op.create_index(
        "ix_tracking_metrics_run_key_step", "tracking_metrics", ["run_id", "key", "step"]
    )
    op.create_table(
        "tracking_latest_metrics",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("key", sa.String(250), primary_key=True),
        sa.Column("value", sa.Float, nullable=True),
        sa.Column("step", sa.BigInteger, nullable=False),
        sa.Column("timestamp", sa.Float, nullable=False),
    )
    op.create_index(
        "ix_tracking_latest_metrics_key_value",
        "tracking_latest_metrics",
        ["key", "value", "run_id"],
    )
    op.create_table(
        "tracking_artifacts",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("path", sa.String(1000), primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("size", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "tracking_inputs",
        sa.Column("run_id", sa.String(32), primary_key=True),
        sa.Column("urn", sa.String(1000), primary_key=True),
        sa.Column("digest", sa.String(128), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("context", sa.String(100), nullable=False),
    )


def downgrade() -> None:
    for name in (
        "tracking_inputs",
        "tracking_artifacts",
        "tracking_latest_metrics",
        "tracking_metrics",
        "tracking_tags",
        "tracking_params",
        "tracking_runs",
        "tracking_experiments",
    ):
        op.drop_table(name)
