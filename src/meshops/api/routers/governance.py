"""The governance routes written by hand; the others are derived from the declarations on
the `Governance` Protocol (`meshops.api.rpc`)."""

from __future__ import annotations

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from meshops.api.deps import get_context
from meshops.governance.interface import BASE
from meshops.governance.models import Policy, PolicyDecision
from meshops.governance.policy_service import PolicyService
from meshops.kernel.bounds import JsonObject
from meshops.kernel.home import Context

router = APIRouter(prefix=BASE, tags=["governance"])


def service(ctx: Context = Depends(get_context)) -> PolicyService:
    return PolicyService(ctx)


class EvaluateIn(BaseModel):
    target: str
    document: JsonObject
    domain: str | None = None
    subject_urn: str


@router.put("/policies/{policy_id}")
def save_policy(policy_id: str, body: Policy, svc: PolicyService = Depends(service)) -> Policy:
    """Create or change the policy named by the path."""
    return svc.save_policy(body.model_copy(update={"id": policy_id}))


# A document sent over HTTP is the caller's: its results are recorded (and so count in
# compliance reports and dry runs) only for one who may write the policies of that scope.
@router.post("/evaluate")
def evaluate(body: EvaluateIn, svc: PolicyService = Depends(service)) -> PolicyDecision:
    record = svc.may_record_evaluations(body.domain)
    return svc.evaluate(body.target, body.document, body.domain, body.subject_urn, record=record)


@router.post("/enforce")
def enforce(body: EvaluateIn, svc: PolicyService = Depends(service)) -> PolicyDecision:
    record = svc.may_record_evaluations(body.domain)
    return svc.enforce(body.target, body.document, body.domain, body.subject_urn, record=record)
