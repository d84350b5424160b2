"""The kernel's `ReadGuard` answered with grants, masking, row filters and usage.

Owners of the product, principals whose role allows `dataproduct.read_any` in the product's
domain (platform admins, domain owners, data product owners) and the system actor read
everything unmasked. Everyone else needs `dataproduct.read_data` and an active grant on the
port; classified columns (levels in `documents.MASKED_LEVELS`) are masked unless the grant
names them, with the method of the mask rule for the level (domain rule, else global rule,
else `DEFAULT_MASKS`), and the grant's row filter applies.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, select

from meshops.governance.access import active_grant
from meshops.governance.models import GLOBAL_SCOPE
from meshops.governance.store import mask_rules, usage_events
from meshops.governance.usage import buffer_of
from meshops.kernel.access import MaskMethod, ReadPlan, ReadRequest, ReadUsage
from meshops.kernel.auth import HomeLike
from meshops.kernel.db import utcnow
from meshops.kernel.errors import Forbidden
from meshops.kernel.home import Context

DEFAULT_MASKS: dict[str, MaskMethod] = {
    "pii": "hash",
    "sensitive": "hash",
    "confidential": "redact",
    "restricted": "null",
}


def mask_methods(conn: Connection, domain: str) -> dict[str, MaskMethod]:
    """Classification level -> mask method in effect for `domain`."""
    methods = dict(DEFAULT_MASKS)
    rows = conn.execute(
        select(mask_rules).where(mask_rules.c.scope.in_([GLOBAL_SCOPE, domain]))
    ).mappings()
    # Domain rules override global ones: apply global first.
    for row in sorted(rows, key=lambda r: r["scope"] != GLOBAL_SCOPE):
        methods[row["classification"]] = row["method"]
    return methods


def reads_everything(ctx: Context, request: ReadRequest) -> bool:
    if ctx.actor.kind == "system" or ctx.actor.name in request.owners:
        return True
    try:
        ctx.authorize("dataproduct.read_any", request.domain)
    except Forbidden:
        return False
    return True


class GovernedReadGuard:
    def __init__(self, home: HomeLike) -> None:
        self.home = home

    def plan(self, ctx: Context, request: ReadRequest) -> ReadPlan:
        ctx.authorize("dataproduct.read_data", request.domain)
        if reads_everything(ctx, request):
            return ReadPlan(columns=request.columns)
        with ctx.db.read() as conn:
            grant = active_grant(conn, request.product, request.port, ctx.actor.name, utcnow())
            methods = mask_methods(conn, request.domain) if grant else {}
        if grant is None:
            raise Forbidden(
                f"{ctx.actor.name} has no access to {request.product} port {request.port}",
                {
                    "product": request.product,
                    "port": request.port,
                    "fix": f"meshops access request {request.product} --port {request.port} "
                    '--purpose "<why you need it>"',
                },
            )
        # Imported here: documents builds the policy input models (~12 ms), which a process
        # that only authorizes, e.g. `meshops catalog search`, never needs (B10).
        from meshops.governance.documents import MASKED_LEVELS

        masks: dict[str, MaskMethod] = {}
        for column in request.columns:
            level = request.classification.get(column, "public")
            if level in MASKED_LEVELS and column not in grant.columns:
                masks[column] = methods.get(level, "hash")
        return ReadPlan(
            columns=request.columns,
            masks=masks,
            row_filter=grant.row_filter,
            grant_id=grant.id,
            valid_until=grant.expires_at,
        )

    def record(self, ctx: Context, usage: ReadUsage) -> None:
        with ctx.db.begin() as conn:
            conn.execute(usage_events.insert().values(**_usage_row(ctx, usage)))

    def record_buffered(self, ctx: Context, usage: ReadUsage) -> None:
        """`record` for hot paths (online lookups): counted in memory, written within about
        a second as one event per identical reads (usage.UsageBuffer); usage queries flush
        first."""
        request, plan = usage.request, usage.plan
        key = (
            ctx.actor.name, request.product, request.domain, request.version, request.port,
            plan.columns, tuple(sorted(plan.masks)), request.interface, plan.grant_id,
        )  # fmt: skip
        buffer_of(ctx.home).add(key, usage.rows, utcnow())


def _usage_row(ctx: Context, usage: ReadUsage) -> dict[str, Any]:
    request, plan = usage.request, usage.plan
    return {
        "at": utcnow(),
        "actor": ctx.actor.name,
        "product": request.product,
        "domain": request.domain,
        "version": request.version,
        "port": request.port,
        "columns": list(plan.columns),
        "masked": sorted(plan.masks),
        "rows": usage.rows,
        "interface": request.interface,
        "grant_id": plan.grant_id,
    }
