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
from functools import cached_property
from typing import TYPE_CHECKING, Any, Generic, TypeVar

if TYPE_CHECKING:
    from meshops.client import Platform
    from meshops.features.interface import FeatureStore
    from meshops.governance.interface import Governance
    from meshops.kernel.home import Context, Home
    from meshops.kernel.http import HttpTransport
    from meshops.kernel.ports import (
        AccessHooks,
        FeedbackWindows,
        GovernedReads,
        LineageFacets,
        MonitorSources,
        PolicyEnforcer,
        ProductFacts,
        PromotionGate,
        TokenAuthenticator,
        ValueMasker,
    )
    from meshops.mesh.interface import Mesh
    from meshops.monitoring.interface import Monitoring
    from meshops.pipelines.interface import Pipelines
    from meshops.project.interface import Project
    from meshops.registry.interface import Registry
    from meshops.serving.interface import Serving
    from meshops.tracking.interface import Tracking

P = TypeVar("P")
Loaded = tuple[type[P], Callable[["Context"], P], Callable[["HttpTransport", "Platform"], P]]


@dataclass(frozen=True)
class AreaSpec(Generic[P]):
    """One area as both transports see it."""

    name: str
    load: Callable[[], Loaded[P]]
    """Imports the area: its Protocol, its service (built with a caller's context) and
    its HTTP client (derived from the declarations by `kernel.rpc.remote`, on top of the
    area's hand-written methods)."""

    @cached_property
    def loaded(self) -> Loaded[P]:
        # Once per process: the API builds a service per request through `service`.
        return self.load()

    @property
    def protocol(self) -> type[P]:
        return self.loaded[0]

    def service(self, ctx: Context) -> P:
        return self.loaded[1](ctx)

    def remote(self, http: HttpTransport, platform: Platform) -> P:
        return self.loaded[2](http, platform)


# One loader per area; each imports only its own area.


def _mesh() -> Loaded[Mesh]:
    from meshops.mesh.interface import Mesh
    from meshops.mesh.service import MeshService

    def remote(http: HttpTransport, platform: Platform) -> Mesh:
        from meshops.kernel.rpc import remote as derive
        from meshops.mesh.remote import RemoteMeshBase

        return derive(Mesh, http, RemoteMeshBase)

    return Mesh, MeshService, remote


def _governance() -> Loaded[Governance]:
    from meshops.governance.interface import Governance
    from meshops.governance.service import GovernanceService

    def remote(http: HttpTransport, platform: Platform) -> Governance:
        from meshops.governance.remote import RemoteGovernanceBase
        from meshops.kernel.rpc import remote as derive

        return derive(Governance, http, RemoteGovernanceBase)

    return Governance, GovernanceService, remote


def _features() -> Loaded[FeatureStore]:
    from meshops.features.interface import FeatureStore
    from meshops.features.service import FeatureStoreService

    def remote(http: HttpTransport, platform: Platform) -> FeatureStore:
        from meshops.features.remote import RemoteFeatureStoreBase
        from meshops.kernel.rpc import remote as derive

        return derive(FeatureStore, http, RemoteFeatureStoreBase)

    return FeatureStore, FeatureStoreService, remote


def _tracking() -> Loaded[Tracking]:
    from meshops.tracking.interface import Tracking
    from meshops.tracking.service import TrackingService

    def remote(http: HttpTransport, platform: Platform) -> Tracking:
        from meshops.kernel.rpc import remote as derive
        from meshops.tracking.remote import RemoteTrackingBase

        return derive(Tracking, http, RemoteTrackingBase)

    return Tracking, TrackingService, remote


def _registry() -> Loaded[Registry]:
    from meshops.registry.interface import Registry
    from meshops.registry.service import RegistryService

    def remote(http: HttpTransport, platform: Platform) -> Registry:
        from meshops.kernel.rpc import remote as derive
        from meshops.registry.remote import RemoteRegistryBase

        return derive(Registry, http, RemoteRegistryBase)

    return Registry, RegistryService, remote


def _pipelines() -> Loaded[Pipelines]:
    # Triggers check their `match` against the payload of the topic; project sits above
    # pipelines, so its `webhook.received` payload model is registered from here.
    import meshops.project.events  # noqa: F401
    from meshops.pipelines.interface import Pipelines
    from meshops.pipelines.service import PipelinesService

    def remote(http: HttpTransport, platform: Platform) -> Pipelines:
        from meshops.kernel.rpc import remote as derive
        from meshops.pipelines.remote import RemotePipelinesBase

        return derive(Pipelines, http, RemotePipelinesBase, tracking=lambda: platform.tracking)

    return Pipelines, PipelinesService, remote


def _serving() -> Loaded[Serving]:
    from meshops.serving.interface import Serving
    from meshops.serving.service import ServingService

    def remote(http: HttpTransport, platform: Platform) -> Serving:
        from meshops.kernel.rpc import remote as derive
        from meshops.serving.remote import RemoteServingBase

        return derive(Serving, http, RemoteServingBase)

    return Serving, ServingService, remote


