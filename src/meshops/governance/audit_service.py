"""The audit log: its events and the check of its keyed chain."""

from __future__ import annotations

import dataclasses

from sqlalchemy import Connection, select

from meshops.governance.models import AuditEntry, AuditVerification
from meshops.governance.service_base import MAX_LIMIT, ServiceBase
from meshops.kernel import audit
from meshops.kernel.secrets import derived_key


class AuditService(ServiceBase):
    """The audit log, read and verified."""

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
