"""registry: which blobs a caller may name in a new model version (its uploads, files of
existing versions); existing versions' files are recorded as references

Revision ID: registry_0002
"""

from __future__ import annotations

import json
from datetime import UTC, datetime

import sqlalchemy as sa
from alembic import op

from meshops.kernel.db import UtcDateTime

revision = "registry_0002"
down_revision = "registry_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    refs = op.create_table(
        "registry_file_refs",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("digest", "kind", "holder", name="pk_registry_file_refs"),
    )
    conn = op.get_bind()
    versions = conn.execute(sa.text("SELECT model_name, version, files FROM model_versions"))
    now = datetime.now(UTC)
    rows = {}
    for name, version, files in versions:
        for file in json.loads(files) if isinstance(files, str) else files or []:
            holder = f"{name}/{version}"
            rows[(file["digest"], holder)] = {
                "digest": file["digest"],
                "kind": "version",
                "holder": holder,
                "at": now,
            }
    if rows:
        op.bulk_insert(refs, list(rows.values()))


def downgrade() -> None:
    op.drop_table("registry_file_refs")
