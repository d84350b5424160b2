"""Policies: their scopes, their evaluation at other areas' gates (recorded for
compliance and dry runs), and the mask rules of classification levels."""

from __future__ import annotations

import dataclasses
from datetime import timedelta
from typing import Any

from sqlalchemy import Connection, delete, select

from meshops.governance import compliance, identities, policies
from meshops.governance.documents import normalise
from meshops.governance.models import (
    GLOBAL_SCOPE,
    ComplianceReport,
    DryRunResult,
    MaskRule,
    Policy,
    PolicyDecision,
    PolicyEvaluation,
    PolicyResult,
)
from meshops.governance.service_base import MAX_LIMIT, ServiceBase, days_of
from meshops.governance.store import mask_rules, policy_documents, policy_evaluations
from meshops.governance.store import policies as policy_table
from meshops.kernel.db import upsert, utcnow
from meshops.kernel.errors import Forbidden, NotFound, PolicyViolation


class PolicyService(ServiceBase):
    """Policies, their evaluations and compliance, and the mask rules."""

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
            for policy in applicable(conn, target, domain):
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
        # One upsert: concurrent first decisions on the same subject must not collide.
        row: dict[str, Any] = {"target": target, "subject_urn": subject_urn, "domain": domain}
        row |= {"document": document, "at": utcnow()}
        upsert(conn, policy_documents, row, ["target", "subject_urn"])

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
        since = utcnow() - (days_of(days, "days") or timedelta(days=30))
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


def applicable(conn: Connection, target: str, domain: str | None) -> list[Policy]:
    """The global policies of `target`, then those of `domain` (if any)."""
    scopes = [GLOBAL_SCOPE] if domain is None else [GLOBAL_SCOPE, domain]
    query = (
        select(policy_table)
        .where(policy_table.c.target == target, policy_table.c.scope.in_(scopes))
        .order_by(policy_table.c.scope != GLOBAL_SCOPE, policy_table.c.id)
    )
    return [Policy.model_validate(dict(r)) for r in conn.execute(query).mappings()]
