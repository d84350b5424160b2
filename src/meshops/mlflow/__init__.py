"""The MLflow tracking and registry REST API, served by meshops's own services.

The MLflow client (`MLFLOW_TRACKING_URI=http://meshops:8000`, `MLFLOW_TRACKING_TOKEN=<a
meshops API token>`) talks to these routes; every call goes through the same context,
authorisation and audit as the native API, and what it creates are meshops runs,
experiments and model versions. See docs/mlflow.md for what is supported and what differs.
"""
