"""The governance API, identical over both transports (`GovernanceService` in-process and
`RemoteGovernance` over HTTP both satisfy this Protocol; mypy checks it in `client.py`)."""

from __future__ import annotations

from typing import Any, Protocol

from meshops.governance.models import (
    AccessRequest,
    AuditEntry,
    AuditVerification,
    ComplianceReport,
    CreatedToken,
    DryRunResult,
    Grant,
    IdleProduct,
    Impact,
    MaskRule,
    Policy,
    PolicyDecision,
    PolicyEvaluation,
    Principal,
    ProductUsage,
    RoleBinding,
    TokenInfo,
    UsageEvent,
    Whoami,
)
from meshops.governance.roles import Role


class Governance(Protocol):
    # identities and roles
    def whoami(self) -> Whoami: ...
    def create_user(self, name: str, display_name: str = "", email: str = "") -> Principal: ...
    def create_service_account(
        self, name: str, owner: str | None = None, display_name: str = ""
    ) -> Principal: ...
    def list_users(self) -> list[Principal]: ...
    def set_disabled(self, name: str, disabled: bool) -> Principal: ...
    def list_roles(self) -> list[Role]: ...
    def bind_role(self, principal: str, role: str, domain: str | None = None) -> RoleBinding: ...
    def unbind_role(self, principal: str, role: str, domain: str | None = None) -> None: ...
    def list_bindings(self, principal: str | None = None) -> list[RoleBinding]: ...

    # tokens
    def create_token(
        self,
        name: str,
        principal: str | None = None,
        scopes: list[str] | None = None,
        expires_in_days: int | None = None,
    ) -> CreatedToken: ...
    def list_tokens(self, principal: str | None = None) -> list[TokenInfo]: ...
    def revoke_token(self, token_id: str) -> TokenInfo: ...

    # policies
    def save_policy(self, policy: Policy) -> Policy: ...
    def get_policy(self, policy_id: str) -> Policy: ...
    def list_policies(
        self, target: str | None = None, scope: str | None = None
    ) -> list[Policy]: ...
    def delete_policy(self, policy_id: str) -> None: ...
    def evaluate(
        self, target: str, document: dict[str, Any], domain: str | None, subject_urn: str
    ) -> PolicyDecision: ...
    def enforce(
        self, target: str, document: dict[str, Any], domain: str | None, subject_urn: str
    ) -> PolicyDecision: ...
    def test_policy(self, policy: Policy) -> list[DryRunResult]: ...
    def evaluations(
        self, subject_urn: str | None = None, policy_id: str | None = None, limit: int = 100
    ) -> list[PolicyEvaluation]: ...
    def compliance(self, domain: str | None = None, days: int = 30) -> ComplianceReport: ...
    def set_mask_rule(self, rule: MaskRule) -> MaskRule: ...
    def list_mask_rules(self) -> list[MaskRule]: ...

    # access
    def request_access(
        self,
        product: str,
        port: str,
        purpose: str,
        *,
        columns: list[str] | None = None,
        row_filter: str | None = None,
        expires_in_days: int | None = None,
    ) -> AccessRequest: ...
    def decide(self, request_id: str, approve: bool, reason: str = "") -> AccessRequest: ...
    def grant_access(
        self,
        product: str,
        port: str,
        grantee: str,
        *,
        purpose: str = "",
        columns: list[str] | None = None,
        row_filter: str | None = None,
        expires_in_days: int | None = None,
    ) -> Grant: ...
    def revoke_grant(self, grant_id: str, reason: str = "") -> Grant: ...
    def list_requests(
        self, status: str | None = None, product: str | None = None
    ) -> list[AccessRequest]: ...
    def list_grants(
        self, product: str | None = None, grantee: str | None = None, active_only: bool = True
    ) -> list[Grant]: ...

    # usage
    def product_usage(self, product: str, days: int = 30) -> ProductUsage: ...
    def usage_events(self, product: str | None = None, limit: int = 100) -> list[UsageEvent]: ...
    def idle_products(
        self, days: int = 30, known: list[str] | None = None
    ) -> list[IdleProduct]: ...
    def impact(
        self,
        product: str,
        columns: list[str] | None = None,
        days: int = 90,
        versions: list[str] | None = None,
    ) -> Impact: ...

    # audit
    def audit_events(
        self, obj: str | None = None, actor: str | None = None, limit: int = 100
    ) -> list[AuditEntry]: ...
    def verify_audit(self) -> AuditVerification: ...
