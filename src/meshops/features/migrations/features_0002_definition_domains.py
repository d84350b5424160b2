"""features: entities, feature services and on-demand features get a domain

Before this revision only feature views had a domain (their product's); the others had
none, so only platform-scope roles could read or change them. Every stored entity, feature
service and on-demand feature gets the domain of the feature views it belongs with (the one
domain they share; none when they span several, then each view's domain governs it), an
index on the column, and its stored definition the new `domain` field (None: derived), with
the digest recomputed so an unchanged re-apply stays unchanged.

Revision ID: features_0002
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import sqlalchemy as sa
from alembic import op

from meshops.kernel.db import JsonColumn

revision = "features_0002"
down_revision = "features_0001"
branch_labels = None
depends_on = None

# Kept in step with meshops.features (a migration must not change when the code does).
_definitions = sa.table(
    "feature_definitions",
    sa.column("kind", sa.String),
    sa.column("name", sa.String),
    sa.column("domain", sa.String),
    sa.column("definition", JsonColumn),
    sa.column("digest", sa.String),
)
_WITH_DOMAIN_FIELD = ("entity", "feature_service")


def _digest(value: Any) -> str:
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


def _view_domain(definition: dict[str, Any]) -> str:
    return str(definition["source"]["product"]).split(".", 1)[0]


def _domains(
    kind: str, definition: dict[str, Any], views: dict[str, dict[str, Any]],
    on_demand: dict[str, dict[str, Any]],
) -> set[str]:  # fmt: skip
    if definition.get("domain"):
        return {str(definition["domain"])}
    if kind == "entity":
        name = definition["name"]
        return {_view_domain(v) for v in views.values() if name in v.get("entities", [])}
    refs = definition.get("features", []) if kind == "feature_service" else [definition["name"]]
    names: set[str] = set()
    for ref in refs:
        if ":" in ref:
            names.add(ref.partition(":")[0])
        elif ref in on_demand:
            names |= {r.partition(":")[0] for r in on_demand[ref].get("inputs", []) if ":" in r}
    return {_view_domain(views[n]) for n in names if n in views}


def upgrade() -> None:
    bind = op.get_bind()
    rows = [dict(r) for r in bind.execute(sa.select(_definitions)).mappings()]
    views = {r["name"]: r["definition"] for r in rows if r["kind"] == "feature_view"}
    on_demand = {r["name"]: r["definition"] for r in rows if r["kind"] == "on_demand_feature"}
    for row in rows:
        if row["kind"] == "feature_view":
            continue
        definition = dict(row["definition"])
        if row["kind"] in _WITH_DOMAIN_FIELD:
            definition.setdefault("domain", None)
        domains = _domains(row["kind"], definition, views, on_demand)
        domain = next(iter(domains)) if len(domains) == 1 else None
        bind.execute(
            sa.update(_definitions)
            .where(_definitions.c.kind == row["kind"], _definitions.c.name == row["name"])
            .values(domain=domain, definition=definition, digest=_digest(definition))
        )
    op.create_index("ix_feature_definitions_domain", "feature_definitions", ["domain"])


def downgrade() -> None:
    op.drop_index("ix_feature_definitions_domain", "feature_definitions")
    bind = op.get_bind()
    rows = bind.execute(
        sa.select(_definitions).where(_definitions.c.kind.in_(_WITH_DOMAIN_FIELD))
    ).mappings()
    for row in [dict(r) for r in rows]:
        definition = {k: v for k, v in dict(row["definition"]).items() if k != "domain"}
        bind.execute(
            sa.update(_definitions)
            .where(_definitions.c.kind == row["kind"], _definitions.c.name == row["name"])
            .values(domain=None, definition=definition, digest=_digest(definition))
        )
