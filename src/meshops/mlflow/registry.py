"""The MLflow model registry API (`/api/2.0/mlflow/registered-models/...` and
`/model-versions/...`) over meshops's registry service: an MLflow registered model IS a
meshops model, an MLflow model version IS a meshops model version (same name, same
number), authorised, gated and audited by `RegistryService` exactly as the native API.

How MLflow's ideas map to meshops's:

- `source` / `model_id` of a version: the files are copied (by digest) from the MLflow 3
  logged model (`models:/m-...`) or the run's artifacts (`runs:/...`,
  `mlflow-artifacts:/<exp>/<run>/artifacts/<path>`); the flavor is read from `MLmodel`
  (`registry.flavors.mlflow_model`), the run becomes the version's run (lineage
  run -> version). The MLflow facts are kept as the version tags `mlflow.source`,
  `mlflow.model_id`, `mlflow.run_link` (not listed as MLflow tags).
- `get-download-uri`: the logged model's (or run's) artifact URI, which the client
  downloads through the artifact proxy; so `models:/name@alias` and `models:/name/3` load.
- aliases: meshops aliases; moving one runs the promotion gate (protected aliases such as
  champion/production need a recorded champion/challenger comparison by default).
- stages (`transition-stage`, deprecated in MLflow): `Production` and `Staging` are the
  aliases `production` and `staging` (gated like any alias move); `Archived` sets the
  version's status ARCHIVED; `None` removes those two aliases from it. A version's
  `current_stage` is derived from the same facts.
- delete: meshops keeps every version for lineage and audit. Deleting a version through
  MLflow removes its aliases and archives it with the tag `mlflow.deleted`; deleting a
  registered model does that to every version and tags the model. MLflow no longer sees
  them; meshops shows them archived. Creating a deleted name again restores the model
  (new versions continue its numbering).
- rename: refused (a model's name is in every version's URN and lineage edge).
- domain: the tag `meshops.domain` given to `create_registered_model` (or set later) is
  the model's meshops domain (authorised in that domain; endpoints serving it default to
  it); reads show the domain as that tag.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from meshops.kernel.errors import Forbidden, NotFound
from meshops.kernel.home import Context
from meshops.mlflow.common import (
    MlflowApiError,
    decode_token,
    encode_token,
    int_field,
    key_values,
    kv_list,
    millis,
    model_artifact_uri,
    run_artifact_uri,
    text_field,
)
from meshops.registry.flavors.mlflow_model import MLMODEL, flavor_of, parse_mlmodel
from meshops.registry.models import (
    ModelFile,
    ModelVersion,
    RegisteredModel,
    VersionStatus,
)
from meshops.registry.service import RegistryService

Handler = Callable[[Context, dict[str, Any]], dict[str, Any]]

SOURCE_TAG = "mlflow.source"
MODEL_ID_TAG = "mlflow.model_id"
RUN_LINK_TAG = "mlflow.run_link"
DELETED_TAG = "mlflow.deleted"
# The meshops domain of a registered model, as an MLflow tag: given at creation (or set
# later, which moves the model), it is the model's domain, not a tag.
DOMAIN_TAG = "meshops.domain"
HIDDEN_TAGS = frozenset({SOURCE_TAG, MODEL_ID_TAG, RUN_LINK_TAG, DELETED_TAG})
STAGE_ALIASES = {"production": "Production", "staging": "Staging"}
STAGES = ("None", "Staging", "Production", "Archived")
MAX_MODELS_PAGE = 1_000
MAX_VERSIONS_PAGE = 200_000
MAX_FILTER = 4_000
_LOGGED_MODEL = re.compile(r"^models:/(m-[0-9a-f]{32})/?$")
_RUN_SOURCE = re.compile(r"^runs:/([0-9a-f]{32})/(.+)$")
_PROXY_SOURCE = re.compile(r"^mlflow-artifacts:/+[^/]+/([0-9a-f]{32})/artifacts/(.+)$")


def _svc(ctx: Context) -> RegistryService:
    return RegistryService(ctx)


def _version_number(data: dict[str, Any]) -> int:
    raw = data.get("version")
    text = str(raw) if raw is not None else ""
    if not text.isdigit() or int(text) < 1:
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE",
            f"Invalid value {raw!r} for parameter 'version': a version number (1, 2, ...)",
        )
    return int(text)


def _not_found_model(name: str) -> MlflowApiError:
    return MlflowApiError("RESOURCE_DOES_NOT_EXIST", f"Registered Model with name={name} not found")


def _deleted(tags: dict[str, str]) -> bool:
    return tags.get(DELETED_TAG) == "true"


def _model(svc: RegistryService, name: str) -> RegisteredModel:
    model = svc.get_model(name)
    if _deleted(model.tags):
        raise _not_found_model(name)
    return model


def _model_for(ctx: Context, svc: RegistryService, name: str, action: str) -> RegisteredModel:
    """The model a write is about: a caller who may not even read it is refused for
    `action` (the write it asked for), not for the lookup before it."""
    try:
        return _model(svc, name)
    except Forbidden:
        ctx.authorize(action)
        raise


def _version(svc: RegistryService, name: str, version: int) -> ModelVersion:
    _model(svc, name)
    found = svc.get_version(name, version)
    if _deleted(found.tags):
        raise MlflowApiError(
            "RESOURCE_DOES_NOT_EXIST",
            f"Model Version (name={name}, version={version}) not found",
        )
    return found


def _visible_tags(tags: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in tags.items() if k not in HIDDEN_TAGS}


def stage_of(version: ModelVersion) -> str:
    """MLflow's `current_stage` of a meshops version (see the module docstring)."""
    if version.status == VersionStatus.ARCHIVED:
        return "Archived"
    for alias, stage in STAGE_ALIASES.items():
        if alias in version.aliases:
            return stage
    return "None"


