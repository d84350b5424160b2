"""Governance use cases, one transaction each: identities and tokens, roles, policies and
their evaluation at other areas' gates, access requests and grants, usage and audit."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, delete, select

from meshops.governance import access, compliance, identities, policies, tokens, usage
from meshops.governance.documents import MASKED_LEVELS, normalise
from meshops.governance.models import (
    GLOBAL_SCOPE,
    PLATFORM_SCOPE,
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
    PolicyResult,
    Principal,
    ProductUsage,
    RoleBinding,
    TokenInfo,
    UsageEvent,
    Whoami,
)
from meshops.governance.roles import ROLES, Role
from meshops.governance.store import mask_rules, policy_documents, policy_evaluations
from meshops.governance.store import policies as policy_table
from meshops.kernel import audit, changes
from meshops.kernel.db import utcnow
from meshops.kernel.errors import Forbidden, InvalidInput, NotFound, PolicyViolation
from meshops.kernel.home import Context
from meshops.kernel.lineage import walk
from meshops.kernel.secrets import derived_key
from meshops.kernel.urn import dataproduct_urn

MAX_LIMIT = 10_000


def _days(days: int | None, field: str) -> timedelta | None:
    if days is None:
        return None
    if days <= 0:
        raise InvalidInput(f"{field} must be a positive number of days", {"field": field})
    return timedelta(days=days)


def _domain_of(product: str) -> str:
    domain, dot, name = product.partition(".")
    if not dot or not domain or not name:
        raise InvalidInput(
            f"not a data product id: {product!r}",
            {"field": "product", "fix": "name products as <domain>.<name>, e.g. sales.orders"},
        )
    return domain


class GovernanceService:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    # ------------------------------------------------------------------ helpers
    def _can(self, action: str, domain: str | None = None) -> bool:
        try:
            self.ctx.authorize(action, domain)
        except Forbidden:
            return False
        return True

    def _changed_identities(self) -> None:
        home = self.ctx.home
        identities.invalidate(home)
        self._changed_access()
        # Inside a unit of work the change is not visible to others yet: forget again once
        # it is, so no other thread keeps what it cached in between.
        self.ctx.db.after_commit(lambda: identities.invalidate(home))

    def _changed_access(self) -> None:
        """Read decisions cached on the change epoch (online lookups) end once this commits,
        even on databases whose epoch only advances by polling (kernel/changes.py)."""
        watch = changes.watch(self.ctx.db)
        self.ctx.db.after_commit(watch.advance)

    def refresh_caches(self) -> None:
        """Forget this process's cached identities and bindings (e.g. after a rolled-back
        unit of work whose uncommitted writes they may have read)."""
        identities.invalidate(self.ctx.home)

    # ------------------------------------------------------------------ identities
    def whoami(self) -> Whoami:
        """Who the caller is (any authenticated caller may ask about itself)."""
        actor = self.ctx.actor
        return Whoami(
            name=actor.name,
            kind=actor.kind,
            scopes=sorted(actor.scopes) if actor.scopes is not None else None,
            bindings=identities.cached_bindings(self.ctx.home, actor.name),
        )

    def create_user(self, name: str, display_name: str = "", email: str = "") -> Principal:
        return self._create_principal(name, "user", display_name, email, None)

    def create_service_account(
        self, name: str, owner: str | None = None, display_name: str = ""
    ) -> Principal:
        return self._create_principal(
            name, "service", display_name, "", owner or self.ctx.actor.name
        )

    def _create_principal(
        self, name: str, kind: str, display_name: str, email: str, owner: str | None
    ) -> Principal:
        self.ctx.authorize("identity.write")
        identities.check_name(name)
        principal = Principal.model_validate(
            {
                "name": name,
                "kind": kind,
                "display_name": display_name or name,
                "email": email,
                "owner": owner,
                "created_at": utcnow(),
                "created_by": self.ctx.actor.name,
            }
        )
        with self.ctx.db.begin() as conn:
            identities.insert_principal(conn, principal)
            self.ctx.audit(conn, f"{kind}.create", f"meshops:user:{name}", after=principal)
        self._changed_identities()
        return principal

    def list_users(self) -> list[Principal]:
        self.ctx.authorize("identity.read")
        with self.ctx.db.read() as conn:
            return identities.list_principals(conn)

    def set_disabled(self, name: str, disabled: bool) -> Principal:
        """Disable (or re-enable) a principal: its tokens stop working at once."""
        self.ctx.authorize("identity.write")
        with self.ctx.db.begin() as conn:
            before = identities.require_principal(conn, name)
            from meshops.governance.store import principals

            conn.execute(
                principals.update().where(principals.c.name == name).values(disabled=disabled)
            )
            after = before.model_copy(update={"disabled": disabled})
            action = "user.disable" if disabled else "user.enable"
            self.ctx.audit(conn, action, f"meshops:user:{name}", before=before, after=after)
        self._changed_identities()
        return after

    def list_roles(self) -> list[Role]:
        """The role catalogue (static, documented; readable by everyone)."""
        return list(ROLES.values())

    def bind_role(self, principal: str, role: str, domain: str | None = None) -> RoleBinding:
        self.ctx.authorize("identity.write", domain)
        binding = RoleBinding(principal=principal, role=role, scope=domain or PLATFORM_SCOPE)
        with self.ctx.db.begin() as conn:
            identities.require_principal(conn, principal)
            stored = identities.add_binding(conn, binding, self.ctx.actor.name)
            self.ctx.audit(conn, "role.bind", f"meshops:user:{principal}", after=stored)
        self._changed_identities()
        return stored

    def unbind_role(self, principal: str, role: str, domain: str | None = None) -> None:
        self.ctx.authorize("identity.write", domain)
        binding = RoleBinding(principal=principal, role=role, scope=domain or PLATFORM_SCOPE)
        with self.ctx.db.begin() as conn:
            if not identities.remove_binding(conn, binding):
                raise NotFound(
                    f"{principal} has no role {role} at {binding.scope} scope",
                    {"fix": "list bindings with `meshops roles bindings`"},
                )
            self.ctx.audit(conn, "role.unbind", f"meshops:user:{principal}", before=binding)
        self._changed_identities()

    def list_bindings(self, principal: str | None = None) -> list[RoleBinding]:
        if principal != self.ctx.actor.name:
            self.ctx.authorize("identity.read")
        with self.ctx.db.read() as conn:
            found = identities.stored_bindings(conn, principal)
        names = [principal] if principal else sorted({b.principal for b in found})
        for name in names:
            found += identities.implicit_bindings(name, self.ctx.home.settings.user)
        if principal is None and self.ctx.home.settings.user not in names:
            found += identities.implicit_bindings(
                self.ctx.home.settings.user, self.ctx.home.settings.user
            )
        return found

    # ------------------------------------------------------------------ tokens
    def create_token(
        self,
        name: str,
        principal: str | None = None,
        scopes: list[str] | None = None,
        expires_in_days: int | None = None,
    ) -> CreatedToken:
        """Make an API token; the secret is in the result and never shown again."""
        owner = principal or self.ctx.actor.name
        own = owner == self.ctx.actor.name
        self.ctx.authorize("token.manage_own" if own else "identity.write")
        expires_in = _days(expires_in_days, "expires_in_days")
        scopes, expires_in = tokens.within_caller(self.ctx.actor, scopes, expires_in, utcnow())
        with self.ctx.db.begin() as conn:
            if own:
                identities.ensure_principal(conn, owner, self.ctx.actor.name)
            else:
                identities.require_principal(conn, owner)
            secret, info = tokens.create(
                conn, owner, name, scopes, expires_in, not_after=self.ctx.actor.expires_at
            )
            self.ctx.audit(conn, "token.create", f"meshops:user:{owner}", after=info)
        return CreatedToken(token=secret, info=info)

    def list_tokens(self, principal: str | None = None) -> list[TokenInfo]:
        """One's own tokens; with identity.read, anyone's (`principal=None`: everyone's)."""
        if principal == self.ctx.actor.name:
            self.ctx.authorize("token.manage_own")
        elif principal is None and not self._can("identity.read"):
            principal = self.ctx.actor.name
        else:
            self.ctx.authorize("identity.read")
        with self.ctx.db.read() as conn:
            return tokens.list_for(conn, principal)

    def revoke_token(self, token_id: str) -> TokenInfo:
        with self.ctx.db.begin() as conn:
            info = tokens.get(conn, token_id)
            own = info.principal == self.ctx.actor.name
            self.ctx.authorize("token.manage_own" if own else "identity.write")
            if info.revoked_at is None:
                tokens.revoke(conn, token_id, utcnow())
                from meshops.governance.sessions import end_for_token

                end_for_token(conn, token_id)  # its web sessions end with it
            after = tokens.get(conn, token_id)
            self.ctx.audit(conn, "token.revoke", f"meshops:user:{info.principal}", after=after)
        self._changed_identities()
        return after

    # ------------------------------------------------------------------ policies
    def save_policy(self, policy: Policy) -> Policy:
        """Create or change a policy; syntax and type errors are refused here, with the
        position. Global policies need policy.write_global; a domain's, write_domain there."""
        scope = policy.scope or GLOBAL_SCOPE
        self._authorize_policy_scope(scope)
        policies.check_policy(policy)
        with self.ctx.db.begin() as conn:
            existing = self._policy_row(conn, policy.id)
            if existing is not None and existing.scope != scope:
                # Moving a policy between scopes would let a domain take over (and weaken)
                # a global policy, or the reverse.
                raise Forbidden(
                    f"policy {policy.id!r} belongs to scope {existing.scope!r}",
                    {"field": "scope", "fix": "pick another id for a policy of this scope"},
                )
            saved = policy.model_copy(
                update={
                    "scope": scope,
                    "version": (existing.version + 1) if existing else 1,
                    "updated_at": utcnow(),
                    "updated_by": self.ctx.actor.name,
                }
            )
            values = saved.model_dump()
            if existing is None:
                conn.execute(policy_table.insert().values(**values))
            else:
                conn.execute(
                    policy_table.update().where(policy_table.c.id == policy.id).values(**values)
                )
            self.ctx.audit(
                conn, "policy.save", f"meshops:policy:{policy.id}", before=existing, after=saved
            )
        return saved

    def _authorize_policy_scope(self, scope: str) -> None:
        if scope == GLOBAL_SCOPE:
            self.ctx.authorize("policy.write_global")
        else:
            identities.check_name(scope, "scope")
            self.ctx.authorize("policy.write_domain", scope)

    def _policy_row(self, conn: Connection, policy_id: str) -> Policy | None:
        row = conn.execute(select(policy_table).where(policy_table.c.id == policy_id))
        found = row.mappings().first()
        return Policy.model_validate(dict(found)) if found else None

    def get_policy(self, policy_id: str) -> Policy:
        self.ctx.authorize("policy.read")
        with self.ctx.db.read() as conn:
            found = self._policy_row(conn, policy_id)
        if found is None:
            raise NotFound(
                f"no policy {policy_id!r}", {"fix": "list policies with `meshops policy list`"}
            )
        return found

    def list_policies(self, target: str | None = None, scope: str | None = None) -> list[Policy]:
        self.ctx.authorize("policy.read")
        query = select(policy_table).order_by(policy_table.c.scope, policy_table.c.id)
        if target:
            query = query.where(policy_table.c.target == target)
        if scope:
            query = query.where(policy_table.c.scope == scope)
        with self.ctx.db.read() as conn:
            return [Policy.model_validate(dict(r)) for r in conn.execute(query).mappings()]

    def delete_policy(self, policy_id: str) -> None:
        existing = self.get_policy(policy_id)
        self._authorize_policy_scope(existing.scope)
        with self.ctx.db.begin() as conn:
            conn.execute(delete(policy_table).where(policy_table.c.id == policy_id))
            self.ctx.audit(conn, "policy.delete", f"meshops:policy:{policy_id}", before=existing)

    def _applicable(self, conn: Connection, target: str, domain: str | None) -> list[Policy]:
        scopes = [GLOBAL_SCOPE] if domain is None else [GLOBAL_SCOPE, domain]
        query = (
            select(policy_table)
            .where(policy_table.c.target == target, policy_table.c.scope.in_(scopes))
            .order_by(policy_table.c.scope != GLOBAL_SCOPE, policy_table.c.id)
        )
        return [Policy.model_validate(dict(r)) for r in conn.execute(query).mappings()]

    def evaluate(
        self,
        target: str,
        document: dict[str, Any],
        domain: str | None,
        subject_urn: str,
        *,
        record: bool = True,
    ) -> PolicyDecision:
        """Evaluate the global and the domain's policies of `target` over `document` and
        record every result (policy, object, outcome, explanation) unless `record` is
        False (an answer only)."""
        # Gates call this as a step of an action already authorised (e.g. a publish with a
        # token scoped to dataproduct.*): the token's scopes do not apply, the roles do.
        unscoped = dataclasses.replace(self.ctx.actor, scopes=None)
        self.ctx.home.authorizer.check(unscoped, "policy.read", domain)
        normalised = normalise(target, document)
        now = utcnow()
        with self.ctx.db.begin() as conn:
            results = []
            for policy in self._applicable(conn, target, domain):
                outcome = policies.run(policy.expression, normalised)
                results.append(
                    PolicyResult(
                        policy_id=policy.id,
                        scope=policy.scope,
                        severity=policy.severity,
                        outcome=outcome.outcome,
                        explanation=policies.explanation(policy, outcome),
                    )
                )
                if not record:
                    continue
                conn.execute(
                    policy_evaluations.insert().values(
                        policy_id=policy.id,
                        policy_version=policy.version,
                        target=target,
                        subject_urn=subject_urn,
                        domain=domain,
                        outcome=outcome.outcome,
                        severity=policy.severity,
                        explanation=results[-1].explanation,
                        actor=self.ctx.actor.name,
                        at=now,
                    )
                )
            if record:
                self._remember_document(conn, target, subject_urn, domain, normalised)
        blocked = any(r.outcome != "pass" and r.severity == "block" for r in results)
        return PolicyDecision(
            target=target,
            subject_urn=subject_urn,
            domain=domain,
            allowed=not blocked,
            results=results,
        )

    def _remember_document(
        self,
        conn: Connection,
        target: str,
        subject_urn: str,
        domain: str | None,
        document: dict[str, Any],
    ) -> None:
        key = (policy_documents.c.target == target) & (
            policy_documents.c.subject_urn == subject_urn
        )
        conn.execute(delete(policy_documents).where(key))
        conn.execute(
            policy_documents.insert().values(
                target=target,
                subject_urn=subject_urn,
                domain=domain,
                document=document,
                at=utcnow(),
            )
        )

    def enforce(
        self,
        target: str,
        document: dict[str, Any],
        domain: str | None,
        subject_urn: str,
        *,
        record: bool = True,
    ) -> PolicyDecision:
        """`evaluate`, then raise PolicyViolation listing the blocking violations; the
        returned decision carries the warnings."""
        decision = self.evaluate(target, document, domain, subject_urn, record=record)
        if not decision.allowed:
            violations = decision.violations
            raise PolicyViolation(
                f"{target} of {subject_urn} is blocked by "
                + ", ".join(f"{v.policy_id} ({v.explanation})" for v in violations),
                {
                    "violations": [v.model_dump() for v in violations],
                    "warnings": [w.model_dump() for w in decision.warnings],
                    "fix": "change the object so the policies pass; "
                    "`meshops policy show <id>` explains each",
                },
            )
        return decision

    def may_record_evaluations(self, domain: str | None) -> bool:
        """Whether a document the caller sends (public `evaluate`/`enforce`) is recorded:
        recorded results count in compliance reports and dry runs, so only those who may
        write the policies of that scope may record them; anyone else gets the answer
        only, and cannot plant a passing evaluation for an object it does not govern.
        (The area gates record as their actor: they build the document from server state.)"""
        if domain is None:
            return self._can("policy.write_global")
        return self._can("policy.write_domain", domain)

    def test_policy(self, policy: Policy) -> list[DryRunResult]:
        """Dry-run a (possibly unsaved) policy over the latest document of every object
        evaluated for its target (in its domain, for a domain policy). Records nothing."""
        self.ctx.authorize("policy.read")
        policies.check_policy(policy)
        query = select(policy_documents).where(policy_documents.c.target == policy.target)
        if policy.scope != GLOBAL_SCOPE:
            query = query.where(policy_documents.c.domain == policy.scope)
        with self.ctx.db.read() as conn:
            rows = list(conn.execute(query.order_by(policy_documents.c.subject_urn)).mappings())
        results = []
        for row in rows:
            outcome = policies.run(policy.expression, dict(row["document"]))
            results.append(
                DryRunResult(
                    subject_urn=row["subject_urn"],
                    domain=row["domain"],
                    outcome=outcome.outcome,
                    explanation=policies.explanation(policy, outcome),
                )
            )
        return results

    def evaluations(
        self, subject_urn: str | None = None, policy_id: str | None = None, limit: int = 100
    ) -> list[PolicyEvaluation]:
        self.ctx.authorize("policy.read")
        query = (
            select(policy_evaluations)
            .order_by(policy_evaluations.c.id.desc())
            .limit(min(limit, MAX_LIMIT))
        )
        if subject_urn:
            query = query.where(policy_evaluations.c.subject_urn == subject_urn)
        if policy_id:
            query = query.where(policy_evaluations.c.policy_id == policy_id)
        with self.ctx.db.read() as conn:
            return [
                PolicyEvaluation.model_validate(dict(r)) for r in conn.execute(query).mappings()
            ]

    def compliance(self, domain: str | None = None, days: int = 30) -> ComplianceReport:
        self.ctx.authorize("policy.read", domain)
        since = utcnow() - (_days(days, "days") or timedelta(days=30))
        with self.ctx.db.read() as conn:
            return compliance.report(conn, domain, since)

    def set_mask_rule(self, rule: MaskRule) -> MaskRule:
        """How a classification level is masked (globally, or in one domain)."""
        self._authorize_policy_scope(rule.scope)
        with self.ctx.db.begin() as conn:
            conn.execute(
                delete(mask_rules).where(
                    mask_rules.c.scope == rule.scope,
                    mask_rules.c.classification == rule.classification,
                )
            )
            conn.execute(mask_rules.insert().values(**rule.model_dump()))
            self.ctx.audit(
                conn, "mask_rule.set", f"meshops:policy:mask.{rule.classification}", after=rule
            )
        self._changed_access()
        return rule

    def list_mask_rules(self) -> list[MaskRule]:
        self.ctx.authorize("policy.read")
        with self.ctx.db.read() as conn:
            rows = conn.execute(select(mask_rules).order_by(mask_rules.c.scope)).mappings()
            return [MaskRule.model_validate(dict(r)) for r in rows]

    # ------------------------------------------------------------------ access
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
        domain = _domain_of(product)
        self.ctx.authorize("access.request", domain)
        if not purpose.strip():
            raise InvalidInput(
                "an access request needs a purpose",
                {"field": "purpose", "fix": 'add --purpose "<what you will use it for>"'},
            )
        facts = self._port_facts(product, port)
        expires = _days(expires_in_days, "expires_in_days")
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
        self.enforce("access.grant", document, domain, subject)
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
        try:
            from meshops.mesh.service import MeshService  # lazily: areas do not import areas
        except ImportError:  # no mesh area: nobody owns a port, access.decide decides
            return {"owners": [], "classification": {}}
        # Read as the system: the caller may lack read_metadata, and the facts are not its.
        version = MeshService(self.ctx.home.system_context()).get_version(product)
        found = version.port(port)
        return {
            "owners": sorted(set(version.owners)),
            "classification": {c.name: c.classification or "public" for c in found.columns},
        }

    def _current_owners(self, product: str) -> list[str]:
        """The product's owners now (server state); none when it is not published."""
        try:
            from meshops.mesh.service import MeshService
        except ImportError:
            return []
        try:
            return sorted(MeshService(self.ctx.home.system_context()).get_product(product).owners)
        except NotFound:
            return []

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
            applicable = self._applicable(conn, "access.auto_approve", domain)
        if not applicable:
            return None
        decision = self.evaluate("access.auto_approve", document, domain, subject)
        if all(r.outcome == "pass" for r in decision.results):
            return applicable[0].id
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
            self.enforce("access.grant", document, request.domain, subject)
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
        domain = _domain_of(product)
        facts = self._port_facts(product, port)
        self._authorize_decision(domain, facts["owners"])
        expires = _days(expires_in_days, "expires_in_days")
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
        self.enforce("access.grant", document, domain, f"meshops:port:{product}:{port}:{grantee}")
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

    # ------------------------------------------------------------------ usage
    def _authorize_usage(self, product: str) -> str:
        domain = _domain_of(product)
        self.ctx.authorize("usage.read", domain)
        return domain

    def product_usage(self, product: str, days: int = 30) -> ProductUsage:
        self._authorize_usage(product)
        usage.flush_pending(self.ctx.home)
        since = utcnow() - (_days(days, "days") or timedelta(days=30))
        with self.ctx.db.read() as conn:
            return usage.product_usage(conn, product, since)

    def usage_events(self, product: str | None = None, limit: int = 100) -> list[UsageEvent]:
        if product:
            self._authorize_usage(product)
        else:
            self.ctx.authorize("usage.read")
        usage.flush_pending(self.ctx.home)
        with self.ctx.db.read() as conn:
            return usage.events(conn, product, limit=min(limit, MAX_LIMIT))

    def idle_products(self, days: int = 30, known: list[str] | None = None) -> list[IdleProduct]:
        """Products nobody read for `days` days: candidates for deprecation."""
        self.ctx.authorize("usage.read")
        _days(days, "days")
        usage.flush_pending(self.ctx.home)
        with self.ctx.db.read() as conn:
            return usage.idle_products(conn, utcnow(), days, known)

    def impact(
        self,
        product: str,
        columns: list[str] | None = None,
        days: int = 90,
        versions: list[str] | None = None,
    ) -> Impact:
        """What a change to `product` (or to some of its columns) would touch: downstream
        lineage of its versions, active grants, and who read it (those columns) lately."""
        domain = self._authorize_usage(product)
        since = utcnow() - (_days(days, "days") or timedelta(days=90))
        usage.flush_pending(self.ctx.home)
        name = product.partition(".")[2]
        with self.ctx.db.read() as conn:
            known_versions = sorted(set(versions or []) | set(usage.versions_read(conn, product)))
            edges: dict[tuple[str, str, str], dict[str, Any]] = {}
            for version in known_versions:
                for edge in walk(conn, dataproduct_urn(domain, name, version), "downstream", 10):
                    edges.setdefault(
                        (edge.upstream, edge.downstream, edge.relation), edge.to_json()
                    )
            active = access.list_grants(conn, product, active_at=utcnow())
            consumers = usage.consumers_of(conn, product, since, columns)
        if columns:
            active = [g for g in active if not g.columns or set(g.columns) & set(columns)] or active
        return Impact(
            product=product,
            columns=sorted(columns or []),
            downstream=list(edges.values()),
            grants=active,
            consumers=consumers,
            window_days=days,
        )

    # ------------------------------------------------------------------ audit
    def audit_events(
        self, obj: str | None = None, actor: str | None = None, limit: int = 100
    ) -> list[AuditEntry]:
        self.ctx.authorize("audit.read")
        with self.ctx.db.read() as conn:
            found = audit.events(conn, obj=obj, actor=actor, limit=min(limit, MAX_LIMIT))
        return [AuditEntry.model_validate(e.__dict__) for e in found]

    def verify_audit(self) -> AuditVerification:
        """Walk the keyed chain and check its sealed head (kernel/audit.py). An empty log
        without a head is a home that never audited anything, which its identities, tokens,
        bindings and grants (each made by an audited action) must then agree with."""
        self.ctx.authorize("audit.read")
        key = derived_key(self.ctx.home.settings, "audit")
        with self.ctx.db.read() as conn:
            result = audit.verify(conn, key)
            reason = result.reason
            if result.intact and result.checked == 0:
                audited = _audited_objects(conn)
                if audited:
                    result = dataclasses.replace(result, intact=False)
                    reason = f"the audit log and its head are gone, yet the home holds {audited}"
        return AuditVerification(
            intact=result.intact,
            checked=result.checked,
            first_bad_id=result.first_bad_id,
            legacy=result.legacy,
            legacy_upto=result.legacy_upto,
            reason=reason,
        )


def _audited_objects(conn: Connection) -> str:
    """What the home holds that only audited actions make ('' when nothing)."""
    from sqlalchemy import func

    from meshops.governance.store import grants, principals, role_bindings, tokens

    found = []
    for table in (principals, tokens, role_bindings, grants):
        count = conn.execute(select(func.count()).select_from(table)).scalar() or 0
        if count:
            found.append(f"{count} {table.name}")
    return ", ".join(found)


__all__ = ["MASKED_LEVELS", "GovernanceService"]
