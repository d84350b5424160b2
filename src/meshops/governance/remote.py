"""The governance operations the HTTP client writes by hand; the others are derived from
the declarations on the Protocol (`meshops.kernel.rpc.remote`)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from meshops.governance.interface import BASE, Governance
from meshops.governance.models import Policy, PolicyDecision
from meshops.kernel.rpc import RemoteArea, remote

if TYPE_CHECKING:
    from meshops.kernel.http import HttpTransport


def remote_governance(http: HttpTransport) -> Governance:
    """The governance API over `http` (the SDK's `platform.governance` over HTTP)."""
    return remote(Governance, http, RemoteGovernanceBase)


class RemoteGovernanceBase(RemoteArea):
    def save_policy(self, policy: Policy) -> Policy:
        # The id is the path's, so the body and the URL cannot name two policies.
        path = f"{BASE}/policies/{quote(policy.id, safe='')}"
        return Policy.model_validate(self.http.put(path, policy.model_dump(mode="json")))

    def evaluate(
        self, target: str, document: dict[str, Any], domain: str | None, subject_urn: str
    ) -> PolicyDecision:
        return self._decision("evaluate", target, document, domain, subject_urn)

    def enforce(
        self, target: str, document: dict[str, Any], domain: str | None, subject_urn: str
    ) -> PolicyDecision:
        return self._decision("enforce", target, document, domain, subject_urn)

    def _decision(
        self,
        verb: str,
        target: str,
        document: dict[str, Any],
        domain: str | None,
        subject_urn: str,
    ) -> PolicyDecision:
        body = {
            "target": target,
            "document": document,
            "domain": domain,
            "subject_urn": subject_urn,
        }
        return PolicyDecision.model_validate(self.http.post(f"{BASE}/{verb}", body))
