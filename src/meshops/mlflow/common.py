"""What every MLflow route shares: the error shape and codes the MLflow client expects,
the request body, id and time conversions, and the JSON shapes of tracking objects
(as MLflow's protobuf messages serialise to JSON: field names as in service.proto, int64
as numbers, lists of `{key, value}` for params and tags).

Ids: a meshops run id (32 hex digits) is the MLflow run id; a meshops experiment id is
its MLflow id, except the experiment `default`, which is MLflow's default experiment "0".
Artifact URIs are `mlflow-artifacts:/<experiment id>/<run id>/artifacts` (the layout of
an MLflow server's proxied artifacts), served by the artifact proxy routes here.
"""

from __future__ import annotations

import base64
import json
import math
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from fastapi import Request
from fastapi.responses import JSONResponse

from meshops.kernel.errors import (
    Conflict,
    Forbidden,
    InvalidInput,
    MeshopsError,
    NotFound,
    Unauthenticated,
)
from meshops.tracking.models import DEFAULT_EXPERIMENT, Experiment, Run

DEFAULT_EXPERIMENT_ID = "0"
MAX_BODY_ITEMS = 10_000  # entries of one list in a request (log-batch's own limit is lower)

# MLflow's error codes and the HTTP status its server gives each (mlflow.exceptions).
HTTP_STATUS = {
    "INVALID_PARAMETER_VALUE": 400,
    "BAD_REQUEST": 400,
    "MALFORMED_REQUEST": 400,
    "RESOURCE_ALREADY_EXISTS": 400,
    "RESOURCE_DOES_NOT_EXIST": 404,
    "UNAUTHENTICATED": 401,
    "PERMISSION_DENIED": 403,
    "INVALID_STATE": 500,
    "INTERNAL_ERROR": 500,
    "ENDPOINT_NOT_FOUND": 404,
}


class MlflowApiError(Exception):
    """An MLflow error answer raised by the translation layer itself."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


def error_code(exc: MeshopsError) -> str:
    if isinstance(exc, Unauthenticated):
        return "UNAUTHENTICATED"
    if isinstance(exc, Forbidden):
        return "PERMISSION_DENIED"
    if isinstance(exc, NotFound):
        return "RESOURCE_DOES_NOT_EXIST"
    if isinstance(exc, Conflict):
        return "RESOURCE_ALREADY_EXISTS" if "already exists" in exc.message else "INVALID_STATE"
    if isinstance(exc, InvalidInput):
        return "INVALID_PARAMETER_VALUE"
    return "INTERNAL_ERROR"


def error_response(exc: Exception) -> JSONResponse:
    """`{"error_code": ..., "message": ...}` with the status MLflow gives that code; the
    message is meshops's own, with its fix when there is one."""
    if isinstance(exc, MlflowApiError):
        code, message = exc.code, exc.message
    elif isinstance(exc, MeshopsError):
        code = error_code(exc)
        # A conflict that is not "already exists" (an immutable param, an ended run) is
        # a bad value for MLflow's client, which gives up instead of retrying.
        if code == "INVALID_STATE":
            code = "INVALID_PARAMETER_VALUE"
        fix = exc.detail.get("fix")
        message = f"{exc.message} (fix: {fix})" if isinstance(fix, str) and fix else exc.message
    else:
        raise exc
    return JSONResponse(
        status_code=HTTP_STATUS.get(code, 500), content={"error_code": code, "message": message}
    )


async def body(request: Request) -> dict[str, Any]:
    """The request's parameters: the JSON body of a POST/PATCH/DELETE, the query string of a
    GET (repeated keys become lists, as MLflow's client sends them)."""
    if request.method == "GET":
        out: dict[str, Any] = {}
        for key, value in request.query_params.multi_items():
            if key in out:
                previous = out[key]
                out[key] = [*previous, value] if isinstance(previous, list) else [previous, value]
            else:
                out[key] = value
        return out
    raw = await request.body()
    if not raw.strip():
        return {}
    try:
        parsed = json.loads(raw)
    except ValueError as exc:
        raise MlflowApiError("MALFORMED_REQUEST", f"the request body is not JSON: {exc}") from exc
    if not isinstance(parsed, dict):
        raise MlflowApiError("MALFORMED_REQUEST", "the request body is not a JSON object")
    return parsed


def text_field(data: Mapping[str, Any], name: str, *, required: bool = True) -> str:
    value = data.get(name)
    if value is None or value == "":
        if required:
            raise MlflowApiError(
                "INVALID_PARAMETER_VALUE", f"Missing value for required parameter '{name}'."
            )
        return ""
    if not isinstance(value, str):
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE", f"Invalid value {value!r} for parameter '{name}': text"
        )
    return value


def int_field(data: Mapping[str, Any], name: str, default: int, low: int, high: int) -> int:
    value = data.get(name, default)
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE",
            f"Invalid value {value!r} for parameter '{name}': an integer",
        ) from None
    if not low <= number <= high:
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE",
            f"Invalid value {number} for parameter '{name}': between {low} and {high}",
        )
    return number


