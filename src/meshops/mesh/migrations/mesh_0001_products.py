"""mesh: domains, data products, versions, ports, quality results, catalog

Revision ID: mesh_0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from meshops.kernel.db import BigId, JsonColumn, UtcDateTime

revision = "mesh_0001"
down_revision = None
branch_labels = ("mesh",)
depends_on = None


def upgrade() -> None:
    op.create_table(
        "mesh_domains",
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("team", sa.String(200), nullable=False),
        sa.Column("owners", JsonColumn, nullable=False),
        sa.Column("members", JsonColumn, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_table(
        "mesh_products",
        sa.Column("product", sa.String(200), primary_key=True),
        sa.Column("domain", sa.String(100), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("tags", JsonColumn, nullable=False),
        sa.Column("owners", JsonColumn, nullable=False),
        sa.Column("latest_version", sa.String(100), nullable=True),
        sa.Column("sunset", sa.Date, nullable=True),
        sa.Column("replacement", sa.String(200), nullable=True),
        sa.Column("deprecation_reason", sa.Text, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("updated_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_mesh_products_domain", "mesh_products", ["domain"])
    op.create_table(
        "mesh_versions",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column(
            "product", sa.String(200), sa.ForeignKey("mesh_products.product"), nullable=False
        ),
        sa.Column("version", sa.String(100), nullable=False),
        sa.Column("urn", sa.String(400), nullable=False),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("row_count", BigId, nullable=False),
        sa.Column("created_at", UtcDateTime, nullable=False),
        sa.Column("created_by", sa.String(200), nullable=False),
        sa.Column("descriptor", JsonColumn, nullable=False),
        sa.Column("inputs", JsonColumn, nullable=False),
        sa.Column("schema_diff", JsonColumn, nullable=False),
        sa.UniqueConstraint("product", "version", name="uq_mesh_versions_product_version"),
        sa.UniqueConstraint("urn", name="uq_mesh_versions_urn"),
    )
    op.create_index("ix_mesh_versions_digest", "mesh_versions", ["digest"])
    op.create_table(
        "mesh_ports",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("version_id", BigId, sa.ForeignKey("mesh_versions.id"), nullable=False),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("contract_id", sa.String(200), nullable=False),
        sa.Column("snapshot_digest", sa.String(64), nullable=False),
        sa.Column("row_count", BigId, nullable=False),
        sa.Column("bytes", BigId, nullable=False),
        sa.Column("columns", JsonColumn, nullable=False),
        sa.Column("profile", JsonColumn, nullable=False),
        sa.Column("contract", JsonColumn, nullable=False),
    )
    op.create_index("ix_mesh_ports_version_id", "mesh_ports", ["version_id"])
    op.create_table(
        "mesh_quality_results",
        sa.Column("id", BigId, primary_key=True, autoincrement=True),
        sa.Column("version_id", BigId, sa.ForeignKey("mesh_versions.id"), nullable=False),
        sa.Column("port", sa.String(100), nullable=False),
        sa.Column("rule", sa.String(400), nullable=False),
        sa.Column("kind", sa.String(20), nullable=False),
        sa.Column("column_name", sa.String(200), nullable=True),
        sa.Column("passed", sa.Boolean, nullable=False),
        sa.Column("severity", sa.String(20), nullable=False),
        sa.Column("observed", JsonColumn, nullable=True),
        sa.Column("expected", sa.Text, nullable=False),
        sa.Column("message", sa.Text, nullable=False),
        sa.Column("checked_at", UtcDateTime, nullable=False),
    )
    op.create_index("ix_mesh_quality_results_version_id", "mesh_quality_results", ["version_id"])
    op.create_table(
        "mesh_catalog",
        sa.Column("product", sa.String(200), primary_key=True),
        sa.Column("domain", sa.String(100), nullable=False),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("status", sa.String(20), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("tags", JsonColumn, nullable=False),
        sa.Column("owners", JsonColumn, nullable=False),
        sa.Column("classifications", JsonColumn, nullable=False),
        sa.Column("columns_text", sa.Text, nullable=False),
        sa.Column("latest_version", sa.String(100), nullable=True),
        sa.Column("updated_at", UtcDateTime, nullable=False),
        sa.Column(
            "search_vector",
            sa.Text().with_variant(postgresql.TSVECTOR(), "postgresql"),
            nullable=True,
        ),
    )
    op.create_index("ix_mesh_catalog_domain", "mesh_catalog", ["domain"])
    op.create_index(
        "ix_mesh_catalog_search_vector", "mesh_catalog", ["search_vector"], postgresql_using="gin"
    )
    if op.get_bind().dialect.name == "sqlite":
        # Full-text index of the catalog (kept out of SQLAlchemy metadata: a virtual table).
        op.execute(
            "CREATE VIRTUAL TABLE mesh_catalog_fts USING fts5("
            "product UNINDEXED, name, domain, description, tags, owners, columns_text, "
            "tokenize = 'unicode61')"
        )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS mesh_catalog_fts")
    for table in (
        "mesh_catalog",
        "mesh_quality_results",
        "mesh_ports",
        "mesh_versions",
        "mesh_products",
        "mesh_domains",
    ):
        op.drop_table(table)
