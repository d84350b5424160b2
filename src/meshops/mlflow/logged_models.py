"""MLflow 3's logged models, as the client's `log_model` uses them: create (PENDING), upload
the files to the model's artifact URI, finalize (READY); get, search, tags, params,
delete. A logged model's `models:/m-<id>` source is what the registry registers
(`meshops.mlflow.registry`), reading its files through `LoggedModels.read_file`.
"""

from __future__ import annotations

from typing import Any

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
    text_field,
)
from meshops.mlflow.search import logged_model_matcher
from meshops.mlflow.tracking import Handler, Ids
from meshops.tracking.logged_models import MAX_MODELS_PAGE, LoggedModel, LoggedModels
from meshops.tracking.service import TrackingService

MAX_SCAN = 100_000  # logged models one search reads at most

STATUS_TO_MLFLOW = {
    "PENDING": "LOGGED_MODEL_PENDING",
    "READY": "LOGGED_MODEL_READY",
    "FAILED": "LOGGED_MODEL_UPLOAD_FAILED",
}
STATUS_FROM_MLFLOW = {v: k for k, v in STATUS_TO_MLFLOW.items()} | {2: "READY", 1: "PENDING"}


def model_json(model: LoggedModel, experiment_id: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "model_id": model.id,
        "experiment_id": experiment_id,
        "name": model.name,
        "creation_timestamp_ms": millis(model.created_at),
        "last_updated_timestamp_ms": millis(model.updated_at),
        "artifact_uri": model_artifact_uri(experiment_id, model.id),
        "status": STATUS_TO_MLFLOW.get(model.status, "LOGGED_MODEL_STATUS_UNSPECIFIED"),
        "tags": kv_list(model.tags),
    }
    if model.model_type:
        info["model_type"] = model.model_type
    if model.run_id:
        info["source_run_id"] = model.run_id
    if model.status_message:
        info["status_message"] = model.status_message
    return {"info": info, "data": {"params": kv_list(model.params), "metrics": []}}


def _shape(ctx: Context, model: LoggedModel) -> dict[str, Any]:
    return model_json(model, Ids(TrackingService(ctx)).to_mlflow(model.experiment_id))


def create(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = TrackingService(ctx)
    mlflow_id = text_field(data, "experiment_id")
    try:
        experiment_id = Ids(svc).to_meshops(mlflow_id)
    except Exception:
        if mlflow_id != "0":
            raise
        experiment_id = svc.create_experiment("default").id  # made on first use
    model = LoggedModels(ctx).create(
        experiment_id,
        data.get("name") or None,
        run_id=data.get("source_run_id") or None,
        model_type=data.get("model_type") or None,
        params=key_values(data, "params"),
        tags=key_values(data, "tags"),
    )
    return {"model": _shape(ctx, model)}


def get(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    return {"model": _shape(ctx, LoggedModels(ctx).get(text_field(data, "model_id")))}


def finalize(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    status = STATUS_FROM_MLFLOW.get(data.get("status"))  # type: ignore[arg-type]
    if status is None:
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE",
            f"Invalid status {data.get('status')!r}: LOGGED_MODEL_READY or "
            "LOGGED_MODEL_UPLOAD_FAILED",
        )
    model = LoggedModels(ctx).update(text_field(data, "model_id"), status=status)
    return {"model": _shape(ctx, model)}


def delete(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    LoggedModels(ctx).update(text_field(data, "model_id"), delete=True)
    return {}


def set_tags(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    LoggedModels(ctx).update(text_field(data, "model_id"), tags=key_values(data, "tags"))
    return {}


def delete_tag(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    model_id = text_field(data, "model_id")
    LoggedModels(ctx).update(model_id, delete_tag=text_field(data, "tag_key"))
    return {}


def log_params(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    LoggedModels(ctx).update(text_field(data, "model_id"), params=key_values(data, "params"))
    return {}


def search(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """Active logged models of the experiments, newest first, filtered by name, status,
    tags and params (`name = 'model'`, as the client looks up a run's model)."""
    ids = Ids(TrackingService(ctx))
    raw = data.get("experiment_ids") or []
    experiment_ids = [ids.to_meshops(str(i)) for i in (raw if isinstance(raw, list) else [raw])]
    limit = int_field(data, "max_results", 100, 1, MAX_MODELS_PAGE)
    offset = decode_token(data.get("page_token"))
    matches = logged_model_matcher(str(data.get("filter") or ""))
    models = LoggedModels(ctx)
    shapes: list[dict[str, Any]] = []
    scanned = 0
    # Filtered here, page by page of the store, until the page after `offset` is full.
    while len(shapes) <= offset + limit and scanned < MAX_SCAN:
        batch, more = models.search(experiment_ids, MAX_MODELS_PAGE, scanned)
        scanned += len(batch)
        page = (model_json(m, ids.to_mlflow(m.experiment_id)) for m in batch)
        shapes += [s for s in page if matches(s)]
        if not more:
            break
    out: dict[str, Any] = {"models": shapes[offset : offset + limit]}
    if len(shapes) > offset + limit:
        out["next_page_token"] = encode_token(offset + limit)
    return out


def list_artifact_directories(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    from meshops.mlflow.artifacts import children

    model_id = text_field(data, "model_id")
    folder = str(data.get("artifact_directory_path") or "").strip("/")
    listed = LoggedModels(ctx).list_files(model_id, f"{folder}/" if folder else "")
    files = children(listed, folder)
    for item in files:
        item["path"] = f"{folder}/{item['path']}" if folder else item["path"]
    return {"files": files}


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/logged-models", create),
    ("POST", "/logged-models/search", search),
    ("GET", "/logged-models/{model_id}", get),
    ("PATCH", "/logged-models/{model_id}", finalize),
    ("DELETE", "/logged-models/{model_id}", delete),
    ("PATCH", "/logged-models/{model_id}/tags", set_tags),
    ("DELETE", "/logged-models/{model_id}/tags/{tag_key}", delete_tag),
    ("POST", "/logged-models/{model_id}/params", log_params),
    ("GET", "/logged-models/{model_id}/artifacts/directories", list_artifact_directories),
]
