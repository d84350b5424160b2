"""Governance tables (SQLAlchemy Core on the shared metadata). Created by
`governance/migrations/`; queried only by this area."""

from __future__ import annotations

from sqlalchemy import (
    Boolean,
    Column,
    Index,
    Integer,
    String,
    Table,
    Text,
    UniqueConstraint,
)

from meshops.kernel.db import BigId, JsonColumn, UtcDateTime, metadata

principals = Table(
    "gov_principals",
    metadata,
    Column("name", String(200), primary_key=True),
    Column("kind", String(20), nullable=False),
    Column("display_name", String(200), nullable=False),
    Column("email", String(320), nullable=False),
    Column("owner", String(200), nullable=True),
    Column("disabled", Boolean, nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
)

role_bindings = Table(
    "gov_role_bindings",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("principal", String(200), nullable=False),
    Column("role", String(100), nullable=False),
    Column("scope", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("created_by", String(200), nullable=False),
    UniqueConstraint("principal", "role", "scope", name="uq_gov_role_binding"),
)

tokens = Table(
    "gov_tokens",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("principal", String(200), nullable=False),
    Column("name", String(200), nullable=False),
    Column("secret_hash", String(64), nullable=False, unique=True),
    Column("prefix", String(16), nullable=False),
    Column("scopes", JsonColumn, nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("last_used_at", UtcDateTime, nullable=True),
    Index("ix_gov_tokens_principal", "principal"),
)

policies = Table(
    "gov_policies",
    metadata,
    Column("id", String(200), primary_key=True),
    Column("scope", String(200), nullable=False),
    Column("target", String(100), nullable=False),
    Column("expression", Text, nullable=False),
    Column("severity", String(10), nullable=False),
    Column("rationale", Text, nullable=False),
    Column("owner", String(200), nullable=False),
    Column("description", Text, nullable=False),
    Column("version", Integer, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    Column("updated_by", String(200), nullable=False),
    Index("ix_gov_policies_target", "target", "scope"),
)

policy_evaluations = Table(
    "gov_policy_evaluations",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("policy_id", String(200), nullable=False),
    Column("policy_version", Integer, nullable=False),
    Column("target", String(100), nullable=False),
    Column("subject_urn", Text, nullable=False),
    Column("domain", String(200), nullable=True),
    Column("outcome", String(10), nullable=False),
    Column("severity", String(10), nullable=False),
    Column("explanation", Text, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Index("ix_gov_evaluations_subject", "subject_urn", "policy_id"),
    Index("ix_gov_evaluations_domain", "domain", "at"),
)

# The latest input document per (target, subject): what `policy test` dry-runs against.
policy_documents = Table(
    "gov_policy_documents",
    metadata,
    Column("target", String(100), primary_key=True),
    Column("subject_urn", String(500), primary_key=True),
    Column("domain", String(200), nullable=True),
    Column("document", JsonColumn, nullable=False),
    Column("at", UtcDateTime, nullable=False),
)

mask_rules = Table(
    "gov_mask_rules",
    metadata,
    Column("scope", String(200), primary_key=True),
    Column("classification", String(100), primary_key=True),
    Column("method", String(10), nullable=False),
)

access_requests = Table(
    "gov_access_requests",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("product", String(400), nullable=False),
    Column("domain", String(200), nullable=False),
    Column("port", String(200), nullable=False),
    Column("requester", String(200), nullable=False),
    Column("purpose", Text, nullable=False),
    Column("columns", JsonColumn, nullable=False),
    Column("row_filter", Text, nullable=True),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("status", String(20), nullable=False),
    Column("owners", JsonColumn, nullable=False),
    Column("classification", JsonColumn, nullable=False),
    Column("decided_by", String(200), nullable=True),
    Column("decided_at", UtcDateTime, nullable=True),
    Column("reason", Text, nullable=False),
    Column("grant_id", String(32), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Index("ix_gov_access_requests_product", "product", "status"),
)

grants = Table(
    "gov_grants",
    metadata,
    Column("id", String(32), primary_key=True),
    Column("product", String(400), nullable=False),
    Column("domain", String(200), nullable=False),
    Column("port", String(200), nullable=False),
    Column("grantee", String(200), nullable=False),
    Column("columns", JsonColumn, nullable=False),
    Column("row_filter", Text, nullable=True),
    Column("purpose", Text, nullable=False),
    Column("expires_at", UtcDateTime, nullable=True),
    Column("granted_by", String(200), nullable=False),
    Column("granted_at", UtcDateTime, nullable=False),
    Column("request_id", String(32), nullable=True),
    Column("revoked_at", UtcDateTime, nullable=True),
    Column("revoked_by", String(200), nullable=True),
    Index("ix_gov_grants_lookup", "product", "port", "grantee"),
)

usage_events = Table(
    "gov_usage_events",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("at", UtcDateTime, nullable=False),
    Column("actor", String(200), nullable=False),
    Column("product", String(400), nullable=False),
    Column("domain", String(200), nullable=False),
    Column("version", String(100), nullable=False),
    Column("port", String(200), nullable=False),
    Column("columns", JsonColumn, nullable=False),
    Column("masked", JsonColumn, nullable=False),
    Column("rows", BigId, nullable=False),
    Column("interface", String(20), nullable=False),
    Column("grant_id", String(32), nullable=True),
    # How many reads the event stands for: 1, or a batch of identical online lookups.
    Column("reads", Integer, nullable=False, server_default="1"),
    Index("ix_gov_usage_product", "product", "at"),
)

# The UI's web sessions (see governance/sessions.py): only an HMAC of the session id is kept.
web_sessions = Table(
    "gov_web_sessions",
    metadata,
    Column("id_hash", String(64), primary_key=True),
    Column("principal", String(200), nullable=False),
    # None only when the server runs without governance (any token acts as the local user).
    Column("token_id", String(32), nullable=True),
    Column("created_at", UtcDateTime, nullable=False),
    Column("expires_at", UtcDateTime, nullable=False),
    Index("ix_gov_web_sessions_token", "token_id"),
    Index("ix_gov_web_sessions_expires", "expires_at"),
)
