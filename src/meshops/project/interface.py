"""`platform.project`: the project workflow as the SDK exposes it, embedded or over HTTP.

Plan, apply and check read the repository where the SDK runs (a CI runner's checkout, a
developer's clone) and talk to the other areas through their Protocols, so they work the
same against an embedded home and a server; over HTTP the writes of an apply are sent to
the server, which carries them out in one unit of work (`project.apply.write`). What the
project area itself remembers (applied objects with their commit, approvals, webhook
deliveries) lives behind this Protocol; those operations are declared once
(`meshops.kernel.rpc`), and their routes and HTTP client are derived.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

from meshops.kernel import rpc
from meshops.kernel.bounds import Limit, Version
from meshops.project.models import (
    AppliedObject,
    AppliedRecord,
    ApplyResult,
    Approval,
    CheckReport,
    GateReport,
    Plan,
    PromotionResult,
    WebhookDelivery,
)

if TYPE_CHECKING:
    from meshops.features.interface import FeatureStore
    from meshops.governance.interface import Governance
    from meshops.kernel.lineage import Edge
    from meshops.mesh.interface import Mesh
    from meshops.pipelines.interface import Pipelines
    from meshops.registry.interface import Registry


class AppliedRecords(Protocol):
    @rpc.get("/v1/project/applied")
    def applied(self, project: str | None = None) -> list[AppliedObject]: ...

    @rpc.post("/v1/project/applied")
    def record_applied(
        self,
        project: str,
        commit: str | None,
        records: list[AppliedRecord],
        removed: list[str] | None = None,
        dirty: bool = False,
    ) -> list[AppliedObject]:
        """Remember the objects an apply wrote (urn, spec digest, git commit) and forget the
        removed ones, in one transaction, with an audit event per object."""
        ...


class Project(AppliedRecords, Protocol):
    def plan(self, root: str | Path = ".") -> Plan: ...

    def apply(self, root: str | Path = ".", *, allow_dirty: bool = True) -> ApplyResult: ...

    def check(self, root: str | Path = ".", *, run_tests: bool = True) -> CheckReport: ...

    @rpc.post("/v1/project/models/{model}/versions/{version}/approvals")
    def approve(self, model: str, version: Version, comment: str = "") -> Approval: ...

    @rpc.get("/v1/project/models/{model}/versions/{version}/approvals")
    def approvals(self, model: str, version: Version) -> list[Approval]: ...

    @rpc.get("/v1/project/models/{model}/gate")
    def gate(self, model: str, alias: str, version: Version | None = None) -> GateReport:
        """What the promotion gate would decide (recorded nowhere, moves nothing)."""
        ...

    @rpc.post("/v1/project/models/{model}/promote")
    def promote(
        self, model: str, to: str = "production", version: Version | None = None, reason: str = ""
    ) -> PromotionResult:
        """Move alias `to` to `version` (default: the latest) through the promotion gate."""
        ...

    @rpc.get("/v1/project/deliveries")
    def deliveries(self, limit: Limit = 100) -> list[WebhookDelivery]: ...


class LineageReader(Protocol):
    def downstream(self, urn: str, depth: int = 5) -> list[Edge]: ...


class Areas(Protocol):
    """The areas plan/apply/check use (a `Platform` is one)."""

    @property
    def mesh(self) -> Mesh: ...

    @property
    def governance(self) -> Governance: ...

    @property
    def features(self) -> FeatureStore: ...

    @property
    def pipelines(self) -> Pipelines: ...

    @property
    def registry(self) -> Registry: ...

    @property
    def lineage(self) -> LineageReader: ...

    @property
    def records(self) -> AppliedRecords: ...
