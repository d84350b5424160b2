"""Finding 10: `audit verify` passed on an emptied audit table and on a chain recomputed
after an edit. The chain is now an HMAC keyed with the home's audit key (kept outside the
metadata database) and its head is sealed and checked even when the log is empty.

Each test tampers with a home of its own (the shared world's log must stay intact), as
someone with SQL access to the metadata database but not the key would.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, select, update

from meshops.governance.service import GovernanceService
from meshops.kernel import audit
from meshops.kernel.home import Home
from tests.conftest import make_settings
from tests.security.conftest import SecurityHome


@pytest.fixture
def audited(tmp_path: Path) -> Iterator[Home]:
    """A home with a few audited actions (users, a binding, a token)."""
    home = Home(make_settings(tmp_path / "home"))
    gov = GovernanceService(home.context())
    gov.create_user("bob")
    gov.create_user("carl")
    gov.bind_role("bob", "data_scientist")
    gov.create_token("t", principal="bob")
    try:
        yield home
    finally:
        home.close()


def verify(home: Home) -> tuple[bool, str, int]:
    result = GovernanceService(home.context()).verify_audit()
    return result.intact, result.reason, result.checked


def _unkeyed(prev: str, row: dict[str, object]) -> str:
    """What an attacker without the key computes: the old unkeyed chain."""
    fields = {k: row[k] for k in ("actor", "action", "object", "before_digest", "after_digest")}
    fields["at"] = row["at"].isoformat()  # type: ignore[attr-defined]
    fields["detail"] = row["detail"]
    text = json.dumps(fields, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256((prev + text).encode()).hexdigest()


def _recompute_chain(home: Home) -> None:
    """Edit one event, then rewrite every hash and the head tip as the unkeyed chain."""
    with home.db.begin() as conn:
        rows = [
            dict(r)
            for r in conn.execute(select(audit.audit_events).order_by(audit.audit_events.c.id))
            .mappings()
            .all()
        ]
        rows[1]["actor"] = "mallory"
        prev = audit.GENESIS
        for row in rows:
            new = _unkeyed(prev, row)
            conn.execute(
                update(audit.audit_events)
                .where(audit.audit_events.c.id == row["id"])
                .values(actor=row["actor"], prev_hash=prev, hash=new)
            )
            prev = new
        conn.execute(update(audit.audit_head).where(audit.audit_head.c.id == 1).values(hash=prev))


def test_untouched_log_verifies(audited: Home) -> None:
    intact, reason, checked = verify(audited)
    assert intact and reason == "" and checked >= 4


def test_shared_world_log_verifies(sec: SecurityHome) -> None:
    result = sec.admin().verify_audit()
    assert result.intact, result.reason
    assert result.checked > 0 and result.legacy == 0


def test_emptied_table_fails(audited: Home) -> None:
    with audited.db.begin() as conn:
        conn.execute(delete(audit.audit_events))
    intact, reason, checked = verify(audited)
    assert not intact and checked == 0
    assert "empty" in reason


def test_emptied_table_with_head_reset_to_genesis_fails(audited: Home) -> None:
    with audited.db.begin() as conn:
        conn.execute(delete(audit.audit_events))
        conn.execute(update(audit.audit_head).values(hash=audit.GENESIS))
    assert not verify(audited)[0]


def test_emptied_table_and_head_fails_while_the_home_holds_audited_objects(
    audited: Home,
) -> None:
    with audited.db.begin() as conn:
        conn.execute(delete(audit.audit_events))
        conn.execute(delete(audit.audit_head))
    intact, reason, _ = verify(audited)
    assert not intact
    assert "principals" in reason and "tokens" in reason


def test_recomputed_chain_fails(audited: Home) -> None:
    _recompute_chain(audited)
    intact, reason, _ = verify(audited)
    assert not intact
    assert "seal" in reason


def test_recomputed_chain_with_its_seal_removed_fails(audited: Home) -> None:
    """Passing the chain off as an old unkeyed (legacy) one is not enough either."""
    _recompute_chain(audited)
    with audited.db.begin() as conn:
        conn.execute(delete(audit.audit_head).where(audit.audit_head.c.id == audit.SEAL_ROW))
    intact, reason, _ = verify(audited)
    assert not intact and "not sealed" in reason


def test_edited_event_fails_at_its_id(audited: Home) -> None:
    with audited.db.begin() as conn:
        first = conn.execute(select(audit.audit_events.c.id).limit(1)).scalar()
        conn.execute(
            update(audit.audit_events)
            .where(audit.audit_events.c.id == first)
            .values(actor="mallory")
        )
    result = GovernanceService(audited.context()).verify_audit()
    assert not result.intact and result.first_bad_id == first


def test_removed_last_events_fail(audited: Home) -> None:
    """Truncating the tail and rolling the tip back to the new last event: the seal was
    made for the old tip."""
    with audited.db.begin() as conn:
        rows = conn.execute(
            select(audit.audit_events.c.id, audit.audit_events.c.hash).order_by(
                audit.audit_events.c.id
            )
        ).all()
        conn.execute(delete(audit.audit_events).where(audit.audit_events.c.id == rows[-1][0]))
        conn.execute(
            update(audit.audit_head)
            .where(audit.audit_head.c.id == audit.TIP_ROW)
            .values(hash=rows[-2][1])
        )
    intact, reason, _ = verify(audited)
    assert not intact and "seal" in reason


def test_another_homes_key_does_not_verify(audited: Home) -> None:
    with audited.db.read() as conn:
        assert audit.verify(conn, b"another home's key, 32 bytes!!!").intact is False


def test_legacy_unkeyed_events_are_reported_and_sealed_by_the_next_event(
    tmp_path: Path,
) -> None:
    """A home audited by a version before the keyed chain: its unkeyed events verify as
    legacy once the next (keyed) event sealed them; an edit among them still fails."""
    home = Home(make_settings(tmp_path / "legacy"))
    try:
        with home.db.begin() as conn:  # what the old version wrote
            prev = audit.GENESIS
            for i in range(3):
                row = {
                    "actor": "alice",
                    "action": "user.create",
                    "object": f"meshops:user:u{i}",
                    "at": audit.utcnow(),
                    "before_digest": None,
                    "after_digest": None,
                    "detail": {},
                }
                new = _unkeyed(prev, row)
                conn.execute(audit.audit_events.insert().values(**row, prev_hash=prev, hash=new))
                prev = new
            conn.execute(audit.audit_head.insert().values(id=audit.TIP_ROW, hash=prev))
        gov = GovernanceService(home.context())
        unsealed = gov.verify_audit()
        assert not unsealed.intact and "not sealed" in unsealed.reason
        gov.create_user("dora")  # the first keyed event seals the legacy prefix
        sealed = gov.verify_audit()
        assert sealed.intact, sealed.reason
        assert sealed.legacy == 3 and sealed.checked == 4
        with home.db.begin() as conn:
            conn.execute(
                update(audit.audit_events)
                .where(audit.audit_events.c.id == sealed.legacy_upto)
                .values(actor="mallory")
            )
        assert not gov.verify_audit().intact
    finally:
        home.close()


def test_verify_over_http_reports_the_reason(sec: SecurityHome) -> None:
    body = sec.client("alice").get("/v1/governance/audit/verify").json()
    assert body["intact"] is True and body["reason"] == "" and body["legacy"] == 0
    assert sec.client("consumer-none").get("/v1/governance/audit/verify").status_code == 403
