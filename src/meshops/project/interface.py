"""`platform.project`: the project workflow as the SDK exposes it, embedded or over HTTP.

Plan, apply and check read the repository where the SDK runs (a CI runner's checkout, a
developer's clone) and talk to the other areas through their Protocols, so they work the
same against an embedded home and a server. What the project area itself remembers (applied
objects with their commit, approvals, webhook deliveries) lives behind this Protocol.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Protocol

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
    def applied(self, project: str | None = None) -> list[AppliedObject]: ...

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

    def approve(self, model: str, version: int, comment: str = "") -> Approval: ...

    def approvals(self, model: str, version: int) -> list[Approval]: ...

    def gate(self, model: str, alias: str, version: int | None = None) -> GateReport:
        """What the promotion gate would decide (recorded nowhere, moves nothing)."""
        ...

    def promote(
        self, model: str, to: str = "production", version: int | None = None, reason: str = ""
    ) -> PromotionResult:
        """Move alias `to` to `version` (default: the latest) through the promotion gate."""
        ...

    def deliveries(self, limit: int = 100) -> list[WebhookDelivery]: ...


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
