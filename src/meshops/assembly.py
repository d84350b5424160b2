"""Where the areas meet: the one module that wires them together.

An area never imports another area's service lazily or by name. What one area needs of
another is a small Protocol in the kernel (`meshops.kernel.ports`), implemented in the
providing area and bound here, once. This module also lists each area's public Protocol,
service and HTTP client, which the SDK (`meshops.client`) and the API server
(`meshops.api.app`) both read, so an area is added to both transports in one place.

Imports of areas happen inside the functions below: a CLI command that needs one area does
not pay for importing the others (BENCHMARKS.md B10).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from meshops.kernel.home import Context
    from meshops.monitoring.interface import Monitoring

P = TypeVar("P")


@dataclass(frozen=True)
class AreaSpec(Generic[P]):
    """One area as both transports see it."""

    name: str
    load: Callable[[], tuple[type[P], Callable[[Context], P], type]]
    """Imports the area: its Protocol, its service (built with a caller's context) and
    the base of its HTTP client (hand-written methods; `RemoteArea` when there are none)."""

    @property
    def protocol(self) -> type[P]:
        return self.load()[0]

    def service(self, ctx: Context) -> P:
        return self.load()[1](ctx)

    @property
    def remote_base(self) -> type:
        return self.load()[2]


def _monitoring() -> tuple[type[Monitoring], Callable[[Context], Monitoring], type]:
    from meshops.kernel.rpc import RemoteArea
    from meshops.monitoring.interface import Monitoring
    from meshops.monitoring.service import MonitoringService

    return Monitoring, MonitoringService, RemoteArea


MONITORING: AreaSpec[Monitoring] = AreaSpec("monitoring", _monitoring)

# The areas whose routes and clients are derived from their declarations (kernel.rpc).
DECLARED: list[AreaSpec[Any]] = [MONITORING]


def install() -> None:
    """Bind the kernel's ports to the areas that provide them (idempotent)."""
    return None
