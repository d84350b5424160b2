"""MLflow's tracking calls, answered by meshops's tracking service.

Each handler takes the caller's context and the request's parameters (JSON body or query
string, as the MLflow client sends them) and returns the response message as JSON. The
service authorises and audits every call as it does for the native API; a run created
here IS a meshops run (same id), visible to the SDK, the CLI and the UI.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from meshops.kernel.errors import NotFound
from meshops.kernel.home import Context
from meshops.mlflow import search
from meshops.mlflow.common import (
    DEFAULT_EXPERIMENT_ID,
    MlflowApiError,
    decode_token,
    encode_token,
    experiment_json,
    int_field,
    json_number,
    key_values,
    mlflow_experiment_id,
    run_info_json,
    run_json,
    text_field,
)
from meshops.mlflow.registry_lineage import product_input
from meshops.tracking.models import DEFAULT_EXPERIMENT, TAG_VALUE_MAX, Experiment, Run
from meshops.tracking.service import MAX_RESULTS_LIMIT, TrackingService

Handler = Callable[[Context, dict[str, Any]], dict[str, Any]]
MAX_HISTORY = 1_000_000  # metric values of one history page
MAX_EXPERIMENTS_PAGE = 50_000
MAX_BATCH_METRICS = 1_000  # MLflow's own limits of one log-batch (the client splits)
MAX_BATCH_PARAMS = 100
MAX_BATCH_TAGS = 100


class Ids:
    """MLflow <-> meshops experiment ids for one request (the default experiment is "0")."""

    def __init__(self, svc: TrackingService) -> None:
        self.svc = svc
        self._default: str | None = None
        self._looked = False
        self._names: dict[str, str] = {}  # meshops id -> name, of experiments seen

    def default_id(self) -> str | None:
        if not self._looked:
            self._looked = True
            try:
                self._seen(self.svc.get_experiment(DEFAULT_EXPERIMENT))
            except NotFound:
                self._default = None
        return self._default

    def _seen(self, experiment: Experiment) -> Experiment:
        self._names[experiment.id] = experiment.name
        if experiment.name == DEFAULT_EXPERIMENT:
            self._default, self._looked = experiment.id, True
        return experiment

    def to_mlflow(self, meshops_id: str) -> str:
        known = self._names.get(meshops_id)  # an experiment of this request: no lookup
        if known is not None:
            return DEFAULT_EXPERIMENT_ID if known == DEFAULT_EXPERIMENT else meshops_id
        return DEFAULT_EXPERIMENT_ID if meshops_id == self.default_id() else meshops_id

    def experiment(self, mlflow_id: str) -> Experiment:
        """The experiment of an MLflow id (never matched by name)."""
        if mlflow_id == DEFAULT_EXPERIMENT_ID:
            return self._seen(self.svc.get_experiment(DEFAULT_EXPERIMENT))
        experiment = self.svc.get_experiment(mlflow_id)
        if experiment.id != mlflow_id:
            raise MlflowApiError(
                "RESOURCE_DOES_NOT_EXIST", f"No Experiment with id={mlflow_id} exists"
            )
        return self._seen(experiment)

    def to_meshops(self, mlflow_id: str) -> str:
        return self.experiment(mlflow_id).id


def _run_id(data: dict[str, Any]) -> str:
    run_id = data.get("run_id") or data.get("run_uuid")
    if not isinstance(run_id, str) or not run_id:
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE", "Missing value for required parameter 'run_id'."
        )
    return run_id


def _float(value: Any, name: str) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE", f"Invalid value {value!r} for parameter '{name}': a number"
        ) from None


def _metric_row(run_id: str, item: dict[str, Any]) -> tuple[str, str, float, int, float]:
    key = item.get("key")
    if not isinstance(key, str) or not key:
        raise MlflowApiError("INVALID_PARAMETER_VALUE", "every metric needs a 'key' string")
    stamp_ms = item.get("timestamp")
    stamp = time.time() if stamp_ms in (None, "") else _float(stamp_ms, "timestamp") / 1000
    step = int(_float(item.get("step") or 0, "step"))
    return (run_id, key, _float(item.get("value"), "value"), step, stamp)


def _shapes(ctx: Context, ids: Ids, runs: list[Run]) -> list[dict[str, Any]]:
    """Runs as MLflow's `Run` messages, with the models each logged as its outputs."""
    from meshops.tracking.logged_models import LoggedModels

    run_ids = [r.id for r in runs]
    models = LoggedModels(ctx).of_runs(run_ids)
    steps = ids.svc.latest_metric_steps(run_ids)
    return [
        run_json(
            run,
            ids.to_mlflow(run.experiment_id),
            metric_details=steps[run.id],
            model_outputs=[{"model_id": m, "step": 0} for m in models[run.id]],
        )
        for run in runs
    ]