def version_json(version: ModelVersion) -> dict[str, Any]:
    created = millis(version.created_at)
    out: dict[str, Any] = {
        "name": version.name,
        "version": str(version.version),
        "creation_timestamp": created,
        "last_updated_timestamp": created,
        "user_id": version.created_by,
        "current_stage": stage_of(version),
        "description": version.description,
        "source": version.tags.get(SOURCE_TAG, version.uri),
        "status": "READY",
        "tags": kv_list(_visible_tags(version.tags)),
        "aliases": sorted(version.aliases),
    }
    if version.run_id:
        out["run_id"] = version.run_id
    if version.tags.get(RUN_LINK_TAG):
        out["run_link"] = version.tags[RUN_LINK_TAG]
    if version.tags.get(MODEL_ID_TAG):
        out["model_id"] = version.tags[MODEL_ID_TAG]
    return out


def model_json(model: RegisteredModel, latest: list[ModelVersion] | None = None) -> dict[str, Any]:
    out: dict[str, Any] = {
        "name": model.name,
        "creation_timestamp": millis(model.created_at),
        "last_updated_timestamp": millis(model.updated_at),
        "user_id": model.created_by,
        "description": model.description,
        "tags": kv_list(
            {**_visible_tags(model.tags), **({DOMAIN_TAG: model.domain} if model.domain else {})}
        ),
        "aliases": [{"alias": a, "version": str(v)} for a, v in sorted(model.aliases.items())],
    }
    if latest:
        out["latest_versions"] = [version_json(v) for v in latest]
    return out


def _live_versions(svc: RegistryService, name: str) -> list[ModelVersion]:
    return [v for v in svc.list_versions(name) if not _deleted(v.tags)]


def _latest_per_stage(versions: list[ModelVersion], stages: list[str]) -> list[ModelVersion]:
    wanted = {s.lower() for s in stages} if stages else {s.lower() for s in STAGES}
    unknown = wanted - {s.lower() for s in STAGES}
    if unknown:
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE",
            f"Invalid Model Version stage: {sorted(unknown)[0]}. "
            f"Value must be one of {', '.join(STAGES)}.",
        )
    latest: dict[str, ModelVersion] = {}
    for version in versions:  # newest first
        stage = stage_of(version)
        if stage.lower() in wanted and stage not in latest:
            latest[stage] = version
    return sorted(latest.values(), key=lambda v: v.version)


