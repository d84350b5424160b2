"""What one area needs of another, as small Protocols the kernel owns.

An area never imports another area's service, lazily or by a `module:Class` string. When
it needs something of another area (the mesh asks governance whether a publish may go
ahead; governance asks the mesh who owns a port), the need is a port below: a Protocol
plus a typed key. The providing area implements it (in its `ports.py`) and
`meshops.assembly.install()` binds it, once per process, before any home opens:

    ports.provide(ports.POLICY_ENFORCER, lambda: GovernancePolicyEnforcer())
    ports.POLICY_ENFORCER.get().enforce(ctx, "dataproduct.publish", document, domain, urn)

A provider is built on first use (binding imports nothing) and then shared by the process:
whatever depends on a home or an actor is passed with each call (`ctx`, `home`). Asking
for a port nobody bound raises `NotWired`, naming the port and the fix.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, Protocol, TypeVar

from meshops.kernel.errors import MeshopsError

if TYPE_CHECKING:
    import pyarrow as pa

    from meshops.kernel.access import Interface, MaskMethod, ReadGuard
    from meshops.kernel.auth import Actor, Authorizer
    from meshops.kernel.home import Context, Home

T = TypeVar("T")


class NotWired(MeshopsError):
    """A port was asked for before anything provided it: a wiring mistake, not the caller's."""

    error = "not_wired"


class Port(Generic[T]):
    """The typed key of one cross-area need; `get()` returns its provider."""

    def __init__(self, name: str, doc: str) -> None:
        self.name = name
        self.doc = doc

    def get(self) -> T:
        return _resolve(self)

    def __repr__(self) -> str:
        return f"<port {self.name}>"


_lock = threading.Lock()
_factories: dict[Port[Any], Callable[[], Any]] = {}
_providers: dict[Port[Any], Any] = {}


def provide(port: Port[T], factory: Callable[[], T]) -> None:
    """Bind `port` to what `factory` builds (on first use). Binding again replaces the
    provider: tests may swap one in."""
    with _lock:
        _factories[port] = factory
        _providers.pop(port, None)


def is_wired(port: Port[Any]) -> bool:
    return port in _factories


def _resolve(port: Port[T]) -> T:
    if port in _providers:
        return _providers[port]  # type: ignore[no-any-return]
    with _lock:
        if port not in _providers:
            factory = _factories.get(port)
            if factory is None:
                raise NotWired(
                    f"nothing provides the {port.name} port ({port.doc})",
                    {
                        "port": port.name,
                        "fix": "call meshops.assembly.install() (importing meshops does), "
                        "or ports.provide() it",
                    },
                )
            _providers[port] = factory()
        return _providers[port]  # type: ignore[no-any-return]


# --- the ports -----------------------------------------------------------------------------


@dataclass(frozen=True)
class PolicyNote:
    """A non-blocking policy result (severity `warn`) an enforced decision carries."""

    policy_id: str
    explanation: str


class PolicyEnforcer(Protocol):
    """Policies over a document, before an area writes (publish gate, feature use)."""

    def enforce(
        self, ctx: Context, target: str, document: dict[str, Any], domain: str | None, urn: str
    ) -> list[PolicyNote]:
        """Evaluate and record the `target` policies of `domain` (and the global ones);
        raise PolicyViolation on a blocking failure, else return the warnings."""
        ...

    def fingerprint(self, ctx: Context, target: str) -> tuple[Any, ...]:
        """Hashable facts that change whenever the `target` policies change (for caches
        of decisions); read as the system."""
        ...


@dataclass(frozen=True)
class PortColumn:
    name: str
    logical_type: str | None
    physical_type: str | None
    classification: str | None


@dataclass(frozen=True)
class PortFacts:
    """One port of one published product version, as the server knows it."""

    product: str  # "<domain>.<name>"
    domain: str
    version: str
    urn: str
    digest: str
    port: str
    rows: int
    status: str
    owners: tuple[str, ...]
    columns: tuple[PortColumn, ...]

    def classification(self) -> dict[str, str]:
        return {c.name: c.classification or "public" for c in self.columns}


class ProductFacts(Protocol):
    """What the mesh knows of a product, read as `ctx.actor` (who needs the server's facts
    whatever the caller may see, e.g. who owns a port, passes the system context)."""

    def port_facts(
        self, ctx: Context, product: str, port: str | None = None, version: str | None = None
    ) -> PortFacts:
        """The port (default: the product's only or first port) of the version (default:
        the latest); NotFound when the product or port does not exist."""
        ...

    def owners(self, ctx: Context, product: str) -> list[str] | None:
        """The product's owners now; None when it is not published."""
        ...


class GovernedReads(Protocol):
    """Reads of product data through the mesh's one governed path, as `ctx.actor`."""

    def read(
        self,
        ctx: Context,
        product: str,
        *,
        version: str,
        port: str,
        columns: list[str],
        interface: Interface,
    ) -> pa.Table: ...

    def sql(self, ctx: Context, query: str, *, interface: Interface) -> pa.Table:
        """SQL over data products (`domain.name` as tables)."""
        ...


