"""The hook of the one governed read path.

Every read of data product data (SDK, HTTP, SQL, features, pipelines, serving) goes
through the mesh area's read function, which asks the home's `ReadGuard` for a plan before
it reads and reports usage after. The kernel defines only the question; the governance area
answers it (grants, masking, row filters, usage), bound to the kernel's ACCESS_HOOKS port
(kernel/ports.py) by `meshops.assembly`, so the kernel imports no area; a home may name
another guard in settings (`[governance] read_guard = "module:Class"`).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Literal, Protocol

from meshops.kernel.auth import HomeLike

if TYPE_CHECKING:
    from meshops.kernel.home import Context

Interface = Literal["sdk", "http", "sql", "features", "pipeline", "serving", "ui"]
MaskMethod = Literal["hash", "redact", "null"]


@dataclass(frozen=True)
class ReadRequest:
    product: str  # "<domain>.<name>"
    domain: str
    version: str
    port: str
    columns: tuple[str, ...]  # the columns the caller asked for (all, if it named none)
    classification: dict[str, str]  # column -> classification from the port's contract
    owners: tuple[str, ...]  # owners of the product (users)
    interface: Interface = "sdk"
    purpose: str = ""


@dataclass(frozen=True)
class ReadPlan:
    columns: tuple[str, ...]  # the columns the caller may see
    masks: dict[str, MaskMethod] = field(default_factory=dict)  # column -> how to mask it
    row_filter: str | None = None  # a SQL predicate over the port's columns
    warnings: tuple[str, ...] = ()
    grant_id: str | None = None
    # When the plan stops holding on its own (the grant's expiry), for callers caching it.
    valid_until: datetime | None = None


@dataclass(frozen=True)
class ReadUsage:
    request: ReadRequest
    plan: ReadPlan
    rows: int


class ReadGuard(Protocol):
    def plan(self, ctx: Context, request: ReadRequest) -> ReadPlan:
        """Decide what `ctx.actor` may read; raise Forbidden when nothing."""
        ...

    def record(self, ctx: Context, usage: ReadUsage) -> None:
        """Record a read that happened."""
        ...


class OwnerOnlyReadGuard:
    """Without governance: owners and the home's local user read everything, unmasked;
    nobody else reads anything. Records nothing."""

    def __init__(self, home: HomeLike) -> None:
        self.owner = home.settings.user

    def plan(self, ctx: Context, request: ReadRequest) -> ReadPlan:
        from meshops.kernel.errors import Forbidden

        if ctx.actor.kind == "system" or ctx.actor.name in (self.owner, *request.owners):
            return ReadPlan(columns=request.columns)
        raise Forbidden(
            f"{ctx.actor.name} has no access to {request.product}:{request.port}",
            {"fix": "request access from the product's owners"},
        )

    def record(self, ctx: Context, usage: ReadUsage) -> None:
        return None