def _monitoring() -> Loaded[Monitoring]:
    from meshops.kernel.rpc import remote
    from meshops.monitoring.interface import Monitoring
    from meshops.monitoring.service import MonitoringService

    return Monitoring, MonitoringService, lambda http, platform: remote(Monitoring, http)


def _project() -> Loaded[Project]:
    from meshops.project.interface import Project
    from meshops.project.service import ProjectService

    def remote(http: HttpTransport, platform: Platform) -> Project:
        from meshops.kernel.rpc import remote as derive
        from meshops.project.remote import RemoteProjectBase

        return derive(Project, http, RemoteProjectBase, platform=platform)

    return Project, ProjectService, remote


MESH: AreaSpec[Mesh] = AreaSpec("mesh", _mesh)
GOVERNANCE: AreaSpec[Governance] = AreaSpec("governance", _governance)
FEATURES: AreaSpec[FeatureStore] = AreaSpec("features", _features)
TRACKING: AreaSpec[Tracking] = AreaSpec("tracking", _tracking)
REGISTRY: AreaSpec[Registry] = AreaSpec("registry", _registry)
PIPELINES: AreaSpec[Pipelines] = AreaSpec("pipelines", _pipelines)
SERVING: AreaSpec[Serving] = AreaSpec("serving", _serving)
MONITORING: AreaSpec[Monitoring] = AreaSpec("monitoring", _monitoring)
PROJECT: AreaSpec[Project] = AreaSpec("project", _project)
# Every area: the API server derives the routes of each one's declared operations.
AREAS: list[AreaSpec[Any]] = [
    MESH, GOVERNANCE, FEATURES, TRACKING, REGISTRY, PIPELINES, SERVING, MONITORING, PROJECT
]  # fmt: skip


# --- wiring: the kernel's ports (kernel/ports.py), each bound to the area that provides it.
# Binding imports nothing: each factory imports its area when the port is first used.


def install() -> None:
    """Bind the kernel's ports to the areas that provide them (idempotent; run on
    `import meshops`, so every entry point, SDK, server, CLI, worker or test, is wired)."""
    from meshops.kernel import ports

    ports.provide(ports.POLICY_ENFORCER, _policy_enforcer)
    ports.provide(ports.PRODUCT_FACTS, _product_facts)
    ports.provide(ports.GOVERNED_READS, _governed_reads)
    ports.provide(ports.VALUE_MASKER, _value_masker)
    ports.provide(ports.PROMOTION_GATE, _promotion_gate)
    ports.provide(ports.MONITOR_SOURCES, _monitor_sources)
    ports.provide(ports.TOKEN_AUTHENTICATOR, _token_authenticator)
    ports.provide(ports.ACCESS_HOOKS, _access_hooks)
    ports.provide(ports.PLATFORM_OPENER, _SdkOpener)
    ports.provide(ports.FEEDBACK_WINDOWS, _feedback_windows)
    ports.provide(ports.LINEAGE_FACETS, _lineage_facets)


def _feedback_windows() -> FeedbackWindows:
    from meshops.serving.ports import ServingFeedbackWindows

    return ServingFeedbackWindows()


def _policy_enforcer() -> PolicyEnforcer:
    from meshops.governance.ports import GovernancePolicyEnforcer

    return GovernancePolicyEnforcer()


def _product_facts() -> ProductFacts:
    from meshops.mesh.ports import MeshProductFacts

    return MeshProductFacts()


def _governed_reads() -> GovernedReads:
    from meshops.mesh.ports import MeshGovernedReads

    return MeshGovernedReads()


def _lineage_facets() -> LineageFacets:
    from meshops.mesh.lineage_facets import MeshLineageFacets

    return MeshLineageFacets()


def _value_masker() -> ValueMasker:
    from meshops.governance.ports import GovernanceValueMasker

    return GovernanceValueMasker()


def _promotion_gate() -> Callable[[Home], PromotionGate]:
    from meshops.project.promotion import GovernedPromotionGate

    return GovernedPromotionGate


def _monitor_sources() -> MonitorSources:
    from meshops.serving.ports import ServingMonitorSources

    return ServingMonitorSources()


def _token_authenticator() -> TokenAuthenticator:
    from meshops.governance.authn import authenticate_token

    return authenticate_token


def _access_hooks() -> AccessHooks:
    from meshops.governance.ports import GovernanceAccessHooks

    return GovernanceAccessHooks()


class _SdkOpener:
    """The SDK's `connect`, for the pipelines area (running a pipeline inline, a rerun over
    HTTP), which sits below the SDK."""

    def open(self, uri: str | None = None, token: str | None = None) -> Platform:
        from meshops.client import connect

        return connect(uri, token=token)
