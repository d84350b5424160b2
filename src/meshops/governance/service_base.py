"""What the governance services share: the caller's context, the checks of arguments every
one of them takes (days, product ids, page sizes) and the caches their writes end."""

from __future__ import annotations

from datetime import timedelta

from meshops.governance import identities
from meshops.kernel import changes
from meshops.kernel.errors import Forbidden, InvalidInput
from meshops.kernel.home import Context

MAX_LIMIT = 10_000


def days_of(days: int | None, field: str) -> timedelta | None:
    if days is None:
        return None
    if days <= 0:
        raise InvalidInput(f"{field} must be a positive number of days", {"field": field})
    return timedelta(days=days)


def domain_of(product: str) -> str:
    domain, dot, name = product.partition(".")
    if not dot or not domain or not name:
        raise InvalidInput(
            f"not a data product id: {product!r}",
            {"field": "product", "fix": "name products as <domain>.<name>, e.g. sales.orders"},
        )
    return domain


class ServiceBase:
    """A governance service acting for the caller of `ctx`; each one is usable alone."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def _can(self, action: str, domain: str | None = None) -> bool:
        try:
            self.ctx.authorize(action, domain)
        except Forbidden:
            return False
        return True

    def _changed_identities(self) -> None:
        home = self.ctx.home
        identities.invalidate(home)
        self._changed_access()
        # Inside a unit of work the change is not visible to others yet: forget again once
        # it is, so no other thread keeps what it cached in between.
        self.ctx.db.after_commit(lambda: identities.invalidate(home))

    def _changed_access(self) -> None:
        """Read decisions cached on the change epoch (online lookups) end once this commits,
        even on databases whose epoch only advances by polling (kernel/changes.py)."""
        watch = changes.watch(self.ctx.db)
        self.ctx.db.after_commit(watch.advance)
