"""`meshops import mlflow`: copy an existing MLflow tracking store into meshops.

Two kinds of source, read without the mlflow library:

- a **database URI** (`sqlite:///mlflow.db`, `postgresql://...`, `mysql://...`): MLflow's
  own tables (experiments, experiment_tags, runs, params, tags, metrics, registered_models,
  registered_model_tags, model_versions, model_version_tags, registered_model_aliases,
  logged_models) read with SQLAlchemy Core (reflected, so older and newer schemas work);
  artifacts are read from the paths the store recorded (`file://...`), or under
  `--artifacts ROOT` for `mlflow-artifacts:/...` locations;
- a **server URL** (`http(s)://host:5000`): MLflow's REST API (`/api/2.0/mlflow/...`) and
  its artifact proxy (`/api/2.0/mlflow-artifacts/...`) through httpx; MLFLOW_TRACKING_TOKEN
  or MLFLOW_TRACKING_USERNAME/PASSWORD authenticate, as for the MLflow client.

Everything is written through meshops's tracking and registry services (the SDK: embedded or
over HTTP), so it is authorised and audited as the importing user. Each imported object
carries its MLflow identity as tags (`mlflow.source.experiment_id`, `mlflow.source.run_id`,
`mlflow.source.version`); a second import finds them and copies nothing twice. Aliases are
set through `set_alias`, so the promotion gate decides on each exactly as for any alias
move; a refused alias is skipped with the gate's message.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, unquote, urlparse

from meshops.kernel.errors import (
    Forbidden,
    InvalidInput,
    MeshopsError,
    NotFound,
    Unauthenticated,
)
from meshops.tracking.models import (
    DEFAULT_EXPERIMENT,
    KEY_PATTERN,
    NAME_MAX,
    PARAM_VALUE_MAX,
    TAG_VALUE_MAX,
    RunStatus,
)

if TYPE_CHECKING:
    import httpx
    import sqlalchemy as sa

    from meshops.registry.interface import Registry
    from meshops.registry.models import ModelFile, ModelVersion
    from meshops.tracking.interface import Tracking
    from meshops.tracking.models import Run

# Tags that carry the MLflow identity of what was imported.
EXPERIMENT_ID_TAG = "mlflow.source.experiment_id"
RUN_ID_TAG = "mlflow.source.run_id"
START_TIME_TAG = "mlflow.source.start_time"  # epoch milliseconds, as MLflow records them
END_TIME_TAG = "mlflow.source.end_time"
USER_TAG = "mlflow.source.user"
STATUS_TAG = "mlflow.source.status"
VERSION_TAG = "mlflow.source.version"
STAGE_TAG = "mlflow.source.stage"  # MLflow's deprecated stages; meshops has aliases
SOURCE_TAG = "mlflow.source.model_uri"
IMPORTED_TAGS = {
    EXPERIMENT_ID_TAG,
    RUN_ID_TAG,
    START_TIME_TAG,
    END_TIME_TAG,
    USER_TAG,
    STATUS_TAG,
}

KINDS = (
    "experiments",
    "runs",
    "params",
    "metrics",
    "tags",
    "artifacts",
    "models",
    "versions",
    "aliases",
)

# Bounds of one import (the CLI checks its options against these).
MAX_RUNS_LIMIT = 1_000_000
MAX_ARTIFACT_BYTES_LIMIT = 10 * 1024**3
METRIC_BATCH = 10_000  # metric values per write
PAGE = 1000  # REST page size
HTTP_TIMEOUT = 120.0


# What the importer reads -------------------------------------------------------------


@dataclass
class SourceExperiment:
    id: str
    name: str
    lifecycle_stage: str = "active"
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class SourceRun:
    id: str
    experiment_id: str
    name: str
    status: str
    start_time: int | None  # epoch ms
    end_time: int | None
    user: str
    lifecycle_stage: str
    artifact_uri: str
    params: dict[str, str] = field(default_factory=dict)
    tags: dict[str, str] = field(default_factory=dict)
    latest_metrics: dict[str, float] = field(default_factory=dict)


@dataclass
class SourceMetric:
    key: str
    value: float
    step: int
    timestamp: int  # epoch ms


@dataclass
class SourceVersion:
    name: str
    version: int
    description: str
    source: str
    storage_location: str
    run_id: str
    status: str
    stage: str
    tags: dict[str, str] = field(default_factory=dict)


@dataclass
class SourceModel:
    name: str
    description: str
    tags: dict[str, str] = field(default_factory=dict)
    aliases: dict[str, int] = field(default_factory=dict)


@dataclass
class SourceFile:
    path: str  # relative to the folder listed
    size: int
    read: Callable[[], bytes]


# What the importer reports -----------------------------------------------------------


@dataclass
class Skip:
    kind: str
    id: str
    reason: str


@dataclass
class KindCounts:
    copied: int = 0
    unchanged: int = 0
    changed: int = 0
    skipped: int = 0


@dataclass
class ImportReport:
    source: str
    dry_run: bool
    counts: dict[str, KindCounts] = field(
        default_factory=lambda: {kind: KindCounts() for kind in KINDS}
    )
    skipped: list[Skip] = field(default_factory=list)
    changed: list[Skip] = field(default_factory=list)
    run_ids: dict[str, str] = field(default_factory=dict)  # MLflow run id -> meshops run id
    versions: dict[str, int] = field(default_factory=dict)  # "name/3" -> meshops version

    def copied(self, kind: str, n: int = 1) -> None:
        self.counts[kind].copied += n

    def unchanged(self, kind: str, n: int = 1) -> None:
        self.counts[kind].unchanged += n

    def skip(self, kind: str, ident: str, reason: str, n: int = 1) -> None:
        self.counts[kind].skipped += n
        self.skipped.append(Skip(kind, ident, reason))

    def change(self, kind: str, ident: str, what: str) -> None:
        self.counts[kind].changed += 1
        self.changed.append(Skip(kind, ident, what))

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "dry_run": self.dry_run,
            "counts": {k: vars(v) for k, v in self.counts.items()},
            "skipped": [vars(s) for s in self.skipped],
            "changed": [vars(s) for s in self.changed],
            "run_ids": self.run_ids,
            "versions": self.versions,
        }


Progress = Callable[[str, int, int], None]  # (what, done, total)


def _no_progress(what: str, done: int, total: int) -> None:
    return None


# Sources -----------------------------------------------------------------------------


class Source:
    """What an MLflow store holds, read-only."""

    uri: str

    def experiments(self) -> list[SourceExperiment]:
        raise NotImplementedError

    def runs(self, experiment_id: str) -> list[SourceRun]:
        raise NotImplementedError

    def metric_history(self, run: SourceRun) -> list[SourceMetric]:
        raise NotImplementedError

    def run_artifacts(self, run: SourceRun) -> Iterator[SourceFile]:
        raise NotImplementedError

    def models(self) -> list[SourceModel]:
        raise NotImplementedError

    def versions(self, name: str) -> list[SourceVersion]:
        raise NotImplementedError

    def version_files(self, version: SourceVersion) -> Iterator[SourceFile]:
        raise NotImplementedError

    def close(self) -> None:
        return None


def _local_files(root: Path) -> Iterator[SourceFile]:
    if not root.is_dir():
        return
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        yield SourceFile(path.relative_to(root).as_posix(), path.stat().st_size, path.read_bytes)


class _Locations:
    """Turns the artifact locations an MLflow store recorded into files."""

    def __init__(self, artifacts_root: Path | None, http: httpx.Client | None = None) -> None:
        self.root = artifacts_root
        self.http = http

    def files(self, location: str) -> Iterator[SourceFile]:
        parsed = urlparse(location)
        if parsed.scheme in ("", "file"):
            path = Path(unquote(parsed.path) if parsed.scheme == "file" else location)
            if not path.exists() and self.root is not None:
                # The store was moved: the same tail under ROOT (…/<exp>/<run>/artifacts).
                tail = _tail_under_root(path)
                path = self.root / tail if tail else path
            if not path.exists():
                raise _unreadable(location, "the folder does not exist on this machine")
            yield from _local_files(path)
            return
        if parsed.scheme == "mlflow-artifacts":
            rel = parsed.path.lstrip("/")
            if self.http is not None:
                yield from self._proxy_files(rel, "")
                return
            if self.root is None:
                raise _unreadable(
                    location, "pass --artifacts ROOT (the server's --artifacts-destination)"
                )
            yield from _local_files(self.root / rel)
            return
        raise _unreadable(location, f"the {parsed.scheme}:// artifact store is not read")

    def _proxy_files(self, base: str, sub: str) -> Iterator[SourceFile]:
        assert self.http is not None
        path = f"{base}/{sub}" if sub else base
        answer = _get_json(self.http, "/api/2.0/mlflow-artifacts/artifacts", {"path": path})
        for entry in answer.get("files", []):
            rel = f"{sub}/{entry['path']}" if sub else str(entry["path"])
            if entry.get("is_dir"):
                yield from self._proxy_files(base, rel)
                continue
            url = "/api/2.0/mlflow-artifacts/artifacts/" + quote(f"{base}/{rel}")
            yield SourceFile(rel, int(entry.get("file_size") or 0), _downloader(self.http, url))


def _tail_under_root(path: Path) -> str | None:
    parts = path.parts
    for marker in ("artifacts",):
        if marker in parts:
            i = len(parts) - 1 - parts[::-1].index(marker)
            return "/".join(parts[max(i - 2, 0) :])
    return None


def _downloader(http: httpx.Client, url: str) -> Callable[[], bytes]:
    def read() -> bytes:
        response = http.get(url)
        response.raise_for_status()
        return response.content

    return read


def _unreadable(location: str, why: str) -> InvalidInput:
    return InvalidInput(
        f"cannot read artifacts at {location}: {why}",
        {"field": "artifacts", "location": location, "fix": "pass --artifacts ROOT"},
    )


# The database source -------------------------------------------------------------------

_TABLES = (
    "experiments",
    "experiment_tags",
    "runs",
    "params",
    "tags",
    "metrics",
    "latest_metrics",
    "registered_models",
    "registered_model_tags",
    "model_versions",
    "model_version_tags",
    "registered_model_aliases",
    "logged_models",
)


class SqlSource(Source):
    """An MLflow tracking database, read with SQLAlchemy Core."""

    def __init__(self, url: str, artifacts_root: Path | None) -> None:
        import sqlalchemy as sa

        self.uri = _redact(url)
        try:
            self.engine = sa.create_engine(url)
            present = set(sa.inspect(self.engine).get_table_names())
        except Exception as exc:  # a driver missing, a wrong host ...
            raise InvalidInput(
                f"cannot open the MLflow database {self.uri}: {type(exc).__name__}: {exc}",
                {"field": "from", "fix": "check the URI (and install its driver)"},
            ) from exc
        needed = {"experiments", "runs", "metrics", "params", "tags"}
        columns = (
            {c["name"] for c in sa.inspect(self.engine).get_columns("runs")}
            if "runs" in present
            else set()
        )
        if not needed <= present or "run_uuid" not in columns:
            self.engine.dispose()
            raise InvalidInput(
                f"{self.uri} is not an MLflow tracking database (no experiments/runs tables)",
                {"field": "from", "fix": "pass the --backend-store-uri of the MLflow server"},
            )
        self.meta = sa.MetaData()
        self.meta.reflect(self.engine, only=[t for t in _TABLES if t in present])
        self.t = self.meta.tables
        self.locations = _Locations(artifacts_root)

    def close(self) -> None:
        self.engine.dispose()

    def _rows(self, query: sa.Select[Any]) -> list[Any]:
        with self.engine.connect() as conn:
            return list(conn.execute(query).mappings())

    def _workspace(self, table: sa.Table) -> Any:
        return table.c.workspace == "default" if "workspace" in table.c else None

    def experiments(self) -> list[SourceExperiment]:
        import sqlalchemy as sa

        e = self.t["experiments"]
        query = sa.select(e).order_by(e.c.experiment_id)
        if (ws := self._workspace(e)) is not None:
            query = query.where(ws)
        tags: dict[str, dict[str, str]] = {}
        if "experiment_tags" in self.t:
            et = self.t["experiment_tags"]
            for row in self._rows(sa.select(et)):
                tags.setdefault(str(row["experiment_id"]), {})[row["key"]] = row["value"] or ""
        return [
            SourceExperiment(
                id=str(r["experiment_id"]),
                name=r["name"],
                lifecycle_stage=r["lifecycle_stage"] or "active",
                tags=tags.get(str(r["experiment_id"]), {}),
            )
            for r in self._rows(query)
        ]

    def runs(self, experiment_id: str) -> list[SourceRun]:
        import sqlalchemy as sa

        r, p, tg = self.t["runs"], self.t["params"], self.t["tags"]
        rows = self._rows(
            sa.select(r).where(r.c.experiment_id == int(experiment_id)).order_by(r.c.start_time)
        )
        ids = sa.select(r.c.run_uuid).where(r.c.experiment_id == int(experiment_id))
        params: dict[str, dict[str, str]] = {}
        for row in self._rows(sa.select(p).where(p.c.run_uuid.in_(ids))):
            params.setdefault(row["run_uuid"], {})[row["key"]] = row["value"]
        tags: dict[str, dict[str, str]] = {}
        for row in self._rows(sa.select(tg).where(tg.c.run_uuid.in_(ids))):
            tags.setdefault(row["run_uuid"], {})[row["key"]] = row["value"] or ""
        latest: dict[str, dict[str, float]] = {}
        if "latest_metrics" in self.t:
            lm = self.t["latest_metrics"]
            for row in self._rows(sa.select(lm).where(lm.c.run_uuid.in_(ids))):
                value = math.nan if row.get("is_nan") else float(row["value"])
                latest.setdefault(row["run_uuid"], {})[row["key"]] = value
        return [
            SourceRun(
                id=row["run_uuid"],
                experiment_id=experiment_id,
                name=row["name"] or "",
                status=row["status"] or "FINISHED",
                start_time=row["start_time"],
                end_time=row["end_time"],
                user=row["user_id"] or "",
                lifecycle_stage=row["lifecycle_stage"] or "active",
                artifact_uri=row["artifact_uri"] or "",
                params=params.get(row["run_uuid"], {}),
                tags=tags.get(row["run_uuid"], {}),
                latest_metrics=latest.get(row["run_uuid"], {}),
            )
            for row in rows
        ]

    def metric_history(self, run: SourceRun) -> list[SourceMetric]:
        import sqlalchemy as sa

        m = self.t["metrics"]
        query = (
            sa.select(m)
            .where(m.c.run_uuid == run.id)
            .order_by(m.c.key, m.c.step, m.c.timestamp, m.c.value)
        )
        return [
            SourceMetric(
                key=row["key"],
                value=math.nan if row.get("is_nan") else float(row["value"]),
                step=int(row["step"] or 0),
                timestamp=int(row["timestamp"] or 0),
            )
            for row in self._rows(query)
        ]

    def run_artifacts(self, run: SourceRun) -> Iterator[SourceFile]:
        if not run.artifact_uri:
            return iter(())
        return self.locations.files(run.artifact_uri)

    def models(self) -> list[SourceModel]:
        import sqlalchemy as sa

        if "registered_models" not in self.t:
            return []
        rm = self.t["registered_models"]
        query = sa.select(rm).order_by(rm.c.name)
        if (ws := self._workspace(rm)) is not None:
            query = query.where(ws)
        models = {
            r["name"]: SourceModel(r["name"], r["description"] or "") for r in self._rows(query)
        }
        for table, target in (("registered_model_tags", "tags"), ("registered_model_aliases", "")):
            if table not in self.t:
                continue
            tb = self.t[table]
            q = sa.select(tb)
            if (ws := self._workspace(tb)) is not None:
                q = q.where(ws)
            for row in self._rows(q):
                model = models.get(row["name"])
                if model is None:
                    continue
                if target == "tags":
                    model.tags[row["key"]] = row["value"] or ""
                else:
                    model.aliases[row["alias"]] = int(row["version"])
        return list(models.values())

    def versions(self, name: str) -> list[SourceVersion]:
        import sqlalchemy as sa

        mv = self.t["model_versions"]
        query = sa.select(mv).where(mv.c.name == name).order_by(mv.c.version)
        if (ws := self._workspace(mv)) is not None:
            query = query.where(ws)
        tags: dict[int, dict[str, str]] = {}
        if "model_version_tags" in self.t:
            mt = self.t["model_version_tags"]
            q = sa.select(mt).where(mt.c.name == name)
            if (ws := self._workspace(mt)) is not None:
                q = q.where(ws)
            for row in self._rows(q):
                tags.setdefault(int(row["version"]), {})[row["key"]] = row["value"] or ""
        return [
            SourceVersion(
                name=name,
                version=int(r["version"]),
                description=r["description"] or "",
                source=r["source"] or "",
                storage_location=r.get("storage_location") or "",
                run_id=r["run_id"] or "",
                status=r["status"] or "READY",
                stage=r["current_stage"] or "None",
                tags=tags.get(int(r["version"]), {}),
            )
            for r in self._rows(query)
            if (r.get("current_stage") or "") != "Deleted_Internal"
        ]

    def version_files(self, version: SourceVersion) -> Iterator[SourceFile]:
        return self.locations.files(self._version_location(version))

    def _version_location(self, version: SourceVersion) -> str:
        import sqlalchemy as sa

        if version.storage_location:
            return version.storage_location
        source = version.source
        if source.startswith("runs:/"):
            run_id, _, sub = source[len("runs:/") :].partition("/")
            r = self.t["runs"]
            rows = self._rows(sa.select(r.c.artifact_uri).where(r.c.run_uuid == run_id))
            if rows:
                return f"{rows[0]['artifact_uri'].rstrip('/')}/{sub}".rstrip("/")
        if source.startswith("models:/m-") and "logged_models" in self.t:
            lm = self.t["logged_models"]
            model_id = source[len("models:/") :].strip("/")
            rows = self._rows(sa.select(lm).where(lm.c.model_id == model_id))
            if rows:
                return str(rows[0]["artifact_location"])
        return source


# The REST source -----------------------------------------------------------------------


def _get_json(http: httpx.Client, path: str, params: dict[str, Any]) -> dict[str, Any]:
    response = http.get(path, params=params)
    return _answer(response, path)


def _post_json(http: httpx.Client, path: str, body: dict[str, Any]) -> dict[str, Any]:
    return _answer(http.post(path, json=body), path)


def _answer(response: httpx.Response, path: str) -> dict[str, Any]:
    if response.status_code >= 400:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        raise InvalidInput(
            f"the MLflow server answered {response.status_code} to {path}: {message[:500]}",
            {
                "field": "from",
                "status": response.status_code,
                "fix": "check the URL and MLFLOW_TRACKING_TOKEN / MLFLOW_TRACKING_USERNAME",
            },
        )
    data = response.json()
    return data if isinstance(data, dict) else {}


def _pairs(items: list[dict[str, Any]] | None) -> dict[str, str]:
    return {str(i["key"]): str(i.get("value", "")) for i in items or []}


class RestSource(Source):
    """An MLflow tracking server, read through its REST API."""

    def __init__(self, url: str, artifacts_root: Path | None) -> None:
        import httpx

        self.uri = _redact(url)
        headers: dict[str, str] = {}
        auth: tuple[str, str] | None = None
        if token := os.environ.get("MLFLOW_TRACKING_TOKEN"):
            headers["Authorization"] = f"Bearer {token}"
        elif user := os.environ.get("MLFLOW_TRACKING_USERNAME"):
            auth = (user, os.environ.get("MLFLOW_TRACKING_PASSWORD", ""))
        self.http = httpx.Client(
            base_url=url.rstrip("/"), headers=headers, auth=auth, timeout=HTTP_TIMEOUT
        )
        self.locations = _Locations(artifacts_root, self.http)
        try:
            self.http.get("/health").raise_for_status()
        except httpx.HTTPError as exc:
            self.http.close()
            raise InvalidInput(
                f"cannot reach the MLflow server at {self.uri}: {exc}",
                {"field": "from", "fix": "check the URL (e.g. http://localhost:5000)"},
            ) from exc

    def close(self) -> None:
        self.http.close()

    def experiments(self) -> list[SourceExperiment]:
        found: list[SourceExperiment] = []
        token: str | None = None
        while True:
            body: dict[str, Any] = {"max_results": PAGE, "view_type": "ALL"}
            if token:
                body["page_token"] = token
            page = _post_json(self.http, "/api/2.0/mlflow/experiments/search", body)
            for e in page.get("experiments", []):
                found.append(
                    SourceExperiment(
                        id=str(e["experiment_id"]),
                        name=e["name"],
                        lifecycle_stage=e.get("lifecycle_stage", "active"),
                        tags=_pairs(e.get("tags")),
                    )
                )
            token = page.get("next_page_token")
            if not token:
                return sorted(found, key=lambda x: int(x.id) if x.id.isdigit() else 0)

    def runs(self, experiment_id: str) -> list[SourceRun]:
        found: list[SourceRun] = []
        token: str | None = None
        while True:
            body: dict[str, Any] = {
                "experiment_ids": [experiment_id],
                "max_results": PAGE,
                "run_view_type": "ALL",
                "order_by": ["attributes.start_time ASC"],
            }
            if token:
                body["page_token"] = token
            page = _post_json(self.http, "/api/2.0/mlflow/runs/search", body)
            for r in page.get("runs", []):
                info, data = r["info"], r.get("data", {})
                found.append(
                    SourceRun(
                        id=info["run_id"],
                        experiment_id=experiment_id,
                        name=info.get("run_name", ""),
                        status=info.get("status", "FINISHED"),
                        start_time=_int_or_none(info.get("start_time")),
                        end_time=_int_or_none(info.get("end_time")),
                        user=info.get("user_id", ""),
                        lifecycle_stage=info.get("lifecycle_stage", "active"),
                        artifact_uri=info.get("artifact_uri", ""),
                        params=_pairs(data.get("params")),
                        tags=_pairs(data.get("tags")),
                        latest_metrics={
                            m["key"]: _float(m.get("value")) for m in data.get("metrics", [])
                        },
                    )
                )
            token = page.get("next_page_token")
            if not token:
                return found

    def metric_history(self, run: SourceRun) -> list[SourceMetric]:
        history: list[SourceMetric] = []
        for key in sorted(run.latest_metrics):
            token: str | None = None
            while True:
                params: dict[str, Any] = {"run_id": run.id, "metric_key": key}
                params["max_results"] = 25_000
                if token:
                    params["page_token"] = token
                page = _get_json(self.http, "/api/2.0/mlflow/metrics/get-history", params)
                history.extend(
                    SourceMetric(
                        key=key,
                        value=_float(m.get("value")),
                        step=int(m.get("step", 0)),
                        timestamp=int(m.get("timestamp", 0)),
                    )
                    for m in page.get("metrics", [])
                )
                token = page.get("next_page_token")
                if not token:
                    break
        history.sort(key=lambda m: (m.key, m.step, m.timestamp, m.value))
        return history

    def run_artifacts(self, run: SourceRun) -> Iterator[SourceFile]:
        # The server lists and sends its runs' files, wherever its artifact store is.
        return self._listed(run.id, "")

    def _listed(self, run_id: str, sub: str) -> Iterator[SourceFile]:
        params = {"run_id": run_id, "path": sub} if sub else {"run_id": run_id}
        page = _get_json(self.http, "/api/2.0/mlflow/artifacts/list", params)
        for entry in page.get("files", []):
            if entry.get("is_dir"):
                yield from self._listed(run_id, entry["path"])
                continue
            url = "/get-artifact?" + "&".join(
                [f"path={quote(entry['path'])}", f"run_uuid={quote(run_id)}"]
            )
            yield SourceFile(
                entry["path"], int(entry.get("file_size") or 0), _downloader(self.http, url)
            )

    def models(self) -> list[SourceModel]:
        found: list[SourceModel] = []
        token: str | None = None
        while True:
            params: dict[str, Any] = {"max_results": PAGE}
            if token:
                params["page_token"] = token
            page = _get_json(self.http, "/api/2.0/mlflow/registered-models/search", params)
            for m in page.get("registered_models", []):
                found.append(
                    SourceModel(
                        name=m["name"],
                        description=m.get("description", ""),
                        tags=_pairs(m.get("tags")),
                        aliases={a["alias"]: int(a["version"]) for a in m.get("aliases", [])},
                    )
                )
            token = page.get("next_page_token")
            if not token:
                return sorted(found, key=lambda x: x.name)

    def versions(self, name: str) -> list[SourceVersion]:
        found: list[SourceVersion] = []
        token: str | None = None
        escaped = name.replace("'", "\\'")
        while True:
            params: dict[str, Any] = {"filter": f"name='{escaped}'", "max_results": 10_000}
            if token:
                params["page_token"] = token
            page = _get_json(self.http, "/api/2.0/mlflow/model-versions/search", params)
            for v in page.get("model_versions", []):
                found.append(
                    SourceVersion(
                        name=name,
                        version=int(v["version"]),
                        description=v.get("description", ""),
                        source=v.get("source", ""),
                        storage_location=v.get("storage_location", ""),
                        run_id=v.get("run_id", ""),
                        status=v.get("status", "READY"),
                        stage=v.get("current_stage", "None"),
                        tags=_pairs(v.get("tags")),
                    )
                )
            token = page.get("next_page_token")
            if not token:
                return sorted(found, key=lambda x: x.version)

    def version_files(self, version: SourceVersion) -> Iterator[SourceFile]:
        page = _get_json(
            self.http,
            "/api/2.0/mlflow/model-versions/get-download-uri",
            {"name": version.name, "version": str(version.version)},
        )
        return self.locations.files(page.get("artifact_uri") or version.source)


def _int_or_none(value: Any) -> int | None:
    return None if value in (None, "") else int(value)


def _float(value: Any) -> float:
    if isinstance(value, str):  # MLflow's JSON writes NaN / Infinity as strings
        return float(value)
    return math.nan if value is None else float(value)


def _redact(uri: str) -> str:
    """The URI without a password, for messages, reports and tags."""
    parsed = urlparse(uri)
    if parsed.password:
        netloc = parsed.netloc.replace(f":{parsed.password}@", ":***@")
        return parsed._replace(netloc=netloc).geturl()
    return uri


def open_source(uri: str, artifacts_root: str | Path | None = None) -> Source:
    """A database URI or a server URL."""
    root = Path(artifacts_root).expanduser() if artifacts_root else None
    if root is not None and not root.is_dir():
        raise InvalidInput(
            f"--artifacts {root} is not a folder",
            {"field": "artifacts", "fix": "pass the MLflow artifact root (a local folder)"},
        )
    scheme = urlparse(uri).scheme.lower()
    if scheme in ("http", "https"):
        return RestSource(uri, root)
    if re.match(r"^(sqlite|postgresql|postgres|mysql|mssql)(\+\w+)?$", scheme):
        if scheme.startswith("postgres") and not scheme.startswith("postgresql"):
            uri = "postgresql" + uri[len("postgres") :]
        if scheme in ("postgres", "postgresql") and _has("psycopg") and not _has("psycopg2"):
            uri = "postgresql+psycopg" + uri[uri.index(":") :]  # MLflow's URIs name no driver
        return SqlSource(uri, root)
    raise InvalidInput(
        f"cannot import from {_redact(uri)!r}: pass an MLflow server URL or its database URI",
        {
            "field": "from",
            "fix": "pass an MLflow server URL (http://host:5000) or its database URI "
            "(sqlite:///mlflow.db, postgresql://user@host/db)",
        },
    )


# The import ----------------------------------------------------------------------------


def _has(module: str) -> bool:
    import importlib.util

    return importlib.util.find_spec(module) is not None


def _target_name(exp: SourceExperiment) -> str:
    """MLflow's default experiment ("0", "Default") is meshops's `default`, as in
    meshops's MLflow API; every other experiment keeps its name."""
    if exp.id == "0" and exp.name == "Default":
        return DEFAULT_EXPERIMENT
    return exp.name