class ValueMasker(Protocol):
    """Masks a column's values exactly as a governed read masks them."""

    def key(self, home: Home) -> bytes:
        """The home's masking key (derive it once per batch of calls)."""
        ...

    def mask(
        self, values: list[Any], method: MaskMethod, key: bytes, value_type: pa.DataType
    ) -> list[Any]: ...


class LineageFacets(Protocol):
    """The OpenLineage dataset facets that say how a product port's version is stored,
    for events built outside the mesh (a batch scoring's input and output ports): for an
    Apache Iceberg port, the table it is a snapshot of (`symlinks`, `storage`, `catalog`)."""

    def port_facets(self, ctx: Context, product: str, port: str, version: str) -> dict[str, Any]:
        """The facets (openlineage-python facet objects, by facet key) of `port` of the
        version, read as `ctx.actor`; empty for a Parquet port, or when the version cannot
        be read (lineage never fails the operation it reports)."""
        ...


class PromotionGate(Protocol):
    """Asked before a model alias moves; raises PolicyViolation to refuse. `version` is the
    registry's ModelVersion (the kernel does not know the registry's models). The default
    is the project area's gate (`model.promote` policies, metric comparison, approvals);
    a home names another in `meshops.toml`: `[registry] promotion_gate = "pkg.mod:Class"`
    (constructed with the Home)."""

    def check(self, ctx: Context, version: Any, alias: str, current: int | None) -> None: ...


class MonitorWindowSource(Protocol):
    """A monitor source another area provides (built from the source's options)."""

    def read(self, ctx: Context, spec: Any, start: Any, end: Any) -> Any: ...


class MonitorSources(Protocol):
    """Named monitor sources provided by other areas (e.g. serving's `prediction_log`)."""

    def names(self) -> list[str]: ...

    def factory(self, name: str) -> Callable[[dict[str, Any]], MonitorWindowSource] | None: ...


class FeedbackWindows(Protocol):
    """The labelled predictions (features, `label`) that the endpoints serving `model` logged
    since `since`: what a champion/challenger comparison adds to its holdout. None when
    there are none the caller may read."""

    def labelled(self, ctx: Context, model: str, since: Any) -> pa.Table | None: ...


class TokenAuthenticator(Protocol):
    """The actor a bearer token stands for; Unauthenticated when it stands for none."""

    def __call__(self, home: Home, token: str | None) -> Actor: ...


class AccessHooks(Protocol):
    """A home's default authorizer and read guard (`[governance] authorizer`/`read_guard`
    in meshops.toml name others)."""

    def authorizer(self, home: Home) -> Authorizer: ...

    def read_guard(self, home: Home) -> ReadGuard: ...


class PlatformOpener(Protocol):
    """Opens the SDK's Platform (embedded, or over HTTP with `uri`); the caller closes it.
    For code that runs user pipelines and needs the whole platform, not one area."""

    def open(self, uri: str | None = None, token: str | None = None) -> Any:
        """The SDK's Platform (the kernel does not know its type): a context manager with
        the areas as attributes (`platform.pipelines`)."""
        ...


POLICY_ENFORCER: Port[PolicyEnforcer] = Port("policy enforcer", "governance policies")
PRODUCT_FACTS: Port[ProductFacts] = Port("product facts", "owners and classification")
GOVERNED_READS: Port[GovernedReads] = Port("governed reads", "the mesh's read path")
VALUE_MASKER: Port[ValueMasker] = Port("value masker", "governance masking")
LINEAGE_FACETS: Port[LineageFacets] = Port("lineage facets", "how a product port is stored")
PROMOTION_GATE: Port[Callable[[Home], PromotionGate]] = Port(
    "promotion gate", "the default gate of model alias moves"
)
MONITOR_SOURCES: Port[MonitorSources] = Port("monitor sources", "sources other areas provide")
FEEDBACK_WINDOWS: Port[FeedbackWindows] = Port("feedback windows", "labelled serving feedback")
TOKEN_AUTHENTICATOR: Port[TokenAuthenticator] = Port("token authenticator", "API tokens")
ACCESS_HOOKS: Port[AccessHooks] = Port("access hooks", "authorizer and read guard")
PLATFORM_OPENER: Port[PlatformOpener] = Port("platform opener", "the SDK's connect")

# Every port: the assembly binds each (tests/kernel/test_ports.py checks none is left out).
ALL_PORTS: tuple[Port[Any], ...] = (
    POLICY_ENFORCER, PRODUCT_FACTS, GOVERNED_READS, VALUE_MASKER, PROMOTION_GATE,
    MONITOR_SOURCES, TOKEN_AUTHENTICATOR, ACCESS_HOOKS, PLATFORM_OPENER, FEEDBACK_WINDOWS,
    LINEAGE_FACETS,
)  # fmt: skip
