"""MLflow's artifact proxy (`/api/2.0/mlflow-artifacts/artifacts/<path>`) over the files
of meshops runs and logged models.

An artifact URI `mlflow-artifacts:/<experiment>/<run id>/artifacts/<file>` names a file of
a run; `mlflow-artifacts:/<experiment>/models/<model id>/artifacts/<file>` a file of a
logged model. The files are stored, authorised and audited by the tracking service (the
blob store keeps the bytes by digest); nothing is written to a server folder by path.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from meshops.kernel.home import Context
from meshops.mlflow.common import MlflowApiError, run_artifact_uri, text_field
from meshops.tracking.logged_models import LoggedModels
from meshops.tracking.models import Artifact, check_artifact_path
from meshops.tracking.service import TrackingService


@dataclass(frozen=True)
class Location:
    kind: str  # "run" or "model"
    owner: str  # run id or logged model id
    path: str  # inside the owner's tree ("" for its root)


def locate(path: str) -> Location:
    parts = [p for p in path.strip("/").split("/") if p]
    if any(p in (".", "..") for p in parts) or "\\" in path:
        raise MlflowApiError("INVALID_PARAMETER_VALUE", f"Invalid artifact path: '{path}'")
    if len(parts) >= 4 and parts[1] == "models" and parts[3] == "artifacts":
        return Location("model", parts[2], "/".join(parts[4:]))
    if len(parts) >= 3 and parts[2] == "artifacts":
        return Location("run", parts[1], "/".join(parts[3:]))
    raise MlflowApiError(
        "RESOURCE_DOES_NOT_EXIST",
        f"'{path}' is not an artifact path of meshops: <experiment>/<run id>/artifacts/... "
        "or <experiment>/models/<model id>/artifacts/...",
    )


def _listing(ctx: Context, where: Location) -> list[Artifact]:
    prefix = f"{where.path}/" if where.path else ""
    if where.kind == "run":
        listed = TrackingService(ctx).list_artifacts(where.owner, prefix)
    else:
        listed = LoggedModels(ctx).list_files(where.owner, prefix)
    return listed


def children(listed: list[Artifact], folder: str) -> list[dict[str, Any]]:
    """The direct children of `folder` (files and folders), paths relative to it."""
    prefix = f"{folder}/" if folder else ""
    files: dict[str, dict[str, Any]] = {}
    for artifact in listed:
        if not artifact.path.startswith(prefix):
            continue
        rest = artifact.path[len(prefix) :]
        head, sep, _ = rest.partition("/")
        if sep:
            files.setdefault(head, {"path": head, "is_dir": True})
        else:
            files[head] = {"path": head, "is_dir": False, "file_size": artifact.size}
    return [files[k] for k in sorted(files)]


def proxy_list(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    where = locate(str(data.get("path") or ""))
    return {"files": children(_listing(ctx, where), where.path)}


def proxy_download(ctx: Context, path: str) -> bytes:
    where = locate(path)
    if not where.path:
        raise MlflowApiError("INVALID_PARAMETER_VALUE", "Artifact path refers to a directory")
    if where.kind == "run":
        return TrackingService(ctx).read_artifact(where.owner, where.path)
    return LoggedModels(ctx).read_file(where.owner, where.path)


def proxy_upload(ctx: Context, path: str, data: bytes) -> None:
    where = locate(path)
    check_artifact_path(where.path)
    if where.kind == "run":
        TrackingService(ctx).log_artifact_bytes(where.owner, where.path, data)
    else:
        LoggedModels(ctx).put_file(where.owner, where.path, data)


def list_run_artifacts(ctx: Context, data: dict[str, Any]) -> dict[str, Any]:
    """`GET /api/2.0/mlflow/artifacts/list?run_id=&path=`: paths relative to the run's root."""
    from meshops.mlflow.tracking import Ids

    svc = TrackingService(ctx)
    run_id = str(data.get("run_id") or data.get("run_uuid") or "") or text_field(data, "run_id")
    run = svc.get_run(run_id)
    folder = str(data.get("path") or "").strip("/")
    listed = svc.list_artifacts(run_id, f"{folder}/" if folder else "")
    files = children(listed, folder)
    for item in files:
        item["path"] = f"{folder}/{item['path']}" if folder else item["path"]
    root = run_artifact_uri(Ids(svc).to_mlflow(run.experiment_id), run.id)
    return {"root_uri": root, "files": files}
