"""Compliance report per domain from the recorded policy evaluations."""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime

from sqlalchemy import Connection, select

from meshops.governance.models import ComplianceReport, ComplianceViolation
from meshops.governance.store import policy_evaluations


def report(conn: Connection, domain: str | None, since: datetime) -> ComplianceReport:
    """Score: share of (policy, subject) pairs whose latest evaluation passed. Trend: per
    day in the window, the share of evaluations that passed."""
    query = select(policy_evaluations).order_by(policy_evaluations.c.id)
    if domain is not None:
        query = query.where(policy_evaluations.c.domain == domain)
    latest: dict[tuple[str, str], ComplianceViolation | None] = {}
    per_day: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for row in conn.execute(query).mappings():
        key = (row["policy_id"], row["subject_urn"])
        passed = row["outcome"] == "pass"
        latest[key] = (
            None
            if passed
            else ComplianceViolation(
                policy_id=row["policy_id"],
                subject_urn=row["subject_urn"],
                severity=row["severity"],
                explanation=row["explanation"],
                at=row["at"],
            )
        )
        if row["at"] >= since:
            day = per_day[row["at"].date().isoformat()]
            day[0] += int(passed)
            day[1] += 1
    violations = [v for v in latest.values() if v is not None]
    checked = len(latest)
    score = 1.0 if checked == 0 else (checked - len(violations)) / checked
    trend = [(day, passed / total) for day, (passed, total) in sorted(per_day.items())]
    return ComplianceReport(
        domain=domain,
        score=round(score, 4),
        checked=checked,
        violations=sorted(violations, key=lambda v: (v.subject_urn, v.policy_id)),
        trend=trend,
    )
