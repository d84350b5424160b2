"""governance: principals, role bindings, tokens, policies and evaluations, mask rules,
access requests, grants and usage events

Revision ID: governance_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from meshops.kernel.db import BigId, JsonColumn, UtcDateTime

revision = "governance_0001"
down_revision = None
branch_labels = ("governance",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gov_principals",
        sa.Column("name", sa.String(200), primary_key=True),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("display_name", sa.String(200), nullable=False),
        sa.Column("email", sa.String(320), nullable=False),
        sa.Column("owner", sa.String(200), nullable=True),
        sa.Column("disabled", sa.Boolean, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
    )
    op.create_table(
        "gov_role_bindings",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("role", sa.String(100), nullable=False),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.UniqueConstraint("principal", "role", "scope", name="uq_gov_role_binding"),
    )
    op.create_table(
        "gov_tokens",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("principal", sa.String(200), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("secret_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("scopes", JsonColumn, nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=True),
        sa.Column("revoked_at", UtcDateTime, nullable=True),
        sa.Column("last_used_at", UtcDateTime, nullable=True),
        sa.UniqueConstraint("secret_hash", name="uq_gov_tokens_secret_hash"),
    )
    op.create_index("ix_gov_tokens_principal", "gov_tokens", ["principal"])
    op.create_table(
        "gov_policies",
        sa.Column("id", sa.String(200), primary_key=True),
        sa.Column("scope", sa.String(200), nullable=False),
        sa.Column("target", sa.String(100), nullable=False),
        sa.Column("expression", sa.Text, nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("rationale", sa.Text, nullable=False),
        sa.Column("owner", sa.String(200), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("version", sa.Integer, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column("updated_by", sa.String(200), nullable=False),
    )
    op.create_index("ix_gov_policies_target", "gov_policies", ["target", "scope"])
    op.create_table(
        "gov_policy_evaluations",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("policy_id", sa.String(200), nullable=False),
        sa.Column("policy_version", sa.Integer, nullable=False),
        sa.Column("target", sa.String(100), nullable=False),
        sa.Column("subject_urn", sa.Text, nullable=False),
        sa.Column("domain", sa.String(200), nullable=True),
        sa.Column("outcome", sa.String(10), nullable=False),
        sa.Column("severity", sa.String(10), nullable=False),
        sa.Column("explanation", sa.Text, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
    )
    op.create_index(
        "ix_gov_evaluations_subject", "gov_policy_evaluations", ["subject_urn", "policy_id"]
    )
    op.create_index("ix_gov_evaluations_domain", "gov_policy_evaluations", ["domain", "at"])
    op.create_table(
        "gov_policy_documents",
        sa.Column("target", sa.String(100), primary_key=True),
        sa.Column("subject_urn", sa.String(500), primary_key=True),
        sa.Column("domain", sa.String(200), nullable=True),
        sa.Column("document", JsonColumn, nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "gov_mask_rules",
        sa.Column("scope", sa.String(200), primary_key=True),
        sa.Column("classification", sa.String(100), primary_key=True),
        sa.Column("method", sa.String(10), nullable=False),
    )
    op.create_table(
        "gov_access_requests",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("product", sa.String(400), nullable=False),
        sa.Column("domain", sa.String(200), nullable=False),
        sa.Column("port", sa.String(200), nullable=False),
        sa.Column("requester", sa.String(200), nullable=False),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("columns", JsonColumn, nullable=False),
        sa.Column("row_filter", sa.Text, nullable=True),
        sa.Column("expires_at", UtcDateTime, nullable=True),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("owners", JsonColumn, nullable=False),
        sa.Column("classification", JsonColumn, nullable=False),
        sa.Column("decided_by", sa.String(200), nullable=True),
        sa.Column("decided_at", UtcDateTime, nullable=True),
        sa.Column("reason", sa.Text, nullable=False),
        sa.Column("grant_id", sa.String(32), nullable=True),
        sa.Column("created_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_gov_access_requests_product", "gov_access_requests", ["product", "status"])
    op.create_table(
        "gov_grants",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("product", sa.String(400), nullable=False),
        sa.Column("domain", sa.String(200), nullable=False),
        sa.Column("port", sa.String(200), nullable=False),
        sa.Column("grantee", sa.String(200), nullable=False),
        sa.Column("columns", JsonColumn, nullable=False),
        sa.Column("row_filter", sa.Text, nullable=True),
        sa.Column("purpose", sa.Text, nullable=False),
        sa.Column("expires_at", UtcDateTime, nullable=True),
        sa.Column("granted_by", sa.String(200), nullable=False),
        sa.Column("granted_at", UtcDateTime, nullable=False),
        sa.Column("request_id", sa.String(32), nullable=True),
        sa.Column("revoked_at", UtcDateTime, nullable=True),
        sa.Column("revoked_by", sa.String(200), nullable=True),
    )
    op.create_index("ix_gov_grants_lookup", "gov_grants", ["product", "port", "grantee"])
    op.create_table(
        "gov_usage_events",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.Column("actor", sa.String(200), nullable=False),
        sa.Column("product", sa.String(400), nullable=False),
        sa.Column("domain", sa.String(200), nullable=False),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("port", sa.String(200), nullable=False),
        sa.Column("columns", JsonColumn, nullable=False),
        sa.Column("masked", JsonColumn, nullable=False),
        sa.Column("rows", BigId, nullable=False),
        sa.Column("interface", sa.String(20), nullable=False),
        sa.Column("grant_id", sa.String(32), nullable=True),
    )
    op.create_index("ix_gov_usage_product", "gov_usage_events", ["product", "at"])


def downgrade() -> None:
    for table in (
        "gov_usage_events",
        "gov_grants",
        "gov_access_requests",
        "gov_mask_rules",
        "gov_policy_documents",
        "gov_policy_evaluations",
        "gov_policies",
        "gov_tokens",
        "gov_role_bindings",
        "gov_principals",
    ):
        op.drop_table(table)