def key_values(data: Mapping[str, Any], name: str) -> dict[str, str]:
    """`[{"key": k, "value": v}, ...]` of a request as a dict."""
    items = data.get(name) or []
    if not isinstance(items, list) or len(items) > MAX_BODY_ITEMS:
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE",
            f"'{name}' is a list of at most {MAX_BODY_ITEMS} {{key, value}} objects",
        )
    out: dict[str, str] = {}
    for item in items:
        if not isinstance(item, dict) or not isinstance(item.get("key"), str):
            raise MlflowApiError(
                "INVALID_PARAMETER_VALUE", f"every entry of '{name}' needs a 'key' string"
            )
        value = item.get("value", "")
        out[item["key"]] = value if isinstance(value, str) else str(value)
    return out


def kv_list(values: Mapping[str, str]) -> list[dict[str, str]]:
    return [{"key": k, "value": v} for k, v in values.items()]


def json_number(value: float) -> float | str:
    """JSON has no NaN or infinities; protobuf's JSON form spells them as strings."""
    if math.isnan(value):
        return "NaN"
    if math.isinf(value):
        return "Infinity" if value > 0 else "-Infinity"
    return value


def millis(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


# ids -------------------------------------------------------------------------------------


def experiment_ref(experiment_id: str) -> str:
    """The meshops name-or-id of an MLflow experiment id."""
    return DEFAULT_EXPERIMENT if experiment_id == DEFAULT_EXPERIMENT_ID else experiment_id


def mlflow_experiment_id(experiment: Experiment) -> str:
    return DEFAULT_EXPERIMENT_ID if experiment.name == DEFAULT_EXPERIMENT else experiment.id


def encode_token(offset: int) -> str:
    return base64.urlsafe_b64encode(json.dumps({"offset": offset}).encode()).decode()


def decode_token(token: str | None) -> int:
    if not token:
        return 0
    try:
        offset = json.loads(base64.urlsafe_b64decode(token.encode()))["offset"]
        if not isinstance(offset, int) or not 0 <= offset <= 10_000_000:
            raise ValueError(offset)
    except (ValueError, KeyError, TypeError) as exc:
        raise MlflowApiError(
            "INVALID_PARAMETER_VALUE",
            "Invalid page token: pass next_page_token of the previous page as is",
        ) from exc
    return offset


# shapes ----------------------------------------------------------------------------------


def run_artifact_uri(experiment_id: str, run_id: str) -> str:
    return f"mlflow-artifacts:/{experiment_id}/{run_id}/artifacts"


def model_artifact_uri(experiment_id: str, model_id: str) -> str:
    return f"mlflow-artifacts:/{experiment_id}/models/{model_id}/artifacts"


def experiment_json(experiment: Experiment) -> dict[str, Any]:
    mlflow_id = mlflow_experiment_id(experiment)
    created = millis(experiment.created_at)
    return {
        "experiment_id": mlflow_id,
        "name": experiment.name,
        "artifact_location": f"mlflow-artifacts:/{mlflow_id}",
        "lifecycle_stage": experiment.lifecycle_stage,
        "creation_time": created,
        "last_update_time": created,
        "tags": kv_list(experiment.tags),
    }


def run_info_json(run: Run, experiment_id: str) -> dict[str, Any]:
    info: dict[str, Any] = {
        "run_id": run.id,
        "run_uuid": run.id,
        "run_name": run.name,
        "experiment_id": experiment_id,
        "user_id": run.user,
        "status": run.status.value,
        "start_time": millis(run.start_time),
        "artifact_uri": run_artifact_uri(experiment_id, run.id),
        "lifecycle_stage": run.lifecycle_stage,
    }
    if run.end_time is not None:
        info["end_time"] = millis(run.end_time)
    return info


def run_json(
    run: Run,
    experiment_id: str,
    metric_details: Mapping[str, tuple[int, float]] | None = None,
    model_outputs: list[dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """A run as MLflow's `Run` message. `metric_details` gives each latest value's (step,
    timestamp in seconds); without it they are 0 and the run's start."""
    start = millis(run.start_time) or 0
    details = metric_details or {}
    metrics = []
    for key, value in run.metrics.items():
        step, stamp = details.get(key, (0, start / 1000))
        metrics.append(
            {
                "key": key,
                "value": json_number(value),
                "timestamp": int(stamp * 1000),
                "step": step,
            }
        )
    tags = {"mlflow.runName": run.name, "mlflow.user": run.user, **run.tags}
    if run.parent_run_id:
        tags.setdefault("mlflow.parentRunId", run.parent_run_id)
    inputs = [
        {
            "tags": [{"key": "mlflow.data.context", "value": i.context}],
            "dataset": {
                "name": i.name or i.urn,
                "digest": i.digest,
                "source_type": "meshops",
                "source": json.dumps({"uri": i.urn}),
            },
        }
        for i in run.inputs
    ]
    return {
        "info": run_info_json(run, experiment_id),
        "data": {"metrics": metrics, "params": kv_list(run.params), "tags": kv_list(tags)},
        "inputs": {"dataset_inputs": inputs},
        "outputs": {"model_outputs": model_outputs or []},
    }
