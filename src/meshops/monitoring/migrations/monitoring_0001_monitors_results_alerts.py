"""monitoring: monitors, alert rules, results with per-feature history, alerts

Revision ID: monitoring_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meshops.kernel.db import BigId, JsonColumn, UtcDateTime

revision = "monitoring_0001"
down_revision = None
branch_labels = ("monitoring",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitors",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("kind", sa.String(40), nullable=False),
        sa.Column("domain", sa.String(200), nullable=True),
        sa.Column("endpoint", sa.String(200), nullable=True),
        sa.Column("model", sa.String(200), nullable=True),
        sa.Column("spec", JsonColumn, nullable=False),
        sa.Column("reference_blob", sa.String(64), nullable=True),
        sa.Column("reference_rows", sa.BigInteger, nullable=True),
        sa.Column("enabled", sa.Boolean, nullable=False),
        sa.Column("next_run_at", UtcDateTime, nullable=True),
        sa.Column("last_run_at", UtcDateTime, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("name", name="uq_monitors_name"),
    )
    op.create_index("ix_monitors_next_run_at", "monitors", ["next_run_at"])
    op.create_index("ix_monitors_endpoint", "monitors", ["endpoint"])
    op.create_table(
        "monitor_rules",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "monitor_id",
            sa.String(32),
            sa.ForeignKey("monitors.id", name="fk_monitor_rules_monitor_id_monitors"),
            nullable=False,
        ),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("metric", sa.String(300), nullable=False),
        sa.Column("op", sa.String(4), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("webhook_url", sa.Text, nullable=True),
        sa.Column("auto_resolve", sa.Boolean, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.UniqueConstraint("monitor_id", "name", name="uq_monitor_rules_monitor_name"),
    )
    op.create_table(
        "monitor_results",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "monitor_id",
            sa.String(32),
            sa.ForeignKey("monitors.id", name="fk_monitor_results_monitor_id_monitors"),
            nullable=False,
        ),
        sa.Column("status", sa.String(10), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("metrics", JsonColumn, nullable=False),
        sa.Column("details", JsonColumn, nullable=False),
        sa.Column("window_start", UtcDateTime, nullable=True),
        sa.Column("window_end", UtcDateTime, nullable=True),
        sa.Column("reference_rows", sa.BigInteger, nullable=False),
        sa.Column("current_rows", sa.BigInteger, nullable=False),
        sa.Column("started_at", UtcDateTime, nullable=False),
        sa.Column("finished_at", UtcDateTime, nullable=False),
        sa.Column("report_blob", sa.String(64), nullable=True),
    )
    op.create_index("ix_monitor_results_monitor", "monitor_results", ["monitor_id", "id"])
    op.create_table(
        "monitor_feature_results",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "result_id",
            BigId,
            sa.ForeignKey(
                "monitor_results.id", name="fk_monitor_feature_results_result_id_monitor_results"
            ),
            nullable=False,
        ),
        sa.Column("monitor_id", sa.String(32), nullable=False),
        sa.Column("feature", sa.String(300), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("method", sa.String(30), nullable=False),
        sa.Column("score", sa.Float, nullable=False),
        sa.Column("threshold", sa.Float, nullable=False),
        sa.Column("drifted", sa.Boolean, nullable=False),
        sa.Column("reference_rows", sa.BigInteger, nullable=False),
        sa.Column("current_rows", sa.BigInteger, nullable=False),
        sa.Column("histogram", JsonColumn, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
    )
    op.create_index(
        "ix_monitor_feature_results_history",
        "monitor_feature_results",
        ["monitor_id", "feature", "result_id"],
    )
    op.create_index("ix_monitor_feature_results_result", "monitor_feature_results", ["result_id"])
    op.create_table(
        "monitor_alerts",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "monitor_id",
            sa.String(32),
            sa.ForeignKey("monitors.id", name="fk_monitor_alerts_monitor_id_monitors"),
            nullable=False,
        ),
        sa.Column("rule_id", sa.BigInteger, nullable=False),
        sa.Column("rule_name", sa.String(200), nullable=False),
        sa.Column("state", sa.String(20), nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("summary", sa.Text, nullable=False),
        sa.Column("metric", sa.String(300), nullable=False),
        sa.Column("value", sa.Float, nullable=False),
        sa.Column("first_result_id", sa.BigInteger, nullable=False),
        sa.Column("last_result_id", sa.BigInteger, nullable=False),
        sa.Column("occurrences", sa.Integer, nullable=False),
        sa.Column("opened_at", UtcDateTime, nullable=False),
        sa.Column("last_seen_at", UtcDateTime, nullable=False),
        sa.Column("acknowledged_at", UtcDateTime, nullable=True),
        sa.Column("acknowledged_by", sa.String(200), nullable=True),
        sa.Column("resolved_at", UtcDateTime, nullable=True),
        sa.Column("resolved_by", sa.String(200), nullable=True),
        sa.Column("note", sa.Text, nullable=False),
        sa.Column("webhook_status", sa.Text, nullable=True),
        sa.Column("open_key", sa.String(300), nullable=True),
        sa.UniqueConstraint("open_key", name="uq_monitor_alerts_open_key"),
    )
    op.create_index("ix_monitor_alerts_state", "monitor_alerts", ["state", "id"])
    op.create_index("ix_monitor_alerts_monitor", "monitor_alerts", ["monitor_id", "id"])


def downgrade() -> None:
    op.drop_table("monitor_alerts")
    op.drop_table("monitor_feature_results")
    op.drop_table("monitor_results")
    op.drop_table("monitor_rules")
    op.drop_table("monitors")