def _valid_key(key: str) -> bool:
    return bool(KEY_PATTERN.match(key)) and ".." not in key.split("/")


class MlflowImporter:
    """Copies one MLflow store into meshops through the tracking and registry services."""

    def __init__(
        self,
        source: Source,
        tracking: Tracking,
        registry: Registry,
        *,
        dry_run: bool = False,
        max_runs: int = 100_000,
        max_artifact_bytes: int = 1024**3,
        progress: Progress = _no_progress,
    ) -> None:
        if not 1 <= max_runs <= MAX_RUNS_LIMIT:
            raise InvalidInput(
                f"max_runs must be 1..{MAX_RUNS_LIMIT}", {"field": "max_runs", "value": max_runs}
            )
        if not 1 <= max_artifact_bytes <= MAX_ARTIFACT_BYTES_LIMIT:
            raise InvalidInput(
                f"max_artifact_bytes must be 1..{MAX_ARTIFACT_BYTES_LIMIT}",
                {"field": "max_artifact_bytes", "value": max_artifact_bytes},
            )
        self.source = source
        self.tracking = tracking
        self.registry = registry
        self.dry_run = dry_run
        self.max_runs = max_runs
        self.max_artifact_bytes = max_artifact_bytes
        self.progress = progress
        self.report = ImportReport(source.uri, dry_run)
        self._runs_seen = 0

    def run(self) -> ImportReport:
        self._import_tracking()
        self._import_registry()
        return self.report

    # tracking ------------------------------------------------------------------------
    def _import_tracking(self) -> None:
        experiments = self.source.experiments()
        existing = {e.tags.get(EXPERIMENT_ID_TAG): e for e in self.tracking.list_experiments()}
        by_name = {e.name: e for e in self.tracking.list_experiments()}
        for done, exp in enumerate(experiments, 1):
            self.progress(f"experiment {exp.name}", done - 1, len(experiments))
            if exp.lifecycle_stage != "active":
                self.report.skip("experiments", exp.id, "deleted in MLflow")
                continue
            if not exp.name.strip() or len(exp.name) > NAME_MAX:
                self.report.skip("experiments", exp.id, f"name {exp.name[:80]!r} is not valid")
                continue
            target = existing.get(exp.id) or by_name.get(_target_name(exp))
            tags = {**self._clean_tags("experiment " + exp.id, exp.tags), EXPERIMENT_ID_TAG: exp.id}
            if target is None:
                if not self.dry_run:
                    self.tracking.create_experiment(_target_name(exp), tags=tags)
                self.report.copied("experiments")
            else:
                self.report.unchanged("experiments")
            self._import_runs(exp)
            self.progress(f"experiment {exp.name}", done, len(experiments))

    def _clean_tags(self, owner: str, tags: dict[str, str]) -> dict[str, str]:
        clean: dict[str, str] = {}
        for key, value in tags.items():
            if not _valid_key(key):
                self.report.skip("tags", f"{owner} {key}", "the key is not a valid meshops key")
            elif len(value) > TAG_VALUE_MAX:
                self.report.skip(
                    "tags", f"{owner} {key}", f"{len(value)} characters > {TAG_VALUE_MAX}"
                )
            else:
                clean[key] = value
        return clean

    def _existing_runs(self, experiment: str) -> dict[str, Run]:
        """The runs of `experiment` imported before, by their MLflow id."""
        found: dict[str, Run] = {}
        try:
            self.tracking.get_experiment(experiment)
        except NotFound:
            return found
        token: str | None = None
        while True:
            page = self.tracking.search_runs([experiment], "", [], 1000, token)
            for run in page.runs:
                if RUN_ID_TAG in run.tags:
                    found[run.tags[RUN_ID_TAG]] = run
            token = page.next_page_token
            if not token:
                return found

    def _import_runs(self, exp: SourceExperiment) -> None:
        runs = self.source.runs(exp.id)
        existing = self._existing_runs(_target_name(exp))
        for i, run in enumerate(runs):
            self.progress(f"{exp.name}: run {run.id[:8]}", i, len(runs))
            if run.lifecycle_stage != "active":
                self.report.skip("runs", run.id, "deleted in MLflow")
                continue
            if self._runs_seen >= self.max_runs:
                self.report.skip("runs", run.id, f"--max-runs {self.max_runs} reached")
                continue
            self._runs_seen += 1
            if run.id in existing:
                self._compare_run(run, existing[run.id])
                continue
            self._copy_run(exp, run)

    def _run_tags(self, run: SourceRun) -> dict[str, str]:
        tags = self._clean_tags("run " + run.id, run.tags)
        tags[RUN_ID_TAG] = run.id
        tags[STATUS_TAG] = run.status
        if run.user:
            tags[USER_TAG] = run.user
        if run.start_time is not None:
            tags[START_TIME_TAG] = str(run.start_time)
        if run.end_time is not None:
            tags[END_TIME_TAG] = str(run.end_time)
        return tags

    def _clean_params(self, run: SourceRun) -> dict[str, str]:
        params: dict[str, str] = {}
        for key, value in run.params.items():
            if not _valid_key(key):
                self.report.skip("params", f"run {run.id} {key}", "the key is not valid")
            elif len(value) > PARAM_VALUE_MAX:
                self.report.skip(
                    "params",
                    f"run {run.id} {key}",
                    f"{len(value)} characters > {PARAM_VALUE_MAX}; set it as an artifact",
                )
            else:
                params[key] = value
        return params

    def _copy_run(self, exp: SourceExperiment, run: SourceRun) -> None:
        tags = self._run_tags(run)
        params = self._clean_params(run)
        history = self.source.metric_history(run)
        rows = [m for m in history if _valid_key(m.key)]
        if len(rows) < len(history):
            self.report.skip("metrics", run.id, "invalid metric keys", len(history) - len(rows))
        files = self._artifacts_of(run)
        name = (run.name or f"mlflow-{run.id[:8]}")[:NAME_MAX]
        if self.dry_run:
            self.report.copied("runs")
            self.report.copied("params", len(params))
            self.report.copied("tags", len(tags))
            self.report.copied("metrics", len(rows))
            self.report.copied("artifacts", len(files))
            return
        # The MLflow id tag is written last: a run whose copy failed midway is never taken
        # for a finished import, so the next import copies it again.
        first_tags = {k: v for k, v in tags.items() if k != RUN_ID_TAG}
        created = self.tracking.create_run(
            _target_name(exp), name, tags=first_tags, capture_environment=False
        )
        try:
            if params:
                self.tracking.log_params(created.id, params)
            for start in range(0, len(rows), METRIC_BATCH):
                chunk = rows[start : start + METRIC_BATCH]
                self.tracking.log_metric_rows(
                    [(created.id, m.key, m.value, m.step, m.timestamp / 1000.0) for m in chunk]
                )
            for f in files:
                self.tracking.log_artifact_bytes(created.id, f.path, f.read())
            if run.status in (RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED):
                self.tracking.end_run(created.id, run.status)
            self.tracking.set_tags(created.id, {RUN_ID_TAG: run.id})
        except (Forbidden, Unauthenticated):
            raise
        except Exception as exc:  # a file that cannot be read, a value meshops refuses ...
            why = exc.message if isinstance(exc, MeshopsError) else f"{type(exc).__name__}: {exc}"
            self._abandon(created.id, why)
            self.report.skip(
                "runs",
                run.id,
                f"copy failed: {why}; the partial copy is meshops run {created.id} (FAILED); "
                "the next import copies the run again",
            )
            return
        self.report.run_ids[run.id] = created.id
        self.report.copied("runs")
        self.report.copied("params", len(params))
        self.report.copied("tags", len(tags))
        self.report.copied("metrics", len(rows))
        self.report.copied("artifacts", len(files))

    def _abandon(self, run_id: str, why: str) -> None:
        try:
            if self.tracking.get_run(run_id).status == RunStatus.RUNNING:
                self.tracking.end_run(run_id, "FAILED", error=f"MLflow import failed: {why}")
        except MeshopsError:
            pass  # the import goes on; the report names the partial run

    def _artifacts_of(self, run: SourceRun) -> list[SourceFile]:
        try:
            listed = list(self.source.run_artifacts(run))
        except MeshopsError as exc:
            self.report.skip("artifacts", f"run {run.id}", exc.message)
            return []
        files: list[SourceFile] = []
        for f in listed:
            if f.size > self.max_artifact_bytes:
                self.report.skip(
                    "artifacts",
                    f"run {run.id} {f.path}",
                    f"{f.size} bytes > --max-artifact-bytes {self.max_artifact_bytes}",
                )
            else:
                files.append(f)
        return files

    def _compare_run(self, run: SourceRun, target: Run) -> None:
        """An already imported run: report what changed in MLflow since; tags are updated
        (meshops tags stay writable), params and metrics of an ended run are not."""
        self.report.run_ids[run.id] = target.id
        differences: list[str] = []
        tags = self._run_tags(run)
        new_tags = {k: v for k, v in tags.items() if target.tags.get(k) != v}
        if new_tags:
            differences.append(f"tags {sorted(new_tags)[:5]}")
            if not self.dry_run:
                self.tracking.set_tags(target.id, new_tags)
        params = {k: v for k, v in run.params.items() if target.params.get(k) != v}
        if params:
            differences.append(f"params {sorted(params)[:5]} (not copied: params are immutable)")
        metrics = [
            k
            for k, v in run.latest_metrics.items()
            if _valid_key(k) and not _same(target.metrics.get(k), v)
        ]
        if metrics:
            differences.append(f"metrics {sorted(metrics)[:5]} (not copied: the run was imported)")
        if differences:
            self.report.change("runs", run.id, "; ".join(differences))
        else:
            self.report.unchanged("runs")

    # registry ------------------------------------------------------------------------
    def _import_registry(self) -> None:
        models = self.source.models()
        for done, model in enumerate(models, 1):
            self.progress(f"model {model.name}", done - 1, len(models))
            try:
                self._import_model(model)
            except Forbidden as exc:
                self.report.skip("models", model.name, exc.message)
            self.progress(f"model {model.name}", done, len(models))

    def _import_model(self, model: SourceModel) -> None:
        tags = self._clean_tags("model " + model.name, model.tags)
        try:
            self.registry.get_model(model.name)
            self.report.unchanged("models")
            known = {v.tags.get(VERSION_TAG): v for v in self.registry.list_versions(model.name)}
        except NotFound:
            try:
                if not self.dry_run:
                    self.registry.create_model(model.name, model.description, tags)
            except InvalidInput as exc:
                self.report.skip("models", model.name, exc.message)
                return
            self.report.copied("models")
            known = {}
        mapping: dict[int, int] = {}
        for version in self.source.versions(model.name):
            already = known.get(str(version.version))
            if already is not None:
                mapping[version.version] = already.version
                self.report.versions[f"{model.name}/{version.version}"] = already.version
                self.report.unchanged("versions")
                continue
            created = self._copy_version(version)
            if created is not None:
                mapping[version.version] = created
                self.report.versions[f"{model.name}/{version.version}"] = created
        self._import_aliases(model, mapping)

    def _copy_version(self, version: SourceVersion) -> int | None:
        ident = f"{version.name}/{version.version}"
        if version.status != "READY":
            self.report.skip("versions", ident, f"status {version.status} in MLflow")
            return None
        try:
            files = list(self.source.version_files(version))
        except MeshopsError as exc:
            self.report.skip("versions", ident, exc.message)
            return None
        if not files:
            self.report.skip("versions", ident, f"no files at {version.source}")
            return None
        too_big = [f.path for f in files if f.size > self.max_artifact_bytes]
        if too_big:
            self.report.skip("versions", ident, f"files over --max-artifact-bytes: {too_big[:3]}")
            return None
        flavor = _flavor_for(files)
        if flavor is None:
            self.report.skip(
                "versions",
                ident,
                f"no meshops flavor reads the files {sorted(f.path for f in files)[:6]}",
            )
            return None
        run_id = self.report.run_ids.get(version.run_id) if version.run_id else None
        tags = {
            **self._clean_tags("version " + ident, version.tags),
            VERSION_TAG: str(version.version),
            SOURCE_TAG: version.source[:TAG_VALUE_MAX],
        }
        if version.run_id:
            tags[RUN_ID_TAG] = version.run_id
        if version.stage and version.stage != "None":
            tags[STAGE_TAG] = version.stage
        if self.dry_run:
            self.report.copied("versions")
            return -1
        from meshops.registry.models import ModelFile

        uploaded: list[ModelFile] = []
        for f in files:
            data = f.read()
            digest = self.registry.upload_file(data)
            uploaded.append(ModelFile(path=f.path, digest=digest, size=len(data)))
        try:
            created: ModelVersion = self.registry.register_files(
                version.name,
                uploaded,
                flavor,
                run_id=run_id,
                description=version.description[:5000],
                tags=tags,
            )
        except InvalidInput as exc:
            self.report.skip("versions", ident, exc.message)
            return None
        self.report.copied("versions")
        return created.version

    def _import_aliases(self, model: SourceModel, mapping: dict[int, int]) -> None:
        try:
            current = self.registry.get_model(model.name).aliases
        except NotFound:  # a dry run of a model not yet imported
            current = {}
        for alias, source_version in sorted(model.aliases.items()):
            ident = f"{model.name}@{alias}"
            target = mapping.get(source_version)
            if target is None:
                self.report.skip(
                    "aliases", ident, f"version {source_version} was not imported (see versions)"
                )
                continue
            if current.get(alias) == target:
                self.report.unchanged("aliases")
                continue
            if self.dry_run:
                self.report.copied("aliases")
                continue
            reason = f"imported from MLflow {self.source.uri}: @{alias} -> v{source_version}"
            try:
                self.registry.set_alias(model.name, alias, target, reason=reason[:1000])
            except (Forbidden, InvalidInput) as exc:  # the promotion gate refused
                self.report.skip("aliases", ident, f"refused: {exc.message}")
                continue
            if alias in current:
                self.report.change("aliases", ident, f"moved v{current[alias]} -> v{target}")
            else:
                self.report.copied("aliases")