# experiments -----------------------------------------------------------------------------


def create_experiment(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = TrackingService(ctx)
    name = text_field(data, "name")
    tags = key_values(data, "tags")
    description = tags.pop("mlflow.note.content", "")
    experiment = svc.create_experiment(name, description, tags)
    return {"experiment_id": mlflow_experiment_id(experiment)}


def get_experiment(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    ids = Ids(TrackingService(ctx))
    return {"experiment": experiment_json(ids.experiment(text_field(data, "experiment_id")))}


def get_experiment_by_name(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    name = text_field(data, "experiment_name")
    try:
        experiment = TrackingService(ctx).get_experiment(name)
    except NotFound:
        experiment = None
    if experiment is None or experiment.name != name:
        raise MlflowApiError(
            "RESOURCE_DOES_NOT_EXIST", f"Could not find experiment with name '{name}'"
        )
    return {"experiment": experiment_json(experiment)}


def search_experiments(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = TrackingService(ctx)
    view = search.run_view(data.get("view_type"))
    limit = int_field(data, "max_results", 1000, 1, MAX_EXPERIMENTS_PAGE)
    offset = decode_token(data.get("page_token"))
    order = data.get("order_by") or []
    matches = search.experiment_matcher(str(data.get("filter") or ""))
    sort_key = search.experiment_sort_key([order] if isinstance(order, str) else list(order))
    shapes = []
    for experiment in svc.list_experiments_in_view(view):
        shape = experiment_json(experiment)
        if matches(experiment, shape):
            shapes.append(shape)
    shapes.sort(key=sort_key)
    page = shapes[offset : offset + limit]
    out: dict[str, Any] = {"experiments": page}
    if offset + limit < len(shapes):
        out["next_page_token"] = encode_token(offset + limit)
    return out


def update_experiment(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = TrackingService(ctx)
    experiment = Ids(svc).experiment(text_field(data, "experiment_id"))
    svc.update_experiment(experiment.id, new_name=text_field(data, "new_name"))
    return {}


def delete_experiment(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = TrackingService(ctx)
    svc.delete_experiment(Ids(svc).to_meshops(text_field(data, "experiment_id")))
    return {}


def restore_experiment(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = TrackingService(ctx)
    svc.restore_experiment(Ids(svc).to_meshops(text_field(data, "experiment_id")))
    return {}


def set_experiment_tag(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = TrackingService(ctx)
    experiment = Ids(svc).experiment(text_field(data, "experiment_id"))
    key = text_field(data, "key")
    svc.update_experiment(experiment.id, tags={key: str(data.get("value") or "")})
    return {}


# runs ------------------------------------------------------------------------------------


def create_run(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = TrackingService(ctx)
    ids = Ids(svc)
    mlflow_id = str(data.get("experiment_id") or DEFAULT_EXPERIMENT_ID)
    # The default experiment is made on first use, as in meshops.
    experiment = DEFAULT_EXPERIMENT if mlflow_id == DEFAULT_EXPERIMENT_ID else None
    if experiment is None:
        found = ids.experiment(mlflow_id)
        if found.lifecycle_stage != "active":
            raise MlflowApiError(
                "INVALID_PARAMETER_VALUE",
                f"The experiment {found.name!r} ({mlflow_id}) is deleted: restore it "
                "(`MlflowClient().restore_experiment`) before starting runs in it",
            )
        experiment = found.id
    tags = key_values(data, "tags")
    name = data.get("run_name") or tags.pop("mlflow.runName", None) or None
    tags.pop("mlflow.runName", None)
    tags.pop("mlflow.user", None)  # the user is the token's, never the request's
    parent = tags.pop("mlflow.parentRunId", None) or None
    run = svc.create_run(
        experiment,
        name=name,
        parent_run_id=parent,
        tags=tags,
        capture_environment=False,
    )
    return {"run": _shapes(ctx, ids, [run])[0]}


def get_run(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = TrackingService(ctx)
    return {"run": _shapes(ctx, Ids(svc), [svc.get_run(_run_id(data))])[0]}


def update_run(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = TrackingService(ctx)
    status = data.get("status")
    if isinstance(status, int):  # the enum's number
        status = {1: "RUNNING", 2: "SCHEDULED", 3: "FINISHED", 4: "FAILED", 5: "KILLED"}.get(status)
    if status == "SCHEDULED":
        status = "RUNNING"
    run = svc.update_run(_run_id(data), name=data.get("run_name") or None, status=status or None)
    return {"run_info": run_info_json(run, Ids(svc).to_mlflow(run.experiment_id))}


def delete_run(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    TrackingService(ctx).delete_run(_run_id(data))
    return {}


def restore_run(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    TrackingService(ctx).restore_run(_run_id(data))
    return {}


def log_metric(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    TrackingService(ctx).log_metric_rows([_metric_row(_run_id(data), data)])
    return {}


def log_param(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    key = text_field(data, "key")
    TrackingService(ctx).log_params(_run_id(data), {key: str(data.get("value") or "")})
    return {}


def _set_tags(svc: TrackingService, run_id: str, tags: dict[str, str]) -> None:
    name = tags.pop("mlflow.runName", None)
    if name:
        svc.update_run(run_id, name=name)
    tags.pop("mlflow.user", None)
    if tags:
        svc.set_tags(run_id, tags)


def set_tag(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    key = text_field(data, "key")
    _set_tags(TrackingService(ctx), _run_id(data), {key: str(data.get("value") or "")})
    return {}


def delete_tag(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    TrackingService(ctx).delete_tag(_run_id(data), text_field(data, "key"))
    return {}


def _limited(data: dict[str, Any], name: str, limit: int) -> list[Any]:
    items = data.get(name) or []
    if not isinstance(items, list) or len(items) > limit:
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE",
            f"A batch logging request can contain at most {limit} {name}; the client "
            "splits larger batches",
        )
    return items


def log_batch(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = TrackingService(ctx)
    run_id = _run_id(data)
    metrics = _limited(data, "metrics", MAX_BATCH_METRICS)
    _limited(data, "params", MAX_BATCH_PARAMS)
    _limited(data, "tags", MAX_BATCH_TAGS)
    params = key_values(data, "params")
    tags = key_values(data, "tags")
    if params:
        svc.log_params(run_id, params)
    if metrics:
        rows = [_metric_row(run_id, m if isinstance(m, dict) else {}) for m in metrics]
        svc.log_metric_rows(rows)
    if tags:
        _set_tags(svc, run_id, tags)
    return {}


def search_runs(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = TrackingService(ctx)
    ids = Ids(svc)
    raw_ids = data.get("experiment_ids") or []
    if isinstance(raw_ids, str):
        raw_ids = [raw_ids]
    experiments = [ids.to_meshops(str(i)) for i in raw_ids[:1000]]
    order_by = data.get("order_by") or []
    order_by = [order_by] if isinstance(order_by, str) else list(order_by)
    page = svc.search_runs_in_view(
        experiments or None,
        search.run_filter(str(data.get("filter") or "")),
        max_results=int_field(data, "max_results", 1000, 1, MAX_RESULTS_LIMIT),
        page_token=data.get("page_token") or None,
        view=search.run_view(data.get("run_view_type")),
        order=search.run_order(order_by),
    )
    out: dict[str, Any] = {"runs": _shapes(ctx, ids, page.runs)}
    if page.next_page_token:
        out["next_page_token"] = page.next_page_token
    return out


def get_metric_history(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = TrackingService(ctx)
    history = svc.metric_history(_run_id(data), text_field(data, "metric_key"))
    limit = int_field(data, "max_results", MAX_HISTORY, 1, MAX_HISTORY)
    offset = decode_token(data.get("page_token"))
    page = history[offset : offset + limit]
    out: dict[str, Any] = {
        "metrics": [
            {
                "key": m.key,
                "value": json_number(m.value),
                "timestamp": int(m.timestamp * 1000),
                "step": m.step,
            }
            for m in page
        ]
    }
    if offset + limit < len(history):
        out["next_page_token"] = encode_token(offset + limit)
    return out


# inputs and outputs ---------------------------------------------------------------------


def log_inputs(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    svc = TrackingService(ctx)
    run_id = _run_id(data)
    svc.get_run(run_id)
    for item in _limited(data, "datasets", 1000):
        if not isinstance(item, dict) or not isinstance(item.get("dataset"), dict):
            raise MlflowApiError("INVALID_PARAMETER_VALUE", "every dataset input needs a dataset")
        # A dataset naming a meshops data product (or URN) is linked to what it names
        # (`registry_lineage`: resolved through the mesh's read path); others are not
        # meshops objects and are not recorded.
        found = product_input(ctx, item["dataset"], key_values(item, "tags"))
        if found is not None:
            svc.log_input(run_id, found)
    return {}


def log_outputs(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """A run's logged models: each model already names its source run; checked here."""
    from meshops.tracking.logged_models import LoggedModels

    svc = TrackingService(ctx)
    svc.get_run(_run_id(data))
    models = LoggedModels(ctx)
    for item in _limited(data, "models", 1000):
        model_id = item.get("model_id") if isinstance(item, dict) else None
        if not isinstance(model_id, str):
            raise MlflowApiError("INVALID_PARAMETER_VALUE", "every model output needs model_id")
        models.get(model_id)
    return {}


LOG_MODEL_HISTORY = "mlflow.log-model.history"


def log_model(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """MLflow's `runs/log-model` (the model's metadata, sent by `log_model` beside the
    logged model): kept as the run's `mlflow.log-model.history` tag, a JSON list, as an
    MLflow server keeps it; the oldest entries go when it outgrows a tag value."""
    svc = TrackingService(ctx)
    run_id = _run_id(data)
    try:
        entry = json.loads(text_field(data, "model_json"))
    except ValueError:
        raise MlflowApiError("INVALID_PARAMETER_VALUE", "model_json is not JSON") from None
    if not isinstance(entry, dict):
        raise MlflowApiError("INVALID_PARAMETER_VALUE", "model_json is not a JSON object")
    try:
        history = json.loads(svc.get_run(run_id).tags.get(LOG_MODEL_HISTORY, "[]"))
    except ValueError:
        history = []
    history = [*(history if isinstance(history, list) else []), entry]
    text = json.dumps(history)
    while len(text) > TAG_VALUE_MAX and len(history) > 1:
        history = history[1:]
        text = json.dumps(history)
    if len(text) > TAG_VALUE_MAX:
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE",
            f"the model's metadata is {len(text)} characters; a tag holds {TAG_VALUE_MAX}",
        )
    svc.set_tags(run_id, {LOG_MODEL_HISTORY: text})
    return {}


ROUTES: list[tuple[str, str, Handler]] = [
    ("POST", "/experiments/create", create_experiment),
    ("GET", "/experiments/get", get_experiment),
    ("GET", "/experiments/get-by-name", get_experiment_by_name),
    ("POST", "/experiments/search", search_experiments),
    ("GET", "/experiments/search", search_experiments),
    ("POST", "/experiments/update", update_experiment),
    ("POST", "/experiments/delete", delete_experiment),
    ("POST", "/experiments/restore", restore_experiment),
    ("POST", "/experiments/set-experiment-tag", set_experiment_tag),
    ("POST", "/runs/create", create_run),
    ("GET", "/runs/get", get_run),
    ("POST", "/runs/update", update_run),
    ("POST", "/runs/delete", delete_run),
    ("POST", "/runs/restore", restore_run),
    ("POST", "/runs/log-metric", log_metric),
    ("POST", "/runs/log-parameter", log_param),
    ("POST", "/runs/log-batch", log_batch),
    ("POST", "/runs/set-tag", set_tag),
    ("POST", "/runs/delete-tag", delete_tag),
    ("POST", "/runs/search", search_runs),
    ("POST", "/runs/log-inputs", log_inputs),
    ("POST", "/runs/outputs", log_outputs),
    ("POST", "/runs/log-model", log_model),
    ("GET", "/metrics/get-history", get_metric_history),
]
