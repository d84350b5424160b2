"""Project workflow types and pure logic: plans, applied objects, checks, approvals,
webhook deliveries (no I/O)."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from meshops.registry.comparison import ModelComparison

ObjectKind = Literal[
    "domain",
    "dataproduct",
    "entity",
    "feature_view",
    "on_demand_feature",
    "feature_service",
    "policy",
    "schedule",
    "trigger",
]
Action = Literal["create", "update", "new_version", "remove", "unchanged"]


def spec_digest(value: Any) -> str:
    """The digest of a spec as written (canonical JSON): equal digests mean nothing to do."""
    text = json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class BreakingChange(BaseModel):
    kind: str
    port: str
    column: str | None = None
    message: str


class Affected(BaseModel):
    """Who a breaking change reaches, from the lineage graph (downstream walk)."""

    consumers: list[str] = Field(default_factory=list)  # data products, feature views ...
    models: list[str] = Field(default_factory=list)  # model versions
    other: list[str] = Field(default_factory=list)


class PolicyOutcome(BaseModel):
    policy_id: str
    scope: str
    severity: str
    outcome: str
    explanation: str

    @property
    def blocking(self) -> bool:
        return self.outcome != "pass" and self.severity == "block"


class Change(BaseModel):
    kind: ObjectKind
    name: str  # e.g. "sales.orders", "customer_stats", "no-pii"
    urn: str  # the project-wide key of the object (see plan.object_urn)
    action: Action
    digest: str  # digest of the spec in the repository ("" for removals)
    previous_digest: str | None = None  # digest recorded at the last apply
    file: str = ""  # where it is defined, relative to the repository
    version: str | None = None  # data products: the version in the repository
    published_version: str | None = None  # data products: latest on the platform
    version_bump: str | None = None
    details: list[str] = Field(default_factory=list)  # human-readable differences
    breaking: list[BreakingChange] = Field(default_factory=list)
    affected: Affected = Field(default_factory=Affected)
    policies: list[PolicyOutcome] = Field(default_factory=list)
    errors: list[str] = Field(default_factory=list)

    @property
    def blocked(self) -> bool:
        return bool(self.errors) or any(p.blocking for p in self.policies)


class GitInfo(BaseModel):
    commit: str | None = None
    branch: str | None = None
    dirty: bool = False
    remote: str | None = None


class Plan(BaseModel):
    project: str
    root: str
    git: GitInfo = Field(default_factory=GitInfo)
    changes: list[Change] = Field(default_factory=list)

    @property
    def pending(self) -> list[Change]:
        return [c for c in self.changes if c.action != "unchanged"]

    @property
    def blocked(self) -> list[Change]:
        return [c for c in self.changes if c.blocked]

    @property
    def has_changes(self) -> bool:
        return bool(self.pending)

    def change(self, kind: str, name: str) -> Change:
        for c in self.changes:
            if c.kind == kind and c.name == name:
                return c
        raise KeyError(f"{kind} {name} is not in the plan")


class AppliedObject(BaseModel):
    """The C2 link: which commit of which project an object on the platform came from."""

    project: str
    urn: str
    kind: str
    name: str
    digest: str
    commit: str | None = None
    applied_at: datetime
    applied_by: str
    detail: dict[str, Any] = Field(default_factory=dict)


class AppliedRecord(BaseModel):
    """What `apply` asks the project store to remember for one object."""

    urn: str
    kind: str
    name: str
    digest: str
    detail: dict[str, Any] = Field(default_factory=dict)


class ApplyResult(BaseModel):
    project: str
    commit: str | None = None
    applied: list[Change] = Field(default_factory=list)
    unchanged: list[str] = Field(default_factory=list)
    removed: list[str] = Field(default_factory=list)
    records: list[AppliedObject] = Field(default_factory=list)


class CheckCase(BaseModel):
    suite: str  # specs | contracts | transform-tests | policies | breaking-changes
    name: str
    passed: bool
    skipped: bool = False
    message: str = ""
    output: str = ""
    seconds: float = 0.0


class CheckReport(BaseModel):
    project: str
    git: GitInfo = Field(default_factory=GitInfo)
    cases: list[CheckCase] = Field(default_factory=list)
    seconds: float = 0.0
    plan: Plan | None = None  # the plan of the same run (rendered in the Markdown summary)

    @property
    def failures(self) -> list[CheckCase]:
        return [c for c in self.cases if not c.passed and not c.skipped]

    @property
    def passed(self) -> bool:
        return not self.failures

    def suites(self) -> dict[str, list[CheckCase]]:
        out: dict[str, list[CheckCase]] = {}
        for case in self.cases:
            out.setdefault(case.suite, []).append(case)
        return out


class Approval(BaseModel):
    model: str
    version: int
    approver: str
    role: str = ""
    comment: str = ""
    at: datetime


class GateReport(BaseModel):
    """What the promotion gate decided, and why (also written to the audit log)."""

    model: str
    version: int
    alias: str
    target_stage: str
    allowed: bool
    reasons: list[str] = Field(default_factory=list)
    policies: list[PolicyOutcome] = Field(default_factory=list)
    metric: str | None = None
    direction: str | None = None  # "max" or "min": which way the metric is better
    tolerance: float | None = None
    candidate_value: float | None = None
    current_version: int | None = None
    current_value: float | None = None
    # The recorded champion/challenger comparison the decision used (both scores, run).
    comparison: ModelComparison | None = None
    # An approval that overrode the comparison's refusal: approver, role, comment, reasons.
    override: dict[str, Any] | None = None
    approvals: list[Approval] = Field(default_factory=list)
    approvals_required: int = 0


class PromotionResult(BaseModel):
    model: str
    version: int
    alias: str
    from_version: int | None = None
    gate: GateReport


class WebhookDelivery(BaseModel):
    delivery_id: str
    source: str  # "github" or the generic webhook's name
    event: str
    received_at: datetime
    status: str  # recorded | applied | planned | failed | ignored
    detail: dict[str, Any] = Field(default_factory=dict)