def _model_shape(svc: RegistryService, model: RegisteredModel) -> dict[str, Any]:
    return model_json(model, _latest_per_stage(_live_versions(svc, model.name), []))


# registered models -----------------------------------------------------------------------


def create_registered_model(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    name = text_field(data, "name")
    tags = key_values(data, "tags")
    domain = tags.pop(DOMAIN_TAG, None) or None
    # A refusal names the write (in the domain asked for), not the lookup before it.
    ctx.authorize("registry.write", domain)
    description = str(data.get("description") or "")
    try:
        existing = svc.get_model(name)
    except NotFound:
        existing = None
    if existing is not None and not _deleted(existing.tags):
        raise MlflowApiError(
            "RESOURCE_ALREADY_EXISTS", f"Registered Model (name={name}) already exists."
        )
    if existing is not None:  # deleted through MLflow earlier: restored
        restored = {k: v for k, v in existing.tags.items() if k != DELETED_TAG}
        model = svc.update_model(
            name, description=description, tags={**restored, **tags}, domain=domain
        )
    else:
        model = svc.create_model(name, description=description, tags=tags, domain=domain)
    return {"registered_model": model_json(model)}


def get_registered_model(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    return {"registered_model": _model_shape(svc, _model(svc, text_field(data, "name")))}


def rename_registered_model(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    name = text_field(data, "name")
    _model(svc, name)
    ctx.authorize("registry.write")
    raise MlflowApiError(
        "INVALID_PARAMETER_VALUE",
        f"meshops does not rename registered models: {name!r} is part of every version's "
        "URN and lineage edge (fix: register the versions under the new name, or keep the "
        "name and describe it with tags)",
    )


def update_registered_model(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    name = text_field(data, "name")
    _model(svc, name)
    description = data.get("description")
    model = svc.update_model(
        name, description=str(description) if description is not None else None
    )
    return {"registered_model": _model_shape(svc, model)}


def _retire(svc: RegistryService, version: ModelVersion, reason: str) -> None:
    for alias in version.aliases:
        svc.delete_alias(version.name, alias, reason=reason)
    svc.update_version(
        version.name,
        version.version,
        tags={**version.tags, DELETED_TAG: "true"},
        status=VersionStatus.ARCHIVED,
    )


def delete_registered_model(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    name = text_field(data, "name")
    model = _model(svc, name)
    ctx.authorize("registry.write", model.domain)
    if model.aliases:
        ctx.authorize("registry.alias", model.domain)
    with ctx.db.unit_of_work():  # every version retired, or none
        for version in _live_versions(svc, name):
            _retire(svc, version, "deleted through the MLflow API")
        svc.update_model(name, tags={**model.tags, DELETED_TAG: "true"})
    return {}


def set_registered_model_tag(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    name, key = text_field(data, "name"), text_field(data, "key")
    _check_user_tag(key)
    model = _model(svc, name)
    if key == DOMAIN_TAG:  # moves the model to that domain (a write in both)
        svc.update_model(name, domain=text_field(data, "value"))
        return {}
    svc.update_model(name, tags={**model.tags, key: str(data.get("value") or "")})
    return {}


def delete_registered_model_tag(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    name, key = text_field(data, "name"), text_field(data, "key")
    model = _model(svc, name)
    if key not in model.tags or key in HIDDEN_TAGS:
        raise MlflowApiError(
            "RESOURCE_DOES_NOT_EXIST", f"No tag with name: {key} in registered model {name}"
        )
    svc.update_model(name, tags={k: v for k, v in model.tags.items() if k != key})
    return {}


def _check_user_tag(key: str) -> None:
    if key in HIDDEN_TAGS:
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE", f"the tag {key!r} is kept by meshops; pick another key"
        )


# search ------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Clause:
    key: str  # "name", "run_id", "source_path", "version_number" or "tags.<key>"
    op: str  # =, !=, LIKE, ILIKE, IN, NOT IN
    values: tuple[str, ...]


_TOKEN = re.compile(
    r"""\s*(?:
        (?P<str>'(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*")
      | (?P<bq>`[^`]*`)
      | (?P<op>!=|<>|=|NOT\s+IN\b|IN\b|ILIKE\b|LIKE\b)
      | (?P<and>AND\b)
      | (?P<punct>[(),])
      | (?P<word>[A-Za-z_][A-Za-z0-9_.]*|-?\d+)
    )""",
    re.IGNORECASE | re.VERBOSE,
)


def _bad_filter(text: str, why: str) -> MlflowApiError:
    return MlflowApiError(
        "INVALID_PARAMETER_VALUE",
        f"Invalid filter {text!r}: {why}. Examples: name LIKE 'churn%', "
        "tags.team = 'risk', run_id = '<id>' (clauses joined by AND)",
    )


def parse_filter(text: str, keys: frozenset[str]) -> list[Clause]:
    """MLflow's registry filter: `<key> <op> <value>` clauses joined by AND; keys `name`,
    `tags.<key>` (or tags.`key`) and, for versions, `run_id`, `source_path`,
    `version_number`; ops =, !=, LIKE, ILIKE, IN (...), NOT IN (...)."""
    if len(text) > MAX_FILTER:
        raise _bad_filter(text[:50] + "...", f"longer than {MAX_FILTER} characters")
    tokens: list[tuple[str, str]] = []
    pos = 0
    stripped = text.strip()
    while pos < len(stripped):
        found = _TOKEN.match(stripped, pos)
        if not found or found.end() == pos:
            raise _bad_filter(text, f"unexpected text at {stripped[pos : pos + 20]!r}")
        kind = found.lastgroup or ""
        tokens.append((kind, found.group(kind)))
        pos = found.end()
    clauses: list[Clause] = []
    i = 0
    while i < len(tokens):
        if len(tokens) - i < 3:
            raise _bad_filter(text, "a clause is <key> <operator> <value>")
        kind, key = tokens[i]
        lowered = key.lower()
        if kind == "word" and lowered in ("tag.", "tags.") and tokens[i + 1][0] == "bq":
            key = "tags." + tokens[i + 1][1].strip("`")  # tags.`a key`
            i += 1
        elif kind == "word" and lowered.startswith(("tag.", "tags.")) and not key.endswith("."):
            key = "tags." + key.split(".", 1)[1]
        elif kind in ("word", "bq"):
            key = key.strip("`").lower()
        else:
            raise _bad_filter(text, f"{key!r} is not a key")
        if len(tokens) - i < 3:
            raise _bad_filter(text, "a clause is <key> <operator> <value>")
        op_kind, op = tokens[i + 1]
        if not (key in keys or key.startswith("tags.")):
            raise _bad_filter(
                text, f"unknown key {key!r}; use {', '.join(sorted(keys))} or tags.<key>"
            )
        if op_kind != "op":
            raise _bad_filter(text, f"{op!r} is not an operator")
        op = " ".join(op.upper().split()).replace("<>", "!=")
        i += 2
        values: list[str] = []
        if op in ("IN", "NOT IN"):
            if tokens[i] != ("punct", "("):
                raise _bad_filter(text, f"{op} takes a list: ('a', 'b')")
            i += 1
            while i < len(tokens) and tokens[i] != ("punct", ")"):
                if tokens[i][0] in ("str", "word"):
                    values.append(_unquote(tokens[i][1]))
                elif tokens[i] != ("punct", ","):
                    raise _bad_filter(text, f"unexpected {tokens[i][1]!r} in a list")
                i += 1
            if i >= len(tokens):
                raise _bad_filter(text, "a list is not closed with ')'")
            i += 1
        else:
            if tokens[i][0] not in ("str", "word"):
                raise _bad_filter(text, f"{tokens[i][1]!r} is not a value")
            values.append(_unquote(tokens[i][1]))
            i += 1
        clauses.append(Clause(key, op, tuple(values)))
        if i < len(tokens):
            if tokens[i][0] != "and":
                raise _bad_filter(text, "join clauses with AND")
            i += 1
            if i == len(tokens):
                raise _bad_filter(text, "nothing after AND")
    return clauses


def _unquote(token: str) -> str:
    if token[:1] in ("'", '"'):
        return re.sub(r"\\(.)", r"\1", token[1:-1])
    return token


def like_match(pattern: str, value: str, insensitive: bool) -> bool:
    regex = "".join(".*" if ch == "%" else "." if ch == "_" else re.escape(ch) for ch in pattern)
    flags = re.IGNORECASE | re.DOTALL if insensitive else re.DOTALL
    return re.fullmatch(regex, value, flags) is not None


def clause_matches(clause: Clause, value: str | None) -> bool:
    if value is None:
        return clause.op in {"!=", "NOT IN"}
    if clause.op == "=":
        return value == clause.values[0]
    if clause.op == "!=":
        return value != clause.values[0]
    if clause.op == "LIKE":
        return like_match(clause.values[0], value, False)
    if clause.op == "ILIKE":
        return like_match(clause.values[0], value, True)
    if clause.op == "IN":
        return value in clause.values
    return value not in clause.values  # NOT IN


def _field(clause: Clause, name: str, tags: dict[str, str], extra: dict[str, str]) -> str | None:
    if clause.key.startswith("tags."):
        key = clause.key[5:]
        return None if key in HIDDEN_TAGS else tags.get(key)
    if clause.key == "name":
        return name
    return extra.get(clause.key)


def _order(
    data: dict[str, Any], allowed: dict[str, str], default: list[str]
) -> list[tuple[str, bool]]:
    raw = data.get("order_by") or default
    items = raw if isinstance(raw, list) else [raw]
    out: list[tuple[str, bool]] = []
    for item in items[:10]:
        parts = str(item).split()
        key = parts[0].strip("`").lower() if parts else ""
        direction = parts[1].upper() if len(parts) > 1 else "ASC"
        if key not in allowed or direction not in ("ASC", "DESC") or len(parts) > 2:
            raise MlflowApiError(
                "INVALID_PARAMETER_VALUE",
                f"Invalid order_by clause {item!r}: use one of {', '.join(sorted(allowed))} "
                "followed by ASC or DESC",
            )
        out.append((allowed[key], direction == "DESC"))
    return out


def _sorted(
    items: list[Any], order: list[tuple[str, bool]], get: Callable[[Any, str], Any]
) -> list[Any]:
    for key, descending in reversed(order):
        items = sorted(items, key=functools.partial(_key_of, get, key), reverse=descending)
    return items


def _key_of(get: Callable[[Any, str], Any], key: str, item: Any) -> Any:
    return get(item, key)


def _page(
    items: list[Any], data: dict[str, Any], default: int, limit: int
) -> tuple[list[Any], str | None]:
    size = int_field(data, "max_results", default, 1, limit)
    offset = decode_token(data.get("page_token"))
    chosen = items[offset : offset + size]
    return chosen, encode_token(offset + size) if offset + size < len(items) else None


_MODEL_KEYS = frozenset({"name"})
_MODEL_ORDER = {
    "name": "name",
    "timestamp": "updated",
    "last_updated_timestamp": "updated",
    "creation_timestamp": "created",
}


def search_registered_models(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    clauses = parse_filter(str(data.get("filter") or ""), _MODEL_KEYS)
    order = _order(data, _MODEL_ORDER, ["name ASC"])
    models = [
        m
        for m in svc.list_models()
        if not _deleted(m.tags)
        and all(clause_matches(c, _field(c, m.name, m.tags, {})) for c in clauses)
    ]

    def get(model: RegisteredModel, key: str) -> Any:
        return {"name": model.name, "updated": model.updated_at, "created": model.created_at}[key]

    chosen, token = _page(_sorted(models, order, get), data, 100, MAX_MODELS_PAGE)
    out: dict[str, Any] = {"registered_models": [_model_shape(svc, m) for m in chosen]}
    if token:
        out["next_page_token"] = token
    return out


def get_latest_versions(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    name = text_field(data, "name")
    _model(svc, name)
    raw = data.get("stages") or []
    stages = [str(s) for s in (raw if isinstance(raw, list) else [raw])]
    return {
        "model_versions": [
            version_json(v) for v in _latest_per_stage(_live_versions(svc, name), stages)
        ]
    }


_VERSION_KEYS = frozenset({"name", "run_id", "source_path", "version_number"})
_VERSION_ORDER = {
    "name": "name",
    "version_number": "version",
    "creation_timestamp": "created",
    "last_updated_timestamp": "created",
    "timestamp": "created",
}


def search_model_versions(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    clauses = parse_filter(str(data.get("filter") or ""), _VERSION_KEYS)
    order = _order(data, _VERSION_ORDER, ["name ASC", "version_number DESC"])
    names = [c.values[0] for c in clauses if c.key == "name" and c.op == "=" and c.values]
    if names:
        models = []
        for name in set(names):
            try:
                models.append(svc.get_model(name))
            except NotFound:
                continue
    else:
        models = svc.list_models()
    found: list[ModelVersion] = []
    for model in models:
        if _deleted(model.tags):
            continue
        for version in _live_versions(svc, model.name):
            extra = {
                "run_id": version.run_id or "",
                "source_path": version.tags.get(SOURCE_TAG, version.uri),
                "version_number": str(version.version),
            }
            if all(
                clause_matches(c, _field(c, version.name, version.tags, extra)) for c in clauses
            ):
                found.append(version)

    def get(version: ModelVersion, key: str) -> Any:
        return {"name": version.name, "version": version.version, "created": version.created_at}[
            key
        ]

    chosen, token = _page(_sorted(found, order, get), data, 10_000, MAX_VERSIONS_PAGE)
    out: dict[str, Any] = {"model_versions": [version_json(v) for v in chosen]}
    if token:
        out["next_page_token"] = token
    return out


# model versions ------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Source:
    files: list[ModelFile]
    run_id: str | None
    model_id: str | None
    mlmodel: bytes


def _from_logged_model(ctx: Context, svc: RegistryService, model_id: str) -> _Source:
    from meshops.tracking.logged_models import LoggedModels

    models = LoggedModels(ctx)
    logged = models.get(model_id)
    listed = models.list_files(model_id)
    files: list[ModelFile] = []
    mlmodel = b""
    for artifact in listed:
        data = ctx.blobs.get_bytes(artifact.digest)
        if artifact.path == MLMODEL:
            mlmodel = data
        # Logged-model files are the tracking area's: the registry holds its own receipt.
        files.append(
            ModelFile(path=artifact.path, digest=svc.upload_file(data), size=artifact.size)
        )
    return _Source(files, logged.run_id, model_id, mlmodel)


def _from_run(ctx: Context, run_id: str, path: str) -> _Source:
    from meshops.tracking.service import TrackingService

    tracking = TrackingService(ctx)
    prefix = path.strip("/")
    files: list[ModelFile] = []
    mlmodel = b""
    for artifact in tracking.list_artifacts(run_id, prefix):
        rel = artifact.path[len(prefix) + 1 :] if artifact.path.startswith(prefix + "/") else None
        if not rel:
            continue
        if rel == MLMODEL:
            mlmodel = tracking.read_artifact(run_id, artifact.path)
        files.append(ModelFile(path=rel, digest=artifact.digest, size=artifact.size))
    return _Source(files, run_id, None, mlmodel)


def _source(ctx: Context, svc: RegistryService, source: str, model_id: str) -> _Source:
    if model_id:
        if not re.fullmatch(r"m-[0-9a-f]{32}", model_id):
            raise MlflowApiError("INVALID_PARAMETER_VALUE", f"Invalid model_id {model_id!r}")
        return _from_logged_model(ctx, svc, model_id)
    if found := _LOGGED_MODEL.match(source):
        return _from_logged_model(ctx, svc, found.group(1))
    if found := _RUN_SOURCE.match(source) or _PROXY_SOURCE.match(source):
        return _from_run(ctx, found.group(1), found.group(2))
    raise MlflowApiError(
        "INVALID_PARAMETER_VALUE",
        f"meshops cannot read the model source {source!r}: register a model logged to this "
        "server (models:/m-<id>, runs:/<run id>/<path> or mlflow-artifacts:/...)",
    )


def create_model_version(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    name = text_field(data, "name")
    source = text_field(data, "source")
    ctx.authorize("registry.write", _model_for(ctx, svc, name, "registry.write").domain)
    tags = key_values(data, "tags")
    for key in tags:
        _check_user_tag(key)
    found = _source(ctx, svc, source, str(data.get("model_id") or ""))
    if not found.files or not found.mlmodel:
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE",
            f"the source {source!r} holds no MLflow model (no {MLMODEL} file among "
            f"{len(found.files)} files)",
        )
    mlmodel = parse_mlmodel(found.mlmodel)
    run_id = found.run_id or (str(data.get("run_id") or "") or None)
    meta = {SOURCE_TAG: source}
    if found.model_id:
        meta[MODEL_ID_TAG] = found.model_id
    if data.get("run_link"):
        meta[RUN_LINK_TAG] = str(data["run_link"])
    version = svc.register_files(
        name,
        found.files,
        flavor_of(mlmodel),
        signature=mlmodel.signature,
        run_id=run_id,
        description=str(data.get("description") or ""),
        tags={**tags, **meta},
    )
    return {"model_version": version_json(version)}


def get_model_version(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    return {
        "model_version": version_json(
            _version(svc, text_field(data, "name"), _version_number(data))
        )
    }


def update_model_version(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    name, number = text_field(data, "name"), _version_number(data)
    _version(svc, name, number)
    description = data.get("description")
    updated = svc.update_version(
        name, number, description=str(description) if description is not None else None
    )
    return {"model_version": version_json(updated)}


def delete_model_version(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    version = _version(svc, text_field(data, "name"), _version_number(data))
    with ctx.db.unit_of_work():  # aliases removed and the version archived together
        _retire(svc, version, "deleted through the MLflow API")
    return {}


def transition_model_version_stage(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    name, number = text_field(data, "name"), _version_number(data)
    version = _version(svc, name, number)
    wanted = text_field(data, "stage")
    stage = next((s for s in STAGES if s.lower() == wanted.lower()), None)
    if stage is None:
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE",
            f"Invalid Model Version stage: {wanted}. Value must be one of {', '.join(STAGES)}.",
        )
    archive_others = str(data.get("archive_existing_versions")).lower() == "true"
    reason = f"transition to stage {stage} through the MLflow API"
    with ctx.db.unit_of_work():  # all of a transition, or none of it (a gate refusal)
        if stage in ("Production", "Staging"):
            alias = stage.lower()
            model = _model(svc, name)
            previous = model.aliases.get(alias)
            if version.status == VersionStatus.ARCHIVED:
                svc.update_version(name, number, status=VersionStatus.READY)
            svc.set_alias(name, alias, number, reason=reason)  # the promotion gate decides
            if archive_others and previous is not None and previous != number:
                held = svc.get_version(name, previous)
                if not held.aliases:
                    svc.update_version(name, previous, status=VersionStatus.ARCHIVED)
        else:
            for alias in STAGE_ALIASES:
                if alias in version.aliases:
                    svc.delete_alias(name, alias, reason=reason)
            if stage == "Archived":
                svc.update_version(name, number, status=VersionStatus.ARCHIVED)
            elif version.status == VersionStatus.ARCHIVED:
                svc.update_version(name, number, status=VersionStatus.READY)
    return {"model_version": version_json(svc.get_version(name, number))}


def get_model_version_download_uri(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    version = _version(svc, text_field(data, "name"), _version_number(data))
    return {"artifact_uri": download_uri(ctx, version)}


def download_uri(ctx: Context, version: ModelVersion) -> str:
    """Where the MLflow client downloads the version's files (the artifact proxy)."""
    from meshops.mlflow.tracking import Ids
    from meshops.tracking.logged_models import LoggedModels
    from meshops.tracking.service import TrackingService

    tracking = TrackingService(ctx)
    model_id = version.tags.get(MODEL_ID_TAG)
    if model_id:
        logged = LoggedModels(ctx).get(model_id, allow_deleted=True)
        return model_artifact_uri(Ids(tracking).to_mlflow(logged.experiment_id), model_id)
    source = version.tags.get(SOURCE_TAG, "")
    found = _RUN_SOURCE.match(source) or _PROXY_SOURCE.match(source)
    if found:
        run = tracking.get_run(found.group(1))
        base = run_artifact_uri(Ids(tracking).to_mlflow(run.experiment_id), run.id)
        return f"{base}/{found.group(2).strip('/')}"
    raise MlflowApiError(
        "INVALID_PARAMETER_VALUE",
        f"{version.uri} was registered through meshops, not in MLflow's format; load it "
        f"with meshops (platform.registry.load_model({version.uri!r}))",
    )


def set_model_version_tag(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    key = text_field(data, "key")
    _check_user_tag(key)
    version = _version(svc, text_field(data, "name"), _version_number(data))
    tags = {**version.tags, key: str(data.get("value") or "")}
    svc.update_version(version.name, version.version, tags=tags)
    return {}


def delete_model_version_tag(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    key = text_field(data, "key")
    version = _version(svc, text_field(data, "name"), _version_number(data))
    if key not in version.tags or key in HIDDEN_TAGS:
        raise MlflowApiError(
            "RESOURCE_DOES_NOT_EXIST",
            f"No tag with name: {key} in model version {version.name} v{version.version}",
        )
    tags = {k: v for k, v in version.tags.items() if k != key}
    svc.update_version(version.name, version.version, tags=tags)
    return {}


# aliases ---------------------------------------------------------------------------------------


def set_registered_model_alias(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    name, alias = text_field(data, "name"), text_field(data, "alias")
    _model_for(ctx, svc, name, "registry.alias")
    version = _version(svc, name, _version_number(data))
    svc.set_alias(name, alias, version.version, reason="set through the MLflow API")
    return {}


def delete_registered_model_alias(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    name, alias = text_field(data, "name"), text_field(data, "alias")
    _model(svc, name)
    svc.delete_alias(name, alias, reason="deleted through the MLflow API")
    return {}


def get_model_version_by_alias(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = _svc(ctx)
    name, alias = text_field(data, "name"), text_field(data, "alias")
    model = _model(svc, name)
    if alias not in model.aliases:
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE", f"Registered model alias {alias} not found."
        )
    return {"model_version": version_json(_version(svc, name, model.aliases[alias]))}


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/registered-models/create", create_registered_model),
    ("POST", "/registered-models/rename", rename_registered_model),
    ("PATCH", "/registered-models/update", update_registered_model),
    ("DELETE", "/registered-models/delete", delete_registered_model),
    ("GET", "/registered-models/get", get_registered_model),
    ("GET", "/registered-models/search", search_registered_models),
    ("POST", "/registered-models/get-latest-versions", get_latest_versions),
    ("GET", "/registered-models/get-latest-versions", get_latest_versions),
    ("POST", "/registered-models/set-tag", set_registered_model_tag),
    ("DELETE", "/registered-models/delete-tag", delete_registered_model_tag),
    ("POST", "/registered-models/alias", set_registered_model_alias),
    ("DELETE", "/registered-models/alias", delete_registered_model_alias),
    ("GET", "/registered-models/alias", get_model_version_by_alias),
    ("POST", "/model-versions/create", create_model_version),
    ("PATCH", "/model-versions/update", update_model_version),
    ("POST", "/model-versions/transition-stage", transition_model_version_stage),
    ("DELETE", "/model-versions/delete", delete_model_version),
    ("GET", "/model-versions/get", get_model_version),
    ("GET", "/model-versions/search", search_model_versions),
    ("GET", "/model-versions/get-download-uri", get_model_version_download_uri),
    ("POST", "/model-versions/set-tag", set_model_version_tag),
    ("DELETE", "/model-versions/delete-tag", delete_model_version_tag),
]

__all__ = ["ROUTES", "parse_filter", "stage_of", "version_json"]
