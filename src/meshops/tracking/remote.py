"""`Tracking` over HTTP: the same calls as `TrackingService`, through `meshops server`.

Metric values are buffered and sent by a background thread in batches of compact JSON
rows; the environment of a run is captured here, in the client process, where the code
actually runs (the server only stores the tags).
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from meshops.kernel import jsontext
from meshops.kernel.http import HttpTransport
from meshops.tracking import environment
from meshops.tracking.active import ActiveRun, MetricBuffer
from meshops.tracking.models import (
    Artifact,
    DatasetInput,
    Experiment,
    Metric,
    Run,
    RunPage,
    check_key,
)
from meshops.tracking.service import (
    DEFAULT_EXPERIMENT,
    artifact_files,
    select_artifacts,
    write_artifacts,
)

# Keeps one request body around 2 MB; the server commits each batch in one transaction.
HTTP_BATCH_ROWS = 25_000


class RemoteTracking:
    def __init__(self, http: HttpTransport) -> None:
        self.http = http
        self.metric_buffer = MetricBuffer(
            self.log_metric_rows, max_rows=HTTP_BATCH_ROWS, background=True
        )

    # experiments ---------------------------------------------------------------------
    def create_experiment(
        self, name: str, description: str = "", tags: dict[str, str] | None = None
    ) -> Experiment:
        body = {"name": name, "description": description, "tags": tags or {}}
        return Experiment.model_validate(self.http.post("/v1/experiments", body))

    def get_experiment(self, name_or_id: str) -> Experiment:
        return Experiment.model_validate(self.http.get(f"/v1/experiments/{_seg(name_or_id)}"))

    def list_experiments(self) -> list[Experiment]:
        return [Experiment.model_validate(e) for e in self.http.get("/v1/experiments")]

    # runs ------------------------------------------------------------------------------
    def create_run(
        self,
        experiment: str = DEFAULT_EXPERIMENT,
        name: str | None = None,
        parent_run_id: str | None = None,
        tags: dict[str, str] | None = None,
        capture_environment: bool = True,
    ) -> Run:
        all_tags: dict[str, str] = {}
        env = environment.capture() if capture_environment else None
        if env is not None:
            all_tags.update(env.tags)
        all_tags.update(tags or {})
        body = {
            "experiment": experiment,
            "name": name,
            "parent_run_id": parent_run_id,
            "tags": all_tags,
        }
        run = Run.model_validate(self.http.post("/v1/runs", body))
        if env is not None:
            self.log_artifact_bytes(run.id, environment.PACKAGES_ARTIFACT, env.packages)
        return run

    def start_run(
        self,
        experiment: str = DEFAULT_EXPERIMENT,
        name: str | None = None,
        parent_run_id: str | None = None,
        tags: dict[str, str] | None = None,
        capture_environment: bool = True,
    ) -> ActiveRun:
        run = self.create_run(experiment, name, parent_run_id, tags, capture_environment)
        return ActiveRun(self, run, self.metric_buffer)

    def get_run(self, run_id: str) -> Run:
        return Run.model_validate(self.http.get(f"/v1/runs/{_seg(run_id)}"))

    def end_run(self, run_id: str, status: str = "FINISHED", error: str | None = None) -> Run:
        self.metric_buffer.flush()
        body = {"status": status, "error": error}
        return Run.model_validate(self.http.post(f"/v1/runs/{_seg(run_id)}/end", body))

    # params, tags, metrics -------------------------------------------------------------
    def log_params(self, run_id: str, params: dict[str, Any]) -> None:
        body = {k: v if isinstance(v, str) else _text(v) for k, v in params.items()}
        self.http.post(f"/v1/runs/{_seg(run_id)}/params", body)

    def set_tags(self, run_id: str, tags: dict[str, str]) -> None:
        self.http.post(f"/v1/runs/{_seg(run_id)}/tags", tags)

    def log_metric(
        self, run_id: str, key: str, value: float, step: int = 0, timestamp: float | None = None
    ) -> None:
        check_key(key, "metric")
        ts = time.time() if timestamp is None else timestamp
        self.metric_buffer.add((run_id, key, float(value), int(step), ts))

    def log_metrics(self, run_id: str, metrics: Iterable[Metric]) -> None:
        self.log_metric_rows([(run_id, m.key, m.value, m.step, m.timestamp) for m in metrics])

    def log_metric_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        for start in range(0, len(rows), HTTP_BATCH_ROWS):
            chunk = list(rows[start : start + HTTP_BATCH_ROWS])
            # A metric may be NaN or infinite: sent as "NaN"/"Infinity" strings, never as
            # bare literals (the server reads both into floats).
            body = jsontext.dumps({"rows": chunk})
            self.http.request(
                "POST",
                "/v1/metrics/batch",
                content=body,
                headers={"content-type": "application/json"},
            )

    def flush(self) -> None:
        self.metric_buffer.flush()

    def metric_history(self, run_id: str, key: str) -> list[Metric]:
        body = self.http.get(f"/v1/runs/{_seg(run_id)}/metrics/history", key=key)
        return [Metric(key=key, value=v, step=s, timestamp=t) for v, s, t in body["values"]]

    # artifacts and inputs ----------------------------------------------------------
    def log_artifact(
        self, run_id: str, local_path: str | Path, artifact_path: str | None = None
    ) -> list[Artifact]:
        return [
            self.log_artifact_bytes(run_id, path, file.read_bytes())
            for file, path in artifact_files(local_path, artifact_path)
        ]

    def log_artifact_bytes(self, run_id: str, artifact_path: str, data: bytes) -> Artifact:
        body = self.http.request(
            "PUT",
            f"/v1/runs/{_seg(run_id)}/artifacts",
            params={"path": artifact_path},
            content=data,
            headers={"content-type": "application/octet-stream"},
        )
        return Artifact.model_validate(body)

    def list_artifacts(self, run_id: str, prefix: str = "") -> list[Artifact]:
        body = self.http.get(f"/v1/runs/{_seg(run_id)}/artifacts", prefix=prefix)
        return [Artifact.model_validate(a) for a in body]

    def read_artifact(self, run_id: str, path: str) -> bytes:
        data = self.http.request(
            "GET", f"/v1/runs/{_seg(run_id)}/artifacts/content", params={"path": path}
        )
        return data if isinstance(data, bytes) else str(data).encode()

    def download_artifacts(self, run_id: str, path: str, dest: str | Path) -> Path:
        matches = select_artifacts(self.list_artifacts(run_id, path), path, run_id)
        by_digest = {a.digest: a.path for a in matches}
        return write_artifacts(
            matches, path, dest, lambda digest: self.read_artifact(run_id, by_digest[digest])
        )

    def log_input(self, run_id: str, dataset: DatasetInput) -> None:
        self.http.post(f"/v1/runs/{_seg(run_id)}/inputs", dataset.model_dump())

    # search --------------------------------------------------------------------------
    def search_runs(
        self,
        experiments: list[str] | None = None,
        filter: str = "",
        order_by: list[str] | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> RunPage:
        body = {
            "experiments": experiments,
            "filter": filter,
            "order_by": order_by or [],
            "max_results": max_results,
            "page_token": page_token,
        }
        return RunPage.model_validate(self.http.post("/v1/runs/search", body))


def _seg(value: str) -> str:
    return quote(value, safe="")


def _text(value: Any) -> str:
    return json.dumps(value) if value is None else str(value)
