"""Governance: identities, tokens, roles, policies, access, usage and audit."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Query, Response
from pydantic import BaseModel

from meshops.api.deps import get_context
from meshops.governance.models import MaskRule, Policy
from meshops.governance.service import GovernanceService
from meshops.kernel.bounds import Days, JsonObject, Limit
from meshops.kernel.home import Context

router = APIRouter(prefix="/v1/governance", tags=["governance"])


def service(ctx: Context = Depends(get_context)) -> GovernanceService:
    return GovernanceService(ctx)


def _dump(value: Any) -> Any:
    if isinstance(value, list):
        return [_dump(v) for v in value]
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    return value


class UserIn(BaseModel):
    name: str
    display_name: str = ""
    email: str = ""


class ServiceAccountIn(BaseModel):
    name: str
    owner: str | None = None
    display_name: str = ""


class DisabledIn(BaseModel):
    disabled: bool


class BindingIn(BaseModel):
    principal: str
    role: str
    domain: str | None = None


class TokenIn(BaseModel):
    name: str
    principal: str | None = None
    scopes: list[str] | None = None
    expires_in_days: Days | None = None


class EvaluateIn(BaseModel):
    target: str
    document: JsonObject
    domain: str | None = None
    subject_urn: str


class AccessRequestIn(BaseModel):
    product: str
    port: str
    purpose: str
    columns: list[str] | None = None
    row_filter: str | None = None
    expires_in_days: Days | None = None


class DecisionIn(BaseModel):
    approve: bool
    reason: str = ""


class GrantIn(BaseModel):
    product: str
    port: str
    grantee: str
    purpose: str = ""
    columns: list[str] | None = None
    row_filter: str | None = None
    expires_in_days: Days | None = None


class ReasonIn(BaseModel):
    reason: str = ""


class IdleIn(BaseModel):
    days: Days = 30
    known: list[str] | None = None


class ImpactIn(BaseModel):
    product: str
    columns: list[str] | None = None
    days: Days = 90
    versions: list[str] | None = None


@router.get("/whoami")
def whoami(svc: GovernanceService = Depends(service)) -> Any:
    return _dump(svc.whoami())


@router.post("/users", status_code=201)
def create_user(body: UserIn, svc: GovernanceService = Depends(service)) -> Any:
    return _dump(svc.create_user(body.name, body.display_name, body.email))


@router.post("/service-accounts", status_code=201)
def create_service_account(
    body: ServiceAccountIn, svc: GovernanceService = Depends(service)
) -> Any:
    return _dump(svc.create_service_account(body.name, body.owner, body.display_name))


@router.get("/users")
def list_users(svc: GovernanceService = Depends(service)) -> Any:
    return _dump(svc.list_users())


@router.post("/users/{name}/disabled")
def set_disabled(name: str, body: DisabledIn, svc: GovernanceService = Depends(service)) -> Any:
    return _dump(svc.set_disabled(name, body.disabled))


@router.get("/roles")
def list_roles(svc: GovernanceService = Depends(service)) -> Any:
    return [
        {"name": r.name, "title": r.title, "description": r.description, "patterns": r.patterns}
        for r in svc.list_roles()
    ]


@router.post("/bindings", status_code=201)
def bind_role(body: BindingIn, svc: GovernanceService = Depends(service)) -> Any:
    return _dump(svc.bind_role(body.principal, body.role, body.domain))


@router.delete("/bindings", status_code=204)
def unbind_role(
    principal: str, role: str, domain: str | None = None, svc: GovernanceService = Depends(service)
) -> Response:
    svc.unbind_role(principal, role, domain)
    return Response(status_code=204)


@router.get("/bindings")
def list_bindings(principal: str | None = None, svc: GovernanceService = Depends(service)) -> Any:
    return _dump(svc.list_bindings(principal))


@router.post("/tokens", status_code=201)
def create_token(body: TokenIn, svc: GovernanceService = Depends(service)) -> Any:
    return _dump(svc.create_token(body.name, body.principal, body.scopes, body.expires_in_days))


@router.get("/tokens")
def list_tokens(principal: str | None = None, svc: GovernanceService = Depends(service)) -> Any:
    return _dump(svc.list_tokens(principal))


@router.post("/tokens/{token_id}/revoke")
def revoke_token(token_id: str, svc: GovernanceService = Depends(service)) -> Any:
    return _dump(svc.revoke_token(token_id))


@router.post("/policies/test")
def test_policy(body: Policy, svc: GovernanceService = Depends(service)) -> Any:
    return _dump(svc.test_policy(body))


@router.put("/policies/{policy_id}")
def save_policy(policy_id: str, body: Policy, svc: GovernanceService = Depends(service)) -> Any:
    return _dump(svc.save_policy(body.model_copy(update={"id": policy_id})))


@router.get("/policies/{policy_id}")
def get_policy(policy_id: str, svc: GovernanceService = Depends(service)) -> Any:
    return _dump(svc.get_policy(policy_id))


@router.get("/policies")
def list_policies(
    target: str | None = None, scope: str | None = None, svc: GovernanceService = Depends(service)
) -> Any:
    return _dump(svc.list_policies(target, scope))


@router.delete("/policies/{policy_id}", status_code=204)
def delete_policy(policy_id: str, svc: GovernanceService = Depends(service)) -> Response:
    svc.delete_policy(policy_id)
    return Response(status_code=204)


@router.post("/evaluate")
def evaluate(body: EvaluateIn, svc: GovernanceService = Depends(service)) -> Any:
    # The document and domain are the caller's: recorded only for a policy writer.
    record = svc.may_record_evaluations(body.domain)
    decision = svc.evaluate(
        body.target, body.document, body.domain, body.subject_urn, record=record
    )
    return _dump(decision)


@router.post("/enforce")
def enforce(body: EvaluateIn, svc: GovernanceService = Depends(service)) -> Any:
    record = svc.may_record_evaluations(body.domain)
    decision = svc.enforce(body.target, body.document, body.domain, body.subject_urn, record=record)
    return _dump(decision)


@router.get("/evaluations")
def evaluations(
    subject_urn: str | None = None,
    policy_id: str | None = None,
    limit: Limit = 100,
    svc: GovernanceService = Depends(service),
) -> Any:
    return _dump(svc.evaluations(subject_urn, policy_id, limit))


@router.get("/compliance")
def compliance(
    domain: str | None = None, days: Days = 30, svc: GovernanceService = Depends(service)
) -> Any:
    return _dump(svc.compliance(domain, days))


@router.put("/mask-rules")
def set_mask_rule(body: MaskRule, svc: GovernanceService = Depends(service)) -> Any:
    return _dump(svc.set_mask_rule(body))


@router.get("/mask-rules")
def list_mask_rules(svc: GovernanceService = Depends(service)) -> Any:
    return _dump(svc.list_mask_rules())


@router.post("/access/requests", status_code=201)
def request_access(body: AccessRequestIn, svc: GovernanceService = Depends(service)) -> Any:
    return _dump(
        svc.request_access(
            body.product,
            body.port,
            body.purpose,
            columns=body.columns,
            row_filter=body.row_filter,
            expires_in_days=body.expires_in_days,
        )
    )


@router.post("/access/requests/{request_id}/decision")
def decide(request_id: str, body: DecisionIn, svc: GovernanceService = Depends(service)) -> Any:
    return _dump(svc.decide(request_id, body.approve, body.reason))


@router.get("/access/requests")
def list_requests(
    status: str | None = None, product: str | None = None, svc: GovernanceService = Depends(service)
) -> Any:
    return _dump(svc.list_requests(status, product))


@router.post("/access/grants", status_code=201)
def grant_access(body: GrantIn, svc: GovernanceService = Depends(service)) -> Any:
    return _dump(
        svc.grant_access(
            body.product,
            body.port,
            body.grantee,
            purpose=body.purpose,
            columns=body.columns,
            row_filter=body.row_filter,
            expires_in_days=body.expires_in_days,
        )
    )


@router.post("/access/grants/{grant_id}/revoke")
def revoke_grant(grant_id: str, body: ReasonIn, svc: GovernanceService = Depends(service)) -> Any:
    return _dump(svc.revoke_grant(grant_id, body.reason))


@router.get("/access/grants")
def list_grants(
    product: str | None = None,
    grantee: str | None = None,
    active_only: bool = True,
    svc: GovernanceService = Depends(service),
) -> Any:
    return _dump(svc.list_grants(product, grantee, active_only))


@router.get("/usage/products/{product}")
def product_usage(product: str, days: Days = 30, svc: GovernanceService = Depends(service)) -> Any:
    return _dump(svc.product_usage(product, days))


@router.get("/usage/events")
def usage_events(
    product: str | None = None, limit: Limit = 100, svc: GovernanceService = Depends(service)
) -> Any:
    return _dump(svc.usage_events(product, limit))


@router.post("/usage/idle")
def idle_products(body: IdleIn, svc: GovernanceService = Depends(service)) -> Any:
    return _dump(svc.idle_products(body.days, body.known))


@router.post("/usage/impact")
def impact(body: ImpactIn, svc: GovernanceService = Depends(service)) -> Any:
    return _dump(svc.impact(body.product, body.columns, body.days, body.versions))


@router.get("/audit/events")
def audit_events(
    object: str | None = Query(None),
    actor: str | None = None,
    limit: Limit = 100,
    svc: GovernanceService = Depends(service),
) -> Any:
    return _dump(svc.audit_events(object, actor, limit))


@router.get("/audit/verify")
def verify_audit(svc: GovernanceService = Depends(service)) -> Any:
    return _dump(svc.verify_audit())
