from __future__ import annotations

import itertools
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import text

import meshops.kernel.audit  # noqa: F401 - registers tables on the shared metadata
from meshops.kernel import audit, lineage, outbox, schema
from meshops.kernel.db import Database, metadata
from meshops.kernel.errors import InvalidInput, SchemaOutdated
from meshops.kernel.home import Home


def _all_tables_registered() -> None:
    """Import every area's store so its tables join the shared metadata."""
    import importlib
    import pkgutil

    import meshops

    for info in pkgutil.walk_packages(meshops.__path__, "meshops."):
        if info.name.endswith(".store") or info.name.endswith(".tables"):
            importlib.import_module(info.name)


def test_sqlite_uses_wal_and_busy_timeout(sqlite_home: Home) -> None:
    with sqlite_home.db.read() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA busy_timeout")).scalar() == 30000


def test_migrations_match_the_declared_tables(home: Home) -> None:
    """The tables the code queries are exactly the tables the migrations create."""
    _all_tables_registered()
    with home.db.engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), metadata)
    # The schema fingerprint table is bookkeeping of the migration runner itself.
    drift = [d for d in diff if not (d[0] == "remove_table" and d[1].name == "meshops_schema")]
    # The mesh catalog's FTS5 virtual table (and its shadow tables) exists only on SQLite and
    # is created by the mesh migration with op.execute: SQLAlchemy cannot declare it.
    drift = [
        d
        for d in drift
        if not (d[0] == "remove_table" and d[1].name.startswith("mesh_catalog_fts"))
    ]
    assert drift == []


def test_schema_is_current_after_open_and_server_refuses_outdated(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'fresh.db'}")
    assert not schema.is_current(db)
    with pytest.raises(SchemaOutdated) as info:
        schema.ensure_current(db, auto_upgrade=False)
    assert "meshops db upgrade" in info.value.detail["fix"]
    schema.ensure_current(db, auto_upgrade=True)
    assert schema.is_current(db)
    assert schema.current_heads(db) == schema.expected_heads(db)


class Happened(outbox.EventPayload):
    topic = "x.happened"
    a: int = 0


def test_outbox_commits_and_rolls_back_with_the_change(home: Home) -> None:
    with home.db.begin() as conn:
        outbox.emit(conn, "meshops:run:1", Happened(a=1), "alice")
    with pytest.raises(RuntimeError), home.db.begin() as conn:
        outbox.emit(conn, "meshops:run:2", Happened(a=2), "alice")
        raise RuntimeError("crash before commit")
    with home.db.read() as conn:
        events = outbox.pending(conn)
    assert [e.subject for e in events] == ["meshops:run:1"]
    with home.db.begin() as conn:
        outbox.mark_dispatched(conn, [events[0].id])
    with home.db.read() as conn:
        assert outbox.pending(conn) == []


def _subjects(home: Home) -> list[str]:
    with home.db.read() as conn:
        return [e.subject for e in outbox.pending(conn)]


def test_a_unit_of_work_commits_every_transaction_in_it_or_none(home: Home) -> None:
    committed: list[str] = []
    with pytest.raises(RuntimeError), home.db.unit_of_work():
        with home.db.begin() as conn:
            outbox.emit(conn, "first", Happened(), "alice")
        home.db.after_commit(lambda: committed.append("first"))
        assert _subjects(home) == ["first"]  # reads inside the unit see its writes
        raise RuntimeError("a later area fails")
    assert _subjects(home) == [] and committed == []

    with home.db.unit_of_work():
        with home.db.begin() as conn:
            outbox.emit(conn, "kept", Happened(), "alice")
        # A failing block inside the unit is undone alone (a savepoint) and propagates.
        with pytest.raises(RuntimeError), home.db.begin() as conn:
            outbox.emit(conn, "undone", Happened(), "alice")
            raise RuntimeError("this service call fails, its caller carries on")
        with home.db.unit_of_work(), home.db.begin() as conn:  # joins the enclosing unit
            outbox.emit(conn, "nested", Happened(), "alice")
        home.db.after_commit(lambda: committed.append("kept"))
        assert committed == []
    assert _subjects(home) == ["kept", "nested"] and committed == ["kept"]


def test_lineage_walks_n_hops_both_ways(home: Home) -> None:
    chain = [
        "meshops:dataproduct:sales.orders:1.0.0",
        "meshops:featureview:orders_stats",
        "meshops:trainingset:ts1",
        "meshops:run:r1",
        "meshops:model:churn:1",
    ]
    with home.db.begin() as conn:
        for up, down in itertools.pairwise(chain):
            lineage.add_edge(conn, up, down, "derived")
        lineage.add_edge(conn, chain[0], chain[1], "derived")  # idempotent
    with home.db.read() as conn:
        down = lineage.walk(conn, chain[0], "downstream", depth=10)
        assert [e.downstream for e in down] == chain[1:]
        assert [e.depth for e in down] == [1, 2, 3, 4]
        up = lineage.walk(conn, chain[-1], "upstream", depth=2)
        assert {e.upstream for e in up} == {chain[2], chain[3]}
        assert lineage.path_exists(conn, chain[0], chain[-1])
        with pytest.raises(InvalidInput):
            lineage.walk(conn, chain[0], "downstream", depth=0)


def test_audit_chain_detects_tampering(home: Home) -> None:
    key = b"k" * 32
    with home.db.begin() as conn:
        for i in range(5):
            audit.record(conn, "alice", "thing.update", f"meshops:run:{i}", key=key, after={"i": i})
    with home.db.read() as conn:
        assert audit.verify(conn, key) == audit.Verification(True, 5)
        assert not audit.verify(conn, b"x" * 32).intact  # another home's key
    with home.db.begin() as conn:
        conn.execute(
            audit.audit_events.update()
            .where(audit.audit_events.c.object == "meshops:run:2")
            .values(actor="mallory")
        )
    with home.db.read() as conn:
        found = audit.verify(conn, key)
    assert not found.intact
    assert found.first_bad_id is not None
