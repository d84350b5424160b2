"""Logged models: a model's files logged by a run (or on their own) before any
registration, as MLflow 3's `log_model` creates them (`m-<hex>` ids). Authorised and
audited like every tracking call; their files are a tree of their own in the blob store."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, Field
from sqlalchemy import Connection, select

from meshops.kernel.db import utcnow
from meshops.kernel.errors import InvalidInput, NotFound
from meshops.kernel.home import Context
from meshops.kernel.urn import Urn
from meshops.tracking import store
from meshops.tracking.models import (
    PARAM_VALUE_MAX,
    TAG_VALUE_MAX,
    Artifact,
    check_artifact_path,
    check_key,
    check_name,
    check_value,
)

STATUSES = ("PENDING", "READY", "FAILED")
MAX_MODELS_PAGE = 1_000


class LoggedModel(BaseModel):
    id: str
    experiment_id: str
    run_id: str | None = None
    name: str
    model_type: str | None = None
    status: str = "PENDING"
    status_message: str | None = None
    params: dict[str, str] = Field(default_factory=dict)
    tags: dict[str, str] = Field(default_factory=dict)
    user: str
    created_at: datetime
    updated_at: datetime
    lifecycle_stage: str = "active"

    @property
    def urn(self) -> str:
        return str(Urn.of("artifact", self.id))


def _model(row: Any) -> LoggedModel:
    return LoggedModel(**{k: row[k] for k in LoggedModel.model_fields})


def _not_found(model_id: str) -> NotFound:
    return NotFound(
        f"no logged model with id {model_id!r}",
        {"field": "model_id", "fix": "logged model ids look like m-<32 hex digits>"},
    )


def _row(conn: Connection, model_id: str) -> dict[str, Any]:
    query = select(store.logged_models).where(store.logged_models.c.id == model_id)
    row = conn.execute(query).mappings().first()
    if row is None:
        raise _not_found(model_id)
    return dict(row)


def _clean(values: dict[str, str], field: str, limit: int) -> dict[str, str]:
    return {check_key(k, field): check_value(str(v), field, k, limit) for k, v in values.items()}


class LoggedModels:
    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def create(
        self,
        experiment_id: str,
        name: str | None = None,
        *,
        run_id: str | None = None,
        model_type: str | None = None,
        params: dict[str, str] | None = None,
        tags: dict[str, str] | None = None,
    ) -> LoggedModel:
        self.ctx.authorize("tracking.write")
        model_id = f"m-{uuid.uuid4().hex}"
        if name is not None:
            check_name(name, "model name")
        now = utcnow()
        row = {
            "id": model_id,
            "experiment_id": experiment_id,
            "run_id": run_id or None,
            "name": name or f"model-{model_id[2:10]}",
            "model_type": model_type or None,
            "status": "PENDING",
            "status_message": None,
            "params": _clean(params or {}, "param", PARAM_VALUE_MAX),
            "tags": _clean(tags or {}, "tag", TAG_VALUE_MAX),
            "user": self.ctx.actor.name,
            "created_at": now,
            "updated_at": now,
            "lifecycle_stage": "active",
        }
        with self.ctx.db.begin() as conn:
            exists = select(store.experiments.c.id).where(store.experiments.c.id == experiment_id)
            if conn.execute(exists).first() is None:
                raise NotFound(
                    f"no experiment with id {experiment_id!r}",
                    {"field": "experiment_id", "fix": "see `meshops experiments list`"},
                )
            if run_id:
                runs = store.runs.c
                if conn.execute(select(runs.id).where(runs.id == run_id)).first() is None:
                    raise NotFound(f"no run with id {run_id!r}", {"field": "source_run_id"})
            conn.execute(store.logged_models.insert().values(**row))
            self.ctx.audit(
                conn,
                "tracking.create_logged_model",
                str(Urn.of("artifact", model_id)),
                detail={"experiment_id": experiment_id, "run_id": run_id, "name": row["name"]},
            )
        return _model(row)

    def get(self, model_id: str, allow_deleted: bool = False) -> LoggedModel:
        self.ctx.authorize("tracking.read")
        with self.ctx.db.read() as conn:
            row = _row(conn, model_id)
        if row["lifecycle_stage"] != "active" and not allow_deleted:
            raise _not_found(model_id)
        return _model(row)

    def update(
        self,
        model_id: str,
        *,
        status: str | None = None,
        tags: dict[str, str] | None = None,
        params: dict[str, str] | None = None,
        delete_tag: str | None = None,
        delete: bool = False,
    ) -> LoggedModel:
        """Finalize (status READY/FAILED), set tags or params, drop a tag, or delete."""
        self.ctx.authorize("tracking.write")
        if status is not None and status not in STATUSES:
            raise InvalidInput(
                f"unknown logged model status {status!r}",
                {"field": "status", "fix": f"use one of {', '.join(STATUSES)}"},
            )
        with self.ctx.db.begin() as conn:
            row = _row(conn, model_id)
            values: dict[str, Any] = {"updated_at": utcnow()}
            if status is not None:
                values["status"] = status
            if tags:
                values["tags"] = {**row["tags"], **_clean(tags, "tag", TAG_VALUE_MAX)}
            if params:
                values["params"] = {**row["params"], **_clean(params, "param", PARAM_VALUE_MAX)}
            if delete_tag is not None:
                if delete_tag not in row["tags"]:
                    raise NotFound(
                        f"logged model {model_id} has no tag {delete_tag!r}", {"field": "key"}
                    )
                values["tags"] = {k: v for k, v in row["tags"].items() if k != delete_tag}
            if delete:
                values["lifecycle_stage"] = "deleted"
            m = store.logged_models.c
            conn.execute(store.logged_models.update().where(m.id == model_id).values(**values))
            self.ctx.audit(
                conn,
                "tracking.delete_logged_model" if delete else "tracking.update_logged_model",
                str(Urn.of("artifact", model_id)),
                detail={k: v for k, v in values.items() if k != "updated_at"},
            )
            return _model({**row, **values})

    def search(
        self,
        experiment_ids: list[str],
        max_results: int = 100,
        offset: int = 0,
    ) -> tuple[list[LoggedModel], bool]:
        """Active logged models of the experiments, newest first; (page, more)."""
        self.ctx.authorize("tracking.read")
        if not 1 <= max_results <= MAX_MODELS_PAGE:
            raise InvalidInput(
                f"max_results must be between 1 and {MAX_MODELS_PAGE}",
                {"field": "max_results", "fix": "page through results with page_token"},
            )
        m = store.logged_models.c
        query = select(store.logged_models).where(m.lifecycle_stage == "active")
        if experiment_ids:
            query = query.where(m.experiment_id.in_(experiment_ids))
        query = query.order_by(m.created_at.desc(), m.id).offset(offset).limit(max_results + 1)
        with self.ctx.db.read() as conn:
            rows = [_model(r) for r in conn.execute(query).mappings()]
        return rows[:max_results], len(rows) > max_results

    def of_runs(self, run_ids: list[str]) -> dict[str, list[str]]:
        """{run id: ids of the active models it logged, oldest first}."""
        self.ctx.authorize("tracking.read")
        out: dict[str, list[str]] = {run_id: [] for run_id in run_ids}
        m = store.logged_models.c
        with self.ctx.db.read() as conn:
            for start in range(0, len(run_ids), 500):
                chunk = run_ids[start : start + 500]
                query = (
                    select(m.run_id, m.id)
                    .where(m.run_id.in_(chunk), m.lifecycle_stage == "active")
                    .order_by(m.created_at, m.id)
                )
                for run_id, model_id in conn.execute(query):
                    out[run_id].append(model_id)
        return out

    # files ---------------------------------------------------------------------------
    def put_file(self, model_id: str, path: str, data: bytes) -> Artifact:
        self.ctx.authorize("tracking.write")
        check_artifact_path(path)
        with self.ctx.db.read() as conn:
            _row(conn, model_id)
        digest = self.ctx.blobs.put_bytes(data)
        artifact = Artifact(path=path, digest=digest, size=len(data))
        with self.ctx.db.begin() as conn:
            _row(conn, model_id)
            store.upsert(
                conn,
                store.model_artifacts,
                [{"model_id": model_id, **artifact.model_dump()}],
                ["model_id", "path"],
                ["digest", "size"],
            )
            self.ctx.audit(
                conn,
                "tracking.log_model_artifact",
                str(Urn.of("artifact", model_id)),
                detail={"path": path, "size": len(data)},
            )
        return artifact

    def list_files(self, model_id: str, prefix: str = "") -> list[Artifact]:
        self.ctx.authorize("tracking.read")
        a = store.model_artifacts.c
        query = select(a.path, a.digest, a.size).where(a.model_id == model_id).order_by(a.path)
        if prefix:
            query = query.where(a.path.startswith(prefix, autoescape=True))
        with self.ctx.db.read() as conn:
            _row(conn, model_id)
            return [Artifact(path=p, digest=d, size=s) for p, d, s in conn.execute(query)]

    def read_file(self, model_id: str, path: str) -> bytes:
        found = [f for f in self.list_files(model_id, path) if f.path == path]
        if not found:
            raise NotFound(
                f"logged model {model_id} has no file {path!r}",
                {"field": "path", "fix": "list the model's files first"},
            )
        return self.ctx.blobs.get_bytes(found[0].digest)
