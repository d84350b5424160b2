"""Usage of products: who read what, idle products, and the impact of a change."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from meshops.governance import access, usage
from meshops.governance.models import IdleProduct, Impact, ProductUsage, UsageEvent
from meshops.governance.service_base import MAX_LIMIT, ServiceBase, days_of, domain_of
from meshops.kernel.db import utcnow
from meshops.kernel.lineage import walk
from meshops.kernel.urn import dataproduct_urn


class UsageService(ServiceBase):
    """Product usage and the impact of a change."""

    def _authorize_usage(self, product: str) -> str:
        domain = domain_of(product)
        self.ctx.authorize("usage.read", domain)
        return domain

    def product_usage(self, product: str, days: int = 30) -> ProductUsage:
        self._authorize_usage(product)
        usage.flush_pending(self.ctx.home)
        since = utcnow() - (days_of(days, "days") or timedelta(days=30))
        with self.ctx.db.read() as conn:
            return usage.product_usage(conn, product, since)

    def usage_events(self, product: str | None = None, limit: int = 100) -> list[UsageEvent]:
        if product:
            self._authorize_usage(product)
        else:
            self.ctx.authorize("usage.read")
        usage.flush_pending(self.ctx.home)
        with self.ctx.db.read() as conn:
            return usage.events(conn, product, limit=min(limit, MAX_LIMIT))

    def idle_products(self, days: int = 30, known: list[str] | None = None) -> list[IdleProduct]:
        """Products nobody read for `days` days: candidates for deprecation."""
        self.ctx.authorize("usage.read")
        days_of(days, "days")
        usage.flush_pending(self.ctx.home)
        with self.ctx.db.read() as conn:
            return usage.idle_products(conn, utcnow(), days, known)

    def impact(
        self,
        product: str,
        columns: list[str] | None = None,
        days: int = 90,
        versions: list[str] | None = None,
    ) -> Impact:
        """What a change to `product` (or to some of its columns) would touch: downstream
        lineage of its versions, active grants, and who read it (those columns) lately."""
        domain = self._authorize_usage(product)
        since = utcnow() - (days_of(days, "days") or timedelta(days=90))
        usage.flush_pending(self.ctx.home)
        name = product.partition(".")[2]
        with self.ctx.db.read() as conn:
            known_versions = sorted(set(versions or []) | set(usage.versions_read(conn, product)))
            edges: dict[tuple[str, str, str], dict[str, Any]] = {}
            for version in known_versions:
                for edge in walk(conn, dataproduct_urn(domain, name, version), "downstream", 10):
                    edges.setdefault(
                        (edge.upstream, edge.downstream, edge.relation), edge.to_json()
                    )
            active = access.list_grants(conn, product, active_at=utcnow())
            consumers = usage.consumers_of(conn, product, since, columns)
        if columns:
            active = [g for g in active if not g.columns or set(g.columns) & set(columns)] or active
        return Impact(
            product=product,
            columns=sorted(columns or []),
            downstream=list(edges.values()),
            grants=active,
            consumers=consumers,
            window_days=days,
        )