def _same(a: float | None, b: float) -> bool:
    if a is None:
        return False
    return (math.isnan(a) and math.isnan(b)) or a == b


def _flavor_for(files: list[SourceFile]) -> str | None:
    """The meshops flavor of an MLflow model folder: what its MLmodel file says (skops
    sklearn, pickled sklearn under the trust rules, or any other MLflow flavor stored for
    the MLflow client), else one recognised by its file names (model.skops, model.onnx)."""
    from meshops.registry.flavors import flavor_from_files
    from meshops.registry.flavors.mlflow_model import (
        MAX_MLMODEL_BYTES,
        MLMODEL,
        flavor_of,
        parse_mlmodel,
    )

    for f in files:
        if f.path == MLMODEL and f.size <= MAX_MLMODEL_BYTES:
            try:
                return flavor_of(parse_mlmodel(f.read()))
            except InvalidInput:
                return None
    try:
        return flavor_from_files([f.path for f in files]).name
    except InvalidInput:
        return None


def import_mlflow(
    uri: str,
    tracking: Tracking,
    registry: Registry,
    *,
    artifacts: str | Path | None = None,
    dry_run: bool = False,
    max_runs: int = 100_000,
    max_artifact_bytes: int = 1024**3,
    progress: Progress = _no_progress,
) -> ImportReport:
    """Copy the MLflow store at `uri` (server URL or database URI) into meshops."""
    source = open_source(uri, artifacts)
    try:
        return MlflowImporter(
            source,
            tracking,
            registry,
            dry_run=dry_run,
            max_runs=max_runs,
            max_artifact_bytes=max_artifact_bytes,
            progress=progress,
        ).run()
    finally:
        source.close()
