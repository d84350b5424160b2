"""The MLflow model registry REST API (`/api/2.0/mlflow/registered-models/...`,
`/api/2.0/mlflow/model-versions/...`, and their `/ajax-api/` twins) over meshops's registry
service (`meshops.mlflow.registry`). The caller comes from the bearer token exactly as for
the native API; errors answer in MLflow's shape so the client raises MlflowException with
meshops's message."""

from __future__ import annotations

from fastapi import APIRouter

from meshops.api.routers.mlflow_tracking import mount
from meshops.mlflow import registry

router = APIRouter(tags=["mlflow"])
mount(router, registry.ROUTES, method_in_name=True)
