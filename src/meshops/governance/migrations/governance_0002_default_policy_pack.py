"""governance: load the default policy pack into the home

Revision ID: governance_0002
"""

from __future__ import annotations

from alembic import op

revision = "governance_0002"
down_revision = "governance_0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    from meshops.governance.policies import install_default_pack

    install_default_pack(op.get_bind())


def downgrade() -> None:
    op.execute("DELETE FROM gov_policies WHERE owner = 'governance-group' AND version = 1")
