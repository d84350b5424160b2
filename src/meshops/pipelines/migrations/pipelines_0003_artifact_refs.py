"""pipelines: which artifacts a caller may fetch by digest (its own uploads, outputs of
recorded step runs); existing step-run outputs are recorded as references

Revision ID: pipelines_0003
"""

from __future__ import annotations

import base64
import hashlib
import json
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import op

from meshops.kernel.db import UtcDateTime

revision = "pipelines_0003"
down_revision = "pipelines_0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    refs = op.create_table(
        "pipeline_artifact_refs",
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("kind", sa.String(10), nullable=False),
        sa.Column("holder", sa.String(200), nullable=False),
        sa.Column("at", UtcDateTime, nullable=False),
        sa.PrimaryKeyConstraint("digest", "kind", "holder", name="pk_pipeline_artifact_refs"),
    )
    now = datetime.now(UTC)
    rows: dict[str, dict[str, Any]] = {}
    for outputs in op.get_bind().execute(sa.text("SELECT outputs FROM step_runs")).scalars():
        for output in json.loads(outputs) if isinstance(outputs, str) else outputs or []:
            digest = output.get("digest")
            inline = output.get("inline")
            # An inline output counts only if its bytes are what its digest says.
            if inline is not None and _sha256(inline) != digest:
                continue
            rows[digest] = {"digest": digest, "kind": "output", "holder": "", "at": now}
    if rows:
        op.bulk_insert(refs, list(rows.values()))


def _sha256(inline: str) -> str:
    return hashlib.sha256(base64.b64decode(inline)).hexdigest()


def downgrade() -> None:
    op.drop_table("pipeline_artifact_refs")
