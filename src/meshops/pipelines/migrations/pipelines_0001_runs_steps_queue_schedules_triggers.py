"""pipelines: runs (the durable queue), step runs, schedules and triggers

Revision ID: pipelines_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meshops.kernel.db import JsonColumn, UtcDateTime

revision = "pipelines_0001"
down_revision = None
branch_labels = ("pipelines",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "pipeline_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("pipeline", sa.String(200), nullable=False),
        sa.Column("ref", sa.Text, nullable=False),
        sa.Column("params", JsonColumn, nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("executor", sa.String(50), nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=True),
        sa.Column("finished_at", UtcDateTime, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("resumed_from", sa.String(32), nullable=True),
        sa.Column("reproduces", sa.String(32), nullable=True),
        sa.Column("origin", JsonColumn, nullable=False),
        sa.Column("tracking_run_id", sa.String(64), nullable=True),
        sa.Column("claims", sa.Integer, nullable=False),
        sa.Column("lease_owner", sa.String(200), nullable=True),
        sa.Column("lease_expires_at", UtcDateTime, nullable=True),
        sa.Column("trigger_name", sa.String(200), nullable=True),
    )
    op.create_index("ix_pipeline_runs_status", "pipeline_runs", ["status", "created_at"])
    op.create_index("ix_pipeline_runs_pipeline", "pipeline_runs", ["pipeline", "created_at"])
    op.create_index("ix_pipeline_runs_trigger_name", "pipeline_runs", ["trigger_name", "status"])
    op.create_table(
        "step_runs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("run_id", sa.String(32), nullable=False),
        sa.Column("node", sa.String(200), nullable=False),
        sa.Column("step", sa.String(200), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("code_digest", sa.String(64), nullable=False),
        sa.Column("cache_key", sa.String(64), nullable=False),
        sa.Column("params", JsonColumn, nullable=False),
        sa.Column("inputs", JsonColumn, nullable=False),
        sa.Column("outputs", JsonColumn, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=True),
        sa.Column("finished_at", UtcDateTime, nullable=True),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("cache_hit_of", sa.String(32), nullable=True),
        sa.Column("logs", sa.Text, nullable=False),
        sa.Column("tracking_run_id", sa.String(64), nullable=True),
        sa.UniqueConstraint("run_id", "node", name="uq_step_runs_run_node"),
    )
    op.create_index("ix_step_runs_cache_key", "step_runs", ["cache_key", "status"])
    op.create_table(
        "pipeline_schedules",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("cron", sa.String(200), nullable=False),
        sa.Column("ref", sa.Text, nullable=False),
        sa.Column("params", JsonColumn, nullable=False),
        sa.Column("executor", sa.String(50), nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("next_fire_at", UtcDateTime, nullable=False),
        sa.Column("last_fire_at", UtcDateTime, nullable=True),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_pipeline_schedules_next", "pipeline_schedules", ["enabled", "next_fire_at"])
    op.create_table(
        "pipeline_triggers",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("topic", sa.String(200), nullable=False),
        sa.Column("ref", sa.Text, nullable=False),
        sa.Column("params", JsonColumn, nullable=False),
        sa.Column("executor", sa.String(50), nullable=False),
        sa.Column("match", JsonColumn, nullable=False),
        sa.Column("expression", sa.Text, nullable=True),
        sa.Column("max_concurrent", sa.Integer, nullable=False),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_pipeline_triggers_topic", "pipeline_triggers", ["topic"])


def downgrade() -> None:
    op.drop_table("pipeline_triggers")
    op.drop_table("pipeline_schedules")
    op.drop_table("step_runs")
    op.drop_table("pipeline_runs")
