"""Registry tables and their queries (SQLAlchemy Core on the shared metadata)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    Boolean,
    Column,
    Connection,
    Float,
    ForeignKeyConstraint,
    Index,
    Integer,
    String,
    Table,
    Text,
    func,
    select,
)

from meshops.kernel.db import (
    BigId,
    JsonColumn,
    UtcDateTime,
    insert_ignoring_conflicts,
    metadata,
)
from meshops.registry.comparison import ModelComparison
from meshops.registry.models import (
    AliasMove,
    DatasetRef,
    ModelFile,
    ModelVersion,
    RegisteredModel,
    Signature,
    VersionStatus,
)

registered_models = Table(
    "registered_models",
    metadata,
    Column("name", String(128), primary_key=True),
    Column("description", Text, nullable=False),
    Column("tags", JsonColumn, nullable=False),
    Column("owner", String(200), nullable=True),
    Column("domain", String(200), nullable=True),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
)

model_versions = Table(
    "model_versions",
    metadata,
    Column("model_name", String(128), primary_key=True),
    Column("version", Integer, primary_key=True),
    Column("flavor", String(50), nullable=False),
    Column("signature", JsonColumn, nullable=True),
    Column("files", JsonColumn, nullable=False),
    Column("metrics", JsonColumn, nullable=False),
    Column("run_id", String(64), nullable=True),
    Column("input_datasets", JsonColumn, nullable=False),
    Column("status", String(20), nullable=False),
    Column("created_by", String(200), nullable=False),
    Column("created_at", UtcDateTime, nullable=False),
    Column("tags", JsonColumn, nullable=False),
    Column("description", Text, nullable=False),
    Column("model_card", Text, nullable=False),
    ForeignKeyConstraint(["model_name"], ["registered_models.name"]),
    Index("ix_model_versions_run_id", "run_id"),
)

model_aliases = Table(
    "model_aliases",
    metadata,
    Column("model_name", String(128), primary_key=True),
    Column("alias", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("updated_by", String(200), nullable=False),
    Column("updated_at", UtcDateTime, nullable=False),
    ForeignKeyConstraint(["model_name"], ["registered_models.name"]),
)

model_alias_history = Table(
    "model_alias_history",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("model_name", String(128), nullable=False),
    Column("alias", String(64), nullable=False),
    Column("from_version", Integer, nullable=True),
    Column("to_version", Integer, nullable=True),
    Column("actor", String(200), nullable=False),
    Column("at", UtcDateTime, nullable=False),
    Column("reason", Text, nullable=False),
    Index("ix_model_alias_history_model", "model_name", "alias"),
)


# Champion/challenger comparisons (`registry.comparison`): written only by the
# record_comparison operation, read by the promotion gate.
model_comparisons = Table(
    "model_comparisons",
    metadata,
    Column("id", BigId, primary_key=True, autoincrement=True),
    Column("model_name", String(128), nullable=False),
    Column("challenger_version", Integer, nullable=False),
    Column("alias", String(64), nullable=False),
    Column("champion_version", Integer, nullable=True),
    Column("metric", String(64), nullable=False),
    Column("direction", String(3), nullable=False),
    Column("challenger_score", Float, nullable=False),
    Column("champion_score", Float, nullable=True),
    Column("tolerance", Float, nullable=False),
    Column("allowed", Boolean, nullable=False),
    Column("reasons", JsonColumn, nullable=False),
    Column("detail", JsonColumn, nullable=False),
    Column("run_id", String(64), nullable=False),
    Column("data_digest", String(64), nullable=False),
    Column("data_urn", String(1000), nullable=False),
    Column("recorded_by", String(200), nullable=False),
    Column("recorded_at", UtcDateTime, nullable=False),
    Index("ix_model_comparisons_model", "model_name", "challenger_version"),
)


# Which blobs a caller may name in a new version's files: those it uploaded itself
# (kind "upload", holder = actor) and those an existing version already references (kind
# "version", holder = "name/version"). A digest is not a capability: knowing one (say, a
# data product's snapshot) must not let anyone wrap it in a model version and download it.
file_refs = Table(
    "registry_file_refs",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("kind", String(10), primary_key=True),
    Column("holder", String(200), primary_key=True),
    Column("at", UtcDateTime, nullable=False),
)
UPLOAD = "upload"
VERSION = "version"


def add_file_refs(conn: Connection, rows: list[dict[str, Any]]) -> None:
    insert_ignoring_conflicts(conn, file_refs, rows, ["digest", "kind", "holder"])


def referable(conn: Connection, digests: list[str], actor: str) -> set[str]:
    """The digests among `digests` that `actor` uploaded or a version already holds."""
    if not digests:
        return set()
    query = select(file_refs.c.digest).where(
        file_refs.c.digest.in_(digests),
        ((file_refs.c.kind == UPLOAD) & (file_refs.c.holder == actor))
        | (file_refs.c.kind == VERSION),
    )
    return set(conn.execute(query).scalars())


# --- registered models ------------------------------------------------------------


def get_model_row(conn: Connection, name: str, *, lock: bool = False) -> Any:
    query = select(registered_models).where(registered_models.c.name == name)
    if lock:
        query = query.with_for_update()  # serialises version numbering on PostgreSQL
    return conn.execute(query).mappings().first()


def insert_model(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(registered_models.insert().values(**values))


def update_model(conn: Connection, name: str, values: dict[str, Any]) -> None:
    conn.execute(
        registered_models.update().where(registered_models.c.name == name).values(**values)
    )


def _aliases_by_model(conn: Connection, names: list[str]) -> dict[str, dict[str, int]]:
    result: dict[str, dict[str, int]] = {n: {} for n in names}
    if not names:
        return result
    rows = conn.execute(
        select(model_aliases.c.model_name, model_aliases.c.alias, model_aliases.c.version)
        .where(model_aliases.c.model_name.in_(names))
        .order_by(model_aliases.c.alias)
    )
    for row in rows:
        result[row.model_name][row.alias] = int(row.version)
    return result


def _latest_by_model(conn: Connection, names: list[str]) -> dict[str, int]:
    if not names:
        return {}
    rows = conn.execute(
        select(model_versions.c.model_name, func.max(model_versions.c.version))
        .where(model_versions.c.model_name.in_(names))
        .group_by(model_versions.c.model_name)
    )
    return {name: int(latest) for name, latest in rows}


def list_models(
    conn: Connection, domain: str | None = None, limit: int = 1000
) -> list[RegisteredModel]:
    query = select(registered_models).order_by(registered_models.c.name).limit(limit)
    if domain is not None:
        query = query.where(registered_models.c.domain == domain)
    rows = list(conn.execute(query).mappings())
    names = [r["name"] for r in rows]
    aliases, latest = _aliases_by_model(conn, names), _latest_by_model(conn, names)
    return [_model(r, aliases[r["name"]], latest.get(r["name"])) for r in rows]


def load_model(conn: Connection, row: Any) -> RegisteredModel:
    name = row["name"]
    return _model(
        row, _aliases_by_model(conn, [name])[name], _latest_by_model(conn, [name]).get(name)
    )


def _model(row: Any, aliases: dict[str, int], latest: int | None) -> RegisteredModel:
    return RegisteredModel(
        name=row["name"],
        description=row["description"],
        tags=dict(row["tags"]),
        owner=row["owner"],
        domain=row["domain"],
        created_by=row["created_by"],
        created_at=row["created_at"],
        updated_at=row["updated_at"],
        latest_version=latest,
        aliases=aliases,
    )


# --- versions -----------------------------------------------------------------------


def next_version(conn: Connection, name: str) -> int:
    current = conn.execute(
        select(func.max(model_versions.c.version)).where(model_versions.c.model_name == name)
    ).scalar()
    return int(current or 0) + 1


def insert_version(conn: Connection, values: dict[str, Any]) -> None:
    conn.execute(model_versions.insert().values(**values))


def update_version(conn: Connection, name: str, version: int, values: dict[str, Any]) -> None:
    conn.execute(
        model_versions.update()
        .where(model_versions.c.model_name == name, model_versions.c.version == version)
        .values(**values)
    )


def get_version_row(conn: Connection, name: str, version: int) -> Any:
    return (
        conn.execute(
            select(model_versions).where(
                model_versions.c.model_name == name, model_versions.c.version == version
            )
        )
        .mappings()
        .first()
    )


def list_versions(conn: Connection, name: str) -> list[ModelVersion]:
    rows = conn.execute(
        select(model_versions)
        .where(model_versions.c.model_name == name)
        .order_by(model_versions.c.version.desc())
    ).mappings()
    aliases = _aliases_by_version(conn, name)
    return [to_version(r, aliases.get(r["version"], [])) for r in rows]


def _aliases_by_version(conn: Connection, name: str) -> dict[int, list[str]]:
    result: dict[int, list[str]] = {}
    for alias, version in _aliases_by_model(conn, [name])[name].items():
        result.setdefault(version, []).append(alias)
    return result


def version_with_aliases(conn: Connection, row: Any) -> ModelVersion:
    aliases = _aliases_by_version(conn, row["model_name"]).get(row["version"], [])
    return to_version(row, aliases)


def to_version(row: Any, aliases: list[str]) -> ModelVersion:
    return ModelVersion(
        name=row["model_name"],
        version=int(row["version"]),
        flavor=row["flavor"],
        signature=Signature.model_validate(row["signature"]) if row["signature"] else None,
        files=[ModelFile.model_validate(f) for f in row["files"]],
        metrics={k: float(v) for k, v in dict(row["metrics"]).items()},
        run_id=row["run_id"],
        input_datasets=[DatasetRef.model_validate(d) for d in row["input_datasets"]],
        status=VersionStatus(row["status"]),
        created_by=row["created_by"],
        created_at=row["created_at"],
        tags=dict(row["tags"]),
        description=row["description"],
        aliases=sorted(aliases),
    )


# --- aliases ------------------------------------------------------------------------


def get_alias(conn: Connection, name: str, alias: str) -> int | None:
    version = conn.execute(
        select(model_aliases.c.version).where(
            model_aliases.c.model_name == name, model_aliases.c.alias == alias
        )
    ).scalar()
    return None if version is None else int(version)


def put_alias(
    conn: Connection,
    name: str,
    alias: str,
    version: int,
    *,
    actor: str,
    at: datetime,
    exists: bool,
) -> None:
    values = {"version": version, "updated_by": actor, "updated_at": at}
    if exists:
        conn.execute(
            model_aliases.update()
            .where(model_aliases.c.model_name == name, model_aliases.c.alias == alias)
            .values(**values)
        )
    else:
        conn.execute(model_aliases.insert().values(model_name=name, alias=alias, **values))


def delete_alias(conn: Connection, name: str, alias: str) -> None:
    conn.execute(
        model_aliases.delete().where(
            model_aliases.c.model_name == name, model_aliases.c.alias == alias
        )
    )


def record_move(conn: Connection, values: dict[str, Any]) -> int:
    result = conn.execute(model_alias_history.insert().values(**values))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def alias_history(conn: Connection, name: str, alias: str | None, limit: int) -> list[AliasMove]:
    query = (
        select(model_alias_history)
        .where(model_alias_history.c.model_name == name)
        .order_by(model_alias_history.c.id.desc())
        .limit(limit)
    )
    if alias is not None:
        query = query.where(model_alias_history.c.alias == alias)
    return [
        AliasMove(
            id=int(r["id"]),
            name=r["model_name"],
            alias=r["alias"],
            from_version=r["from_version"],
            to_version=r["to_version"],
            actor=r["actor"],
            at=r["at"],
            reason=r["reason"],
        )
        for r in conn.execute(query).mappings()
    ]


# --- comparisons ---------------------------------------------------------------------


def alias_updated_at(conn: Connection, name: str, alias: str) -> datetime | None:
    at = conn.execute(
        select(model_aliases.c.updated_at).where(
            model_aliases.c.model_name == name, model_aliases.c.alias == alias
        )
    ).scalar()
    return at


def insert_comparison(conn: Connection, values: dict[str, Any]) -> int:
    result = conn.execute(model_comparisons.insert().values(**values))
    key = result.inserted_primary_key
    assert key is not None
    return int(key[0])


def comparisons(
    conn: Connection,
    name: str,
    *,
    version: int | None = None,
    alias: str | None = None,
    limit: int = 100,
) -> list[ModelComparison]:
    """Newest first."""
    query = (
        select(model_comparisons)
        .where(model_comparisons.c.model_name == name)
        .order_by(model_comparisons.c.id.desc())
        .limit(limit)
    )
    if version is not None:
        query = query.where(model_comparisons.c.challenger_version == version)
    if alias is not None:
        query = query.where(model_comparisons.c.alias == alias)
    return [to_comparison(r) for r in conn.execute(query).mappings()]


def to_comparison(row: Any) -> ModelComparison:
    detail = dict(row["detail"] or {})
    return ModelComparison(
        id=int(row["id"]),
        name=row["model_name"],
        challenger_version=int(row["challenger_version"]),
        alias=row["alias"],
        champion_version=row["champion_version"],
        metric=row["metric"],
        direction=row["direction"],
        challenger_score=float(row["challenger_score"]),
        champion_score=None if row["champion_score"] is None else float(row["champion_score"]),
        challenger_metrics=detail.get("challenger_metrics", {}),
        champion_metrics=detail.get("champion_metrics", {}),
        tolerance=float(row["tolerance"]),
        allowed=bool(row["allowed"]),
        reasons=list(row["reasons"] or []),
        run_id=row["run_id"],
        task=str(detail.get("task", "")),
        label=str(detail.get("label", "")),
        evaluated_rows=int(detail.get("evaluated_rows", 0)),
        holdout_rows=int(detail.get("holdout_rows", 0)),
        feedback_rows=int(detail.get("feedback_rows", 0)),
        data_digest=row["data_digest"],
        data_urn=row["data_urn"],
        recorded_by=row["recorded_by"],
        recorded_at=row["recorded_at"],
    )
