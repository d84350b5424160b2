"""The governance API, declared once for both transports (`meshops.kernel.rpc`): one
Protocol per part of the area, each implemented in-process by its service
(`IdentityService`, `PolicyService`, ...), and `Governance` extending them all
(`GovernanceService`). The routes and the HTTP client are derived from the declarations,
except for the three operations the HTTP side writes by hand (`governance.remote`,
`api.routers.governance`): `save_policy` takes its id from the path, and `evaluate` and
`enforce` record a document sent over HTTP only for those who may write the policies."""

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
from meshops.kernel import rpc
from meshops.kernel.bounds import Days, Limit

BASE = "/v1/governance"


class Identities(Protocol):
    @rpc.get(f"{BASE}/whoami")
    def whoami(self) -> Whoami: ...

    @rpc.post(f"{BASE}/users", status=201)
    def create_user(self, name: str, display_name: str = "", email: str = "") -> Principal: ...

    @rpc.post(f"{BASE}/service-accounts", status=201)
    def create_service_account(
        self, name: str, owner: str | None = None, display_name: str = ""
    ) -> Principal: ...

    @rpc.get(f"{BASE}/users")
    def list_users(self) -> list[Principal]: ...

    @rpc.post(f"{BASE}/users/{{name}}/disabled")
    def set_disabled(self, name: str, disabled: bool) -> Principal: ...

    @rpc.get(f"{BASE}/roles")
    def list_roles(self) -> list[Role]: ...

    @rpc.post(f"{BASE}/bindings", status=201)
    def bind_role(self, principal: str, role: str, domain: str | None = None) -> RoleBinding: ...

    @rpc.delete(f"{BASE}/bindings", status=204)
    def unbind_role(self, principal: str, role: str, domain: str | None = None) -> None: ...

    @rpc.get(f"{BASE}/bindings")
    def list_bindings(self, principal: str | None = None) -> list[RoleBinding]: ...

    @rpc.post(f"{BASE}/tokens", status=201)
    def create_token(
        self,
        name: str,
        principal: str | None = None,
        scopes: list[str] | None = None,
        expires_in_days: Days | None = None,
    ) -> CreatedToken: ...

    @rpc.get(f"{BASE}/tokens")
    def list_tokens(self, principal: str | None = None) -> list[TokenInfo]: ...

    @rpc.post(f"{BASE}/tokens/{{token_id}}/revoke")
    def revoke_token(self, token_id: str) -> TokenInfo: ...


class Policies(Protocol):
    def save_policy(self, policy: Policy) -> Policy: ...

    @rpc.get(f"{BASE}/policies/{{policy_id}}")
    def get_policy(self, policy_id: str) -> Policy: ...

    @rpc.get(f"{BASE}/policies")
    def list_policies(
        self, target: str | None = None, scope: str | None = None
    ) -> list[Policy]: ...

    @rpc.delete(f"{BASE}/policies/{{policy_id}}", status=204)
    def delete_policy(self, policy_id: str) -> None: ...

    def evaluate(
        self, target: str, document: dict[str, Any], domain: str | None, subject_urn: str
    ) -> PolicyDecision: ...

    def enforce(
        self, target: str, document: dict[str, Any], domain: str | None, subject_urn: str
    ) -> PolicyDecision: ...

    @rpc.post(f"{BASE}/policies/test")
    def test_policy(self, policy: Policy) -> list[DryRunResult]: ...

    @rpc.get(f"{BASE}/evaluations")
    def evaluations(
        self, subject_urn: str | None = None, policy_id: str | None = None, limit: Limit = 100
    ) -> list[PolicyEvaluation]: ...

    @rpc.get(f"{BASE}/compliance")
    def compliance(self, domain: str | None = None, days: Days = 30) -> ComplianceReport: ...

    @rpc.put(f"{BASE}/mask-rules")
    def set_mask_rule(self, rule: MaskRule) -> MaskRule: ...

    @rpc.get(f"{BASE}/mask-rules")
    def list_mask_rules(self) -> list[MaskRule]: ...


class Access(Protocol):
    @rpc.post(f"{BASE}/access/requests", status=201)
    def request_access(
        self,
        product: str,
        port: str,
        purpose: str,
        *,
        columns: list[str] | None = None,
        row_filter: str | None = None,
        expires_in_days: Days | None = None,
    ) -> AccessRequest: ...

    @rpc.post(f"{BASE}/access/requests/{{request_id}}/decision")
    def decide(self, request_id: str, approve: bool, reason: str = "") -> AccessRequest: ...

    @rpc.post(f"{BASE}/access/grants", status=201)
    def grant_access(
        self,
        product: str,
        port: str,
        grantee: str,
        *,
        purpose: str = "",
        columns: list[str] | None = None,
        row_filter: str | None = None,
        expires_in_days: Days | None = None,
    ) -> Grant: ...

    @rpc.post(f"{BASE}/access/grants/{{grant_id}}/revoke")
    def revoke_grant(self, grant_id: str, reason: str = "") -> Grant: ...

    @rpc.get(f"{BASE}/access/requests")
    def list_requests(
        self, status: str | None = None, product: str | None = None
    ) -> list[AccessRequest]: ...

    @rpc.get(f"{BASE}/access/grants")
    def list_grants(
        self, product: str | None = None, grantee: str | None = None, active_only: bool = True
    ) -> list[Grant]: ...


class Usage(Protocol):
    @rpc.get(f"{BASE}/usage/products/{{product}}")
    def product_usage(self, product: str, days: Days = 30) -> ProductUsage: ...

    @rpc.get(f"{BASE}/usage/events")
    def usage_events(self, product: str | None = None, limit: Limit = 100) -> list[UsageEvent]: ...

    @rpc.post(f"{BASE}/usage/idle")
    def idle_products(self, days: Days = 30, known: list[str] | None = None) -> list[IdleProduct]:
        """Products nobody read for `days` days: candidates for deprecation."""
        ...

    @rpc.post(f"{BASE}/usage/impact")
    def impact(
        self,
        product: str,
        columns: list[str] | None = None,
        days: Days = 90,
        versions: list[str] | None = None,
    ) -> Impact:
        """What a change to `product` (or to some of its columns) would touch: downstream
        lineage of its versions, active grants, and who read it (those columns) lately."""
        ...


class Audit(Protocol):
    @rpc.get(f"{BASE}/audit/events")
    def audit_events(
        self, obj: str | None = None, actor: str | None = None, limit: Limit = 100
    ) -> list[AuditEntry]: ...

    @rpc.get(f"{BASE}/audit/verify")
    def verify_audit(self) -> AuditVerification:
        """Walk the audit log's keyed chain and check its sealed head."""
        ...


class Governance(Identities, Policies, Access, Usage, Audit, Protocol):
    """Every governance operation (the SDK's `platform.governance`)."""
