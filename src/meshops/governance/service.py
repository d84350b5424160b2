"""Governance use cases, one transaction each, in one service per part of the area:
identities and tokens (`identity_service`), policies and their evaluation at other areas'
gates (`policy_service`), access requests and grants (`access_service`), usage
(`usage_service`) and audit (`audit_service`). Each is usable alone with a context;
`GovernanceService` is all of them, the `Governance` Protocol's in-process side."""

from __future__ import annotations

from meshops.governance.access_service import AccessService
from meshops.governance.audit_service import AuditService
from meshops.governance.identity_service import IdentityService
from meshops.governance.policy_service import PolicyService
from meshops.governance.usage_service import UsageService


class GovernanceService(IdentityService, PolicyService, AccessService, UsageService, AuditService):
    """Every governance operation, as one object (the SDK's `platform.governance`)."""


__all__ = ["GovernanceService"]
