"""Access to product ports: requests, owners' decisions and direct grants, each asked of
the `access.grant` (and `access.auto_approve`) policies."""

from __future__ import annotations

from typing import Any

from meshops.governance import access, identities
from meshops.governance.models import PLATFORM_SCOPE, AccessRequest, Grant
from meshops.governance.policy_service import PolicyService, applicable
from meshops.governance.service_base import ServiceBase, days_of, domain_of
from meshops.kernel import ports
from meshops.kernel.db import utcnow
from meshops.kernel.errors import InvalidInput


class AccessService(ServiceBase):
    """Access requests, decisions and grants."""

    @property
    def _policies(self) -> PolicyService:
        """The policies a request or grant is asked of, as the same caller."""
        return PolicyService(self.ctx)

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
        """Ask for access to a product port with a purpose. `access.grant` policies refuse
        requests that could never be granted; `access.auto_approve` policies may grant it
        at once; otherwise it waits for an owner's decision."""
        domain = domain_of(product)
        self.ctx.authorize("access.request", domain)
        if not purpose.strip():
            raise InvalidInput(
                "an access request needs a purpose",
                {"field": "purpose", "fix": 'add --purpose "<what you will use it for>"'},
            )
        facts = self._port_facts(product, port)
        expires = days_of(expires_in_days, "expires_in_days")
        now = utcnow()
        request = AccessRequest(
            id=access.new_id(),
            product=product,
            domain=domain,
            port=port,
            requester=self.ctx.actor.name,
            purpose=purpose.strip(),
            columns=sorted(set(columns or [])),
            row_filter=access.check_row_filter(row_filter),
            expires_at=now + expires if expires else None,
            status="pending",
            owners=facts["owners"],
            created_at=now,
        )
        self._check_columns(request.columns, facts["classification"])
        document = self._grant_document(request, facts["classification"], expires_in_days)
        subject = f"meshops:port:{product}:{port}:{request.requester}"
        self._policies.enforce("access.grant", document, domain, subject)
        auto = self._auto_approver(document, domain, subject)
        with self.ctx.db.begin() as conn:
            if auto is not None:
                grant = self._new_grant(request, f"policy:{auto}", now)
                access.insert_grant(conn, grant)
                request = request.model_copy(
                    update={
                        "status": "approved",
                        "decided_by": f"policy:{auto}",
                        "decided_at": now,
                        "reason": f"auto-approved by policy {auto}",
                        "grant_id": grant.id,
                    }
                )
            access.insert_request(conn, request, facts["classification"])
            self.ctx.audit(conn, "access.request", subject, after=request)
        return request

    def _port_facts(self, product: str, port: str) -> dict[str, Any]:
        """Owners and column classification of the port, from the mesh area's latest
        version of the product, which must exist (NotFound otherwise). Authority over a
        port comes from the server's state only: nothing the caller sends (owners, domain,
        classification) is trusted, so nobody can grant itself a product published later."""
        # Read as the system: the caller may lack read_metadata, and the facts are not its.
        system = self.ctx.home.system_context()
        facts = ports.PRODUCT_FACTS.get().port_facts(system, product, port=port)
        return {"owners": sorted(set(facts.owners)), "classification": facts.classification()}

    def _current_owners(self, product: str) -> list[str]:
        """The product's owners now (server state); none when it is not published."""
        system = self.ctx.home.system_context()
        return ports.PRODUCT_FACTS.get().owners(system, product) or []

    @staticmethod
    def _check_columns(columns: list[str], classification: dict[str, str]) -> None:
        if not classification:
            return
        unknown = [c for c in columns if c not in classification]
        if unknown:
            raise InvalidInput(
                f"the port has no columns {unknown}",
                {"field": "columns", "fix": f"pick from {sorted(classification)}"},
            )

    def _grant_document(
        self, request: AccessRequest, classification: dict[str, str], expires_in_days: int | None
    ) -> dict[str, Any]:
        bindings = identities.cached_bindings(self.ctx.home, request.requester)
        return {
            "request": {
                "id": request.id,
                "product": request.product,
                "port": request.port,
                "requester": request.requester,
                "purpose": request.purpose,
                "columns": request.columns,
                "row_filter": request.row_filter or "",
                "expires_in_days": expires_in_days or 0,
            },
            "port": {
                "product": request.product,
                "domain": request.domain,
                "name": request.port,
                "owners": request.owners,
                "classification": classification,
            },
            "consumer": {
                "name": request.requester,
                "kind": self._kind_of(request.requester),
                "roles": sorted({f"{b.role}@{b.scope}" for b in bindings}),
                "domains": sorted({b.scope for b in bindings if b.scope != PLATFORM_SCOPE}),
            },
        }

    def _kind_of(self, name: str) -> str:
        """A principal's kind as the server knows it (policies may treat services apart)."""
        if name == self.ctx.actor.name:
            return self.ctx.actor.kind
        known = identities.cached_principal(self.ctx.home, name)
        return known.kind if known is not None else "user"

    def _auto_approver(self, document: dict[str, Any], domain: str, subject: str) -> str | None:
        """The id of the auto-approve policy that grants the request, if all applicable
        `access.auto_approve` policies pass (and there is at least one)."""
        with self.ctx.db.read() as conn:
            found = applicable(conn, "access.auto_approve", domain)
        if not found:
            return None
        decision = self._policies.evaluate("access.auto_approve", document, domain, subject)
        if all(r.outcome == "pass" for r in decision.results):
            return found[0].id
        return None

    @staticmethod
    def _new_grant(request: AccessRequest, by: str, now: Any) -> Grant:
        return Grant(
            id=access.new_id(),
            product=request.product,
            domain=request.domain,
            port=request.port,
            grantee=request.requester,
            columns=request.columns,
            row_filter=request.row_filter,
            purpose=request.purpose,
            expires_at=request.expires_at,
            granted_by=by,
            granted_at=now,
            request_id=request.id,
        )

    def _authorize_decision(self, domain: str, owners: list[str]) -> None:
        if self.ctx.actor.name in owners:
            return
        self.ctx.authorize("access.decide", domain)

    def decide(self, request_id: str, approve: bool, reason: str = "") -> AccessRequest:
        """An owner (or a principal allowed access.decide in the domain) approves or
        denies a pending request; approving re-checks the access.grant policies."""
        with self.ctx.db.read() as conn:
            request, classification = access.get_request(conn, request_id)
        # Who may decide is asked of the server's state now (owners change), never of
        # what the request recorded.
        self._authorize_decision(request.domain, self._current_owners(request.product))
        if request.status != "pending":
            raise InvalidInput(
                f"access request {request_id} is already {request.status}",
                {"field": "request_id", "fix": "ask the requester to file a new request"},
            )
        now = utcnow()
        grant = None
        if approve:
            days = None
            if request.expires_at is not None:
                days = max(1, (request.expires_at - request.created_at).days)
            document = self._grant_document(request, classification, days)
            subject = f"meshops:port:{request.product}:{request.port}:{request.requester}"
            self._policies.enforce("access.grant", document, request.domain, subject)
            grant = self._new_grant(request, self.ctx.actor.name, now)
        decided = request.model_copy(
            update={
                "status": "approved" if approve else "denied",
                "decided_by": self.ctx.actor.name,
                "decided_at": now,
                "reason": reason,
                "grant_id": grant.id if grant else None,
            }
        )
        with self.ctx.db.begin() as conn:
            current, _ = access.get_request(conn, request_id)
            if current.status != "pending":  # decided concurrently
                raise InvalidInput(f"access request {request_id} is already {current.status}")
            if grant is not None:
                access.insert_grant(conn, grant)
            access.set_request_decision(
                conn,
                request_id,
                status=decided.status,
                decided_by=decided.decided_by,
                decided_at=now,
                reason=reason,
                grant_id=decided.grant_id,
            )
            action = "access.approve" if approve else "access.deny"
            self.ctx.audit(
                conn,
                action,
                f"meshops:port:{request.product}:{request.port}",
                before=request,
                after=decided,
            )
        return decided

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
        """Grant access directly (an owner or access.decide in the product's domain); the
        `access.grant` policies are asked as for an approved request. The product must be
        published: its owners and classification are the server's (NotFound otherwise)."""
        domain = domain_of(product)
        facts = self._port_facts(product, port)
        self._authorize_decision(domain, facts["owners"])
        expires = days_of(expires_in_days, "expires_in_days")
        now = utcnow()
        grant = Grant(
            id=access.new_id(),
            product=product,
            domain=domain,
            port=port,
            grantee=identities.check_name(grantee, "grantee"),
            columns=sorted(set(columns or [])),
            row_filter=access.check_row_filter(row_filter),
            purpose=purpose,
            expires_at=now + expires if expires else None,
            granted_by=self.ctx.actor.name,
            granted_at=now,
        )
        self._check_columns(grant.columns, facts["classification"])
        as_request = AccessRequest(
            id=grant.id,
            product=product,
            domain=domain,
            port=port,
            requester=grant.grantee,
            purpose=purpose,
            columns=grant.columns,
            row_filter=grant.row_filter,
            expires_at=grant.expires_at,
            status="approved",
            owners=facts["owners"],
            created_at=now,
        )
        document = self._grant_document(as_request, facts["classification"], expires_in_days)
        self._policies.enforce(
            "access.grant", document, domain, f"meshops:port:{product}:{port}:{grantee}"
        )
        with self.ctx.db.begin() as conn:
            access.insert_grant(conn, grant)
            self.ctx.audit(conn, "access.grant", f"meshops:port:{product}:{port}", after=grant)
        return grant

    def revoke_grant(self, grant_id: str, reason: str = "") -> Grant:
        with self.ctx.db.read() as conn:
            grant = access.get_grant(conn, grant_id)
        self._authorize_decision(grant.domain, self._current_owners(grant.product))
        now = utcnow()
        with self.ctx.db.begin() as conn:
            if grant.revoked_at is None:
                access.revoke_grant(conn, grant_id, self.ctx.actor.name, now)
            after = access.get_grant(conn, grant_id)
            self.ctx.audit(
                conn,
                "access.revoke",
                f"meshops:port:{grant.product}:{grant.port}",
                before=grant,
                after=after,
                detail={"reason": reason},
            )
        self._changed_access()
        return after

    def list_requests(
        self, status: str | None = None, product: str | None = None
    ) -> list[AccessRequest]:
        """Requests the caller may see: its own, those it owns, and all with
        access.decide at platform scope."""
        self.ctx.authorize("access.request")
        with self.ctx.db.read() as conn:
            found = access.list_requests(conn, status=status, product=product)
        if self._can("access.decide"):
            return found
        me = self.ctx.actor.name
        return [
            r
            for r in found
            if r.requester == me or me in r.owners or self._can("access.decide", r.domain)
        ]

    def list_grants(
        self, product: str | None = None, grantee: str | None = None, active_only: bool = True
    ) -> list[Grant]:
        self.ctx.authorize("access.request")
        with self.ctx.db.read() as conn:
            found = access.list_grants(
                conn, product, grantee, active_at=utcnow() if active_only else None
            )
        if self._can("access.decide") or self._can("usage.read"):
            return found
        me = self.ctx.actor.name
        return [g for g in found if g.grantee == me or self._can("access.decide", g.domain)]
