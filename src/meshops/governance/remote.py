"""The governance API over HTTP (`/v1/governance/...`), same Protocol as the service."""

from __future__ import annotations

from typing import Any, TypeVar

from pydantic import BaseModel

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
from meshops.kernel.http import HttpTransport

M = TypeVar("M", bound=BaseModel)
BASE = "/v1/governance"


def _many(model: type[M], body: Any) -> list[M]:
    return [model.model_validate(item) for item in body]


class RemoteGovernance:
    def __init__(self, http: HttpTransport) -> None:
        self.http = http

    # identities and roles
    def whoami(self) -> Whoami:
        return Whoami.model_validate(self.http.get(f"{BASE}/whoami"))

    def create_user(self, name: str, display_name: str = "", email: str = "") -> Principal:
        body = {"name": name, "display_name": display_name, "email": email}
        return Principal.model_validate(self.http.post(f"{BASE}/users", body))

    def create_service_account(
        self, name: str, owner: str | None = None, display_name: str = ""
    ) -> Principal:
        body = {"name": name, "owner": owner, "display_name": display_name}
        return Principal.model_validate(self.http.post(f"{BASE}/service-accounts", body))

    def list_users(self) -> list[Principal]:
        return _many(Principal, self.http.get(f"{BASE}/users"))

    def set_disabled(self, name: str, disabled: bool) -> Principal:
        body = {"disabled": disabled}
        return Principal.model_validate(self.http.post(f"{BASE}/users/{name}/disabled", body))

    def list_roles(self) -> list[Role]:
        return [
            Role(r["name"], r["title"], r["description"], tuple(r["patterns"]))
            for r in self.http.get(f"{BASE}/roles")
        ]

    def bind_role(self, principal: str, role: str, domain: str | None = None) -> RoleBinding:
        body = {"principal": principal, "role": role, "domain": domain}
        return RoleBinding.model_validate(self.http.post(f"{BASE}/bindings", body))

    def unbind_role(self, principal: str, role: str, domain: str | None = None) -> None:
        self.http.delete(f"{BASE}/bindings", principal=principal, role=role, domain=domain)

    def list_bindings(self, principal: str | None = None) -> list[RoleBinding]:
        return _many(RoleBinding, self.http.get(f"{BASE}/bindings", principal=principal))

    # tokens
    def create_token(
        self,
        name: str,
        principal: str | None = None,
        scopes: list[str] | None = None,
        expires_in_days: int | None = None,
    ) -> CreatedToken:
        body = {
            "name": name,
            "principal": principal,
            "scopes": scopes,
            "expires_in_days": expires_in_days,
        }
        return CreatedToken.model_validate(self.http.post(f"{BASE}/tokens", body))

    def list_tokens(self, principal: str | None = None) -> list[TokenInfo]:
        return _many(TokenInfo, self.http.get(f"{BASE}/tokens", principal=principal))

    def revoke_token(self, token_id: str) -> TokenInfo:
        return TokenInfo.model_validate(self.http.post(f"{BASE}/tokens/{token_id}/revoke"))

    # policies
    def save_policy(self, policy: Policy) -> Policy:
        body = policy.model_dump(mode="json")
        return Policy.model_validate(self.http.put(f"{BASE}/policies/{policy.id}", body))

    def get_policy(self, policy_id: str) -> Policy:
        return Policy.model_validate(self.http.get(f"{BASE}/policies/{policy_id}"))

    def list_policies(self, target: str | None = None, scope: str | None = None) -> list[Policy]:
        return _many(Policy, self.http.get(f"{BASE}/policies", target=target, scope=scope))

    def delete_policy(self, policy_id: str) -> None:
        self.http.delete(f"{BASE}/policies/{policy_id}")

    def evaluate(
        self, target: str, document: dict[str, Any], domain: str | None, subject_urn: str
    ) -> PolicyDecision:
        body = {
            "target": target,
            "document": document,
            "domain": domain,
            "subject_urn": subject_urn,
        }
        return PolicyDecision.model_validate(self.http.post(f"{BASE}/evaluate", body))

    def enforce(
        self, target: str, document: dict[str, Any], domain: str | None, subject_urn: str
    ) -> PolicyDecision:
        body = {
            "target": target,
            "document": document,
            "domain": domain,
            "subject_urn": subject_urn,
        }
        return PolicyDecision.model_validate(self.http.post(f"{BASE}/enforce", body))

    def test_policy(self, policy: Policy) -> list[DryRunResult]:
        body = policy.model_dump(mode="json")
        return _many(DryRunResult, self.http.post(f"{BASE}/policies/test", body))

    def evaluations(
        self, subject_urn: str | None = None, policy_id: str | None = None, limit: int = 100
    ) -> list[PolicyEvaluation]:
        body = self.http.get(
            f"{BASE}/evaluations", subject_urn=subject_urn, policy_id=policy_id, limit=limit
        )
        return _many(PolicyEvaluation, body)

    def compliance(self, domain: str | None = None, days: int = 30) -> ComplianceReport:
        body = self.http.get(f"{BASE}/compliance", domain=domain, days=days)
        return ComplianceReport.model_validate(body)

    def set_mask_rule(self, rule: MaskRule) -> MaskRule:
        return MaskRule.model_validate(self.http.put(f"{BASE}/mask-rules", rule.model_dump()))

    def list_mask_rules(self) -> list[MaskRule]:
        return _many(MaskRule, self.http.get(f"{BASE}/mask-rules"))

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
    ) -> AccessRequest:
        body = {
            "product": product,
            "port": port,
            "purpose": purpose,
            "columns": columns,
            "row_filter": row_filter,
            "expires_in_days": expires_in_days,
        }
        return AccessRequest.model_validate(self.http.post(f"{BASE}/access/requests", body))

    def decide(self, request_id: str, approve: bool, reason: str = "") -> AccessRequest:
        body = {"approve": approve, "reason": reason}
        path = f"{BASE}/access/requests/{request_id}/decision"
        return AccessRequest.model_validate(self.http.post(path, body))

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
    ) -> Grant:
        body = {
            "product": product,
            "port": port,
            "grantee": grantee,
            "purpose": purpose,
            "columns": columns,
            "row_filter": row_filter,
            "expires_in_days": expires_in_days,
        }
        return Grant.model_validate(self.http.post(f"{BASE}/access/grants", body))

    def revoke_grant(self, grant_id: str, reason: str = "") -> Grant:
        path = f"{BASE}/access/grants/{grant_id}/revoke"
        return Grant.model_validate(self.http.post(path, {"reason": reason}))

    def list_requests(
        self, status: str | None = None, product: str | None = None
    ) -> list[AccessRequest]:
        body = self.http.get(f"{BASE}/access/requests", status=status, product=product)
        return _many(AccessRequest, body)

    def list_grants(
        self, product: str | None = None, grantee: str | None = None, active_only: bool = True
    ) -> list[Grant]:
        body = self.http.get(
            f"{BASE}/access/grants", product=product, grantee=grantee, active_only=active_only
        )
        return _many(Grant, body)

    # usage
    def product_usage(self, product: str, days: int = 30) -> ProductUsage:
        body = self.http.get(f"{BASE}/usage/products/{product}", days=days)
        return ProductUsage.model_validate(body)

    def usage_events(self, product: str | None = None, limit: int = 100) -> list[UsageEvent]:
        return _many(
            UsageEvent, self.http.get(f"{BASE}/usage/events", product=product, limit=limit)
        )

    def idle_products(self, days: int = 30, known: list[str] | None = None) -> list[IdleProduct]:
        body = self.http.post(f"{BASE}/usage/idle", {"days": days, "known": known})
        return _many(IdleProduct, body)

    def impact(
        self,
        product: str,
        columns: list[str] | None = None,
        days: int = 90,
        versions: list[str] | None = None,
    ) -> Impact:
        body = {"product": product, "columns": columns, "days": days, "versions": versions}
        return Impact.model_validate(self.http.post(f"{BASE}/usage/impact", body))

    # audit
    def audit_events(
        self, obj: str | None = None, actor: str | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        body = self.http.get(f"{BASE}/audit/events", object=obj, actor=actor, limit=limit)
        return _many(AuditEntry, body)

    def verify_audit(self) -> AuditVerification:
        return AuditVerification.model_validate(self.http.get(f"{BASE}/audit/verify"))
