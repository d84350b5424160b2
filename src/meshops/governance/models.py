"""Governance types (pydantic, no I/O): principals, tokens, bindings, policies and their
decisions, access requests and grants, usage, compliance and audit views."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from meshops.kernel.bounds import Version

PrincipalKind = Literal["user", "service"]
Severity = Literal["block", "warn"]
Outcome = Literal["pass", "fail", "error"]
RequestStatus = Literal["pending", "approved", "denied", "cancelled"]
GLOBAL_SCOPE = "global"
PLATFORM_SCOPE = "platform"


class Principal(BaseModel):
    name: str
    kind: PrincipalKind = "user"
    display_name: str = ""
    email: str = ""
    owner: str | None = None  # who answers for a service account
    disabled: bool = False
    created_at: datetime
    created_by: str


class RoleBinding(BaseModel):
    principal: str
    role: str
    scope: str = PLATFORM_SCOPE  # "platform" or a domain name
    created_at: datetime | None = None
    created_by: str = ""
    implicit: bool = False  # bootstrap admin and the everyone-is-a-consumer binding


class TokenInfo(BaseModel):
    id: str
    principal: str
    name: str
    prefix: str  # first characters of the secret, to recognise it in listings
    scopes: list[str] | None = None  # action patterns; None = the principal's permissions
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None
    last_used_at: datetime | None = None

    def state(self, now: datetime) -> Literal["active", "expired", "revoked"]:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


class CreatedToken(BaseModel):
    """Returned once, when the token is made: the secret is never shown again."""

    token: str
    info: TokenInfo


class Whoami(BaseModel):
    name: str
    kind: str
    scopes: list[str] | None = None
    bindings: list[RoleBinding] = Field(default_factory=list)


class Policy(BaseModel):
    id: str
    scope: str = GLOBAL_SCOPE  # "global" or a domain name
    target: str
    expression: str
    severity: Severity = "block"
    rationale: str
    owner: str
    description: str = ""
    version: Version = 1
    updated_at: datetime | None = None
    updated_by: str = ""


class PolicyResult(BaseModel):
    policy_id: str
    scope: str
    severity: Severity
    outcome: Outcome
    explanation: str


class PolicyDecision(BaseModel):
    target: str
    subject_urn: str
    domain: str | None
    allowed: bool  # no blocking policy failed
    results: list[PolicyResult]

    @property
    def violations(self) -> list[PolicyResult]:
        return [r for r in self.results if r.outcome != "pass" and r.severity == "block"]

    @property
    def warnings(self) -> list[PolicyResult]:
        return [r for r in self.results if r.outcome != "pass" and r.severity == "warn"]


class PolicyEvaluation(BaseModel):
    id: int
    policy_id: str
    policy_version: int
    target: str
    subject_urn: str
    domain: str | None
    outcome: Outcome
    severity: Severity
    explanation: str
    actor: str
    at: datetime


class DryRunResult(BaseModel):
    subject_urn: str
    domain: str | None
    outcome: Outcome
    explanation: str


class ComplianceViolation(BaseModel):
    policy_id: str
    subject_urn: str
    severity: Severity
    explanation: str
    at: datetime


class ComplianceReport(BaseModel):
    domain: str | None
    score: float  # share of (policy, subject) pairs whose latest evaluation passed
    checked: int
    violations: list[ComplianceViolation]
    trend: list[tuple[str, float]]  # (day, share of evaluations that passed that day)


class MaskRule(BaseModel):
    scope: str = GLOBAL_SCOPE
    classification: str
    method: Literal["hash", "redact", "null"]


class AccessRequest(BaseModel):
    id: str
    product: str
    domain: str
    port: str
    requester: str
    purpose: str
    columns: list[str] = Field(default_factory=list)  # classified columns to see unmasked
    row_filter: str | None = None
    expires_at: datetime | None = None
    status: RequestStatus
    owners: list[str] = Field(default_factory=list)
    decided_by: str | None = None
    decided_at: datetime | None = None
    reason: str = ""
    grant_id: str | None = None
    created_at: datetime


class Grant(BaseModel):
    id: str
    product: str
    domain: str
    port: str
    grantee: str
    columns: list[str] = Field(default_factory=list)  # classified columns shown unmasked
    row_filter: str | None = None
    purpose: str = ""
    expires_at: datetime | None = None
    granted_by: str
    granted_at: datetime
    request_id: str | None = None
    revoked_at: datetime | None = None
    revoked_by: str | None = None


class UsageEvent(BaseModel):
    id: int
    at: datetime
    actor: str
    product: str
    domain: str
    version: str
    port: str
    columns: list[str]
    masked: list[str]
    rows: int
    interface: str
    grant_id: str | None = None
    reads: int = 1  # a batch of identical online lookups is one event


class ProductUsage(BaseModel):
    product: str
    reads: int
    rows: int
    consumers: dict[str, int]  # actor -> reads
    reads_per_day: list[tuple[str, int]]
    last_read: datetime | None = None
    interfaces: dict[str, int] = Field(default_factory=dict)


class IdleProduct(BaseModel):
    product: str
    last_read: datetime | None
    days_idle: int | None  # None: never read


class Impact(BaseModel):
    product: str
    columns: list[str]
    downstream: list[dict[str, Any]]  # lineage edges from the product's versions
    grants: list[Grant]
    consumers: dict[str, int]  # actor -> reads in the window (of the named columns)
    window_days: int


class AuditEntry(BaseModel):
    id: int
    actor: str
    action: str
    object: str
    at: datetime
    before_digest: str | None = None
    after_digest: str | None = None
    detail: dict[str, Any] = Field(default_factory=dict)
    hash: str


class AuditVerification(BaseModel):
    intact: bool
    checked: int
    first_bad_id: int | None = None
    # Events of the unkeyed chain a home wrote before the chain was keyed (ids <= upto).
    legacy: int = 0
    legacy_upto: int | None = None
    reason: str = ""  # why it is not intact
