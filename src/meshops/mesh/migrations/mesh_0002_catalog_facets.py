"""mesh: catalog facet table, stable document ids, FTS5 keyed by document id with prefix index

Revision ID: mesh_0002
"""

from __future__ import annotations

import hashlib
import json

import sqlalchemy as sa
from alembic import op

from meshops.kernel.db import BigId

revision = "mesh_0002"
down_revision = "mesh_0001"
branch_labels = None
depends_on = None

# Kept in step with meshops.mesh.catalog (a migration must not change when the code does).
_FTS = (
    "CREATE VIRTUAL TABLE mesh_catalog_fts USING fts5("
    "product UNINDEXED, name, domain, description, tags, owners, columns_text, "
    "tokenize = 'unicode61', prefix = '2 3')"
)


def _doc_id(product: str) -> int:
    return int.from_bytes(hashlib.sha256(product.encode()).digest()[:8], "big") >> 2


def _list(value: object) -> list[str]:
    if isinstance(value, str):
        value = json.loads(value)
    return [str(v) for v in value or []]  # type: ignore[attr-defined]


def upgrade() -> None:
    op.add_column("mesh_catalog", sa.Column("doc_id", BigId, nullable=True))
    op.create_table(
        "mesh_catalog_facets",
        sa.Column("doc_id", BigId, primary_key=True, autoincrement=False),
        sa.Column("facet", sa.String(20), primary_key=True),
        sa.Column("value", sa.String(200), primary_key=True),
        sa.Column("product", sa.String(200), nullable=False),
    )
    op.create_index(
        "ix_mesh_catalog_facets_value", "mesh_catalog_facets", ["facet", "value", "doc_id"]
    )
    bind = op.get_bind()
    rows = bind.execute(
        sa.text("SELECT product, domain, status, tags, classifications FROM mesh_catalog")
    ).all()
    facets = []
    for product, domain, status, tags, classifications in rows:
        doc = _doc_id(product)
        bind.execute(
            sa.text("UPDATE mesh_catalog SET doc_id = :d WHERE product = :p"),
            {"d": doc, "p": product},
        )
        values = {("domain", domain), ("status", status)}
        values |= {("tag", t) for t in _list(tags)}
        values |= {("classification", c) for c in _list(classifications)}
        facets += [{"doc_id": doc, "facet": f, "value": v, "product": product} for f, v in values]
    if facets:
        bind.execute(
            sa.text(
                "INSERT INTO mesh_catalog_facets (doc_id, facet, value, product) "
                "VALUES (:doc_id, :facet, :value, :product)"
            ),
            facets,
        )
    op.create_index("ix_mesh_catalog_doc_id", "mesh_catalog", ["doc_id"], unique=True)
    if bind.dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS mesh_catalog_fts")
        op.execute(_FTS)
        op.execute(
            "INSERT INTO mesh_catalog_fts (rowid, product, name, domain, description, tags, "
            "owners, columns_text) SELECT c.doc_id, c.product, c.name, c.domain, "
            "c.description, (SELECT coalesce(group_concat(value, ' '), '') "
            "FROM json_each(c.tags)), (SELECT coalesce(group_concat(value, ' '), '') "
            "FROM json_each(c.owners)), c.columns_text FROM mesh_catalog c"
        )


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "sqlite":
        op.execute("DROP TABLE IF EXISTS mesh_catalog_fts")
        op.execute(
            "CREATE VIRTUAL TABLE mesh_catalog_fts USING fts5("
            "product UNINDEXED, name, domain, description, tags, owners, columns_text, "
            "tokenize = 'unicode61')"
        )
        op.execute(
            "INSERT INTO mesh_catalog_fts (product, name, domain, description, tags, owners, "
            "columns_text) SELECT c.product, c.name, c.domain, c.description, "
            "(SELECT coalesce(group_concat(value, ' '), '') FROM json_each(c.tags)), "
            "(SELECT coalesce(group_concat(value, ' '), '') FROM json_each(c.owners)), "
            "c.columns_text FROM mesh_catalog c"
        )
    op.drop_index("ix_mesh_catalog_doc_id", "mesh_catalog")
    op.drop_index("ix_mesh_catalog_facets_value", "mesh_catalog_facets")
    op.drop_table("mesh_catalog_facets")
    with op.batch_alter_table("mesh_catalog") as batch:
        batch.drop_column("doc_id")
