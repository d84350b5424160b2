"""Schema migrations: Alembic, one branch per area, all applied with `upgrade heads`.

Each area keeps its revisions in `meshops/<area>/migrations/` (kernel: `kernel/migrations/`),
with `branch_labels=("<area>",)`. Areas never reference each other's tables, so branches
are independent and an area can be added without touching another's history.

Starting is cheap: the set of revision files is fingerprinted and stored after an upgrade,
so a start compares two strings instead of loading Alembic.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

from sqlalchemy import Column, MetaData, String, Table, inspect, select

from meshops.kernel.db import Database
from meshops.kernel.errors import SchemaOutdated

PACKAGE_ROOT = Path(__file__).resolve().parent.parent
SCRIPT_LOCATION = Path(__file__).resolve().parent / "alembic"

_fingerprint_meta = MetaData()
schema_fingerprint = Table(
    "meshops_schema",
    _fingerprint_meta,
    Column("fingerprint", String(64), primary_key=True),
)


def version_locations() -> list[Path]:
    return sorted(p for p in PACKAGE_ROOT.glob("*/migrations") if p.is_dir())


def code_fingerprint() -> str:
    digest = hashlib.sha256()
    for location in version_locations():
        for path in sorted(location.glob("*.py")):
            digest.update(path.name.encode())
            digest.update(path.read_bytes())
    return digest.hexdigest()


def _alembic_config(db: Database):  # type: ignore[no-untyped-def]
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(SCRIPT_LOCATION))
    cfg.set_main_option("path_separator", "os")
    cfg.set_main_option("version_locations", ":".join(str(p) for p in version_locations()))
    return cfg


def upgrade(db: Database) -> list[str]:
    """Apply every pending migration; returns the heads now in place."""
    from alembic import command

    cfg = _alembic_config(db)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "heads")
        _fingerprint_meta.create_all(conn)
        conn.execute(schema_fingerprint.delete())
        conn.execute(schema_fingerprint.insert().values(fingerprint=code_fingerprint()))
    return current_heads(db)


def current_heads(db: Database) -> list[str]:
    from alembic.runtime.migration import MigrationContext

    with db.engine.connect() as conn:
        return sorted(MigrationContext.configure(conn).get_current_heads())


def expected_heads(db: Database) -> list[str]:
    from alembic.script import ScriptDirectory

    return sorted(ScriptDirectory.from_config(_alembic_config(db)).get_heads())


def is_current(db: Database) -> bool:
    with db.engine.connect() as conn:
        if not inspect(conn).has_table("meshops_schema"):
            return False
        stored = conn.execute(select(schema_fingerprint.c.fingerprint)).scalar()
    if stored == code_fingerprint():
        return True
    return current_heads(db) == expected_heads(db)


def ensure_current(db: Database, *, auto_upgrade: bool) -> None:
    """Check the schema at start; an embedded home upgrades itself, a server refuses."""
    if is_current(db):
        return
    if auto_upgrade:
        upgrade(db)
        return
    raise SchemaOutdated(
        "the metadata database schema is behind this version of meshops",
        {"fix": "run `meshops db upgrade`", "database": db.url},
    )
