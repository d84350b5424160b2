"""What `Tracking` does differently over HTTP; the rest of the client is derived from the
declarations in `tracking.interface` (`RemoteTracking`).

Metric values are buffered and sent by a background thread in batches of compact JSON
rows; the environment of a run is captured here, in the client process, where the code
actually runs (the server only stores the tags); artifacts travel as raw bytes.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from meshops.kernel import jsontext
from meshops.kernel.http import HttpTransport
from meshops.kernel.rpc import RemoteArea
from meshops.tracking import environment
from meshops.tracking.active import ActiveRun, MetricBuffer
from meshops.tracking.artifacts import artifact_files, select_artifacts, write_artifacts
from meshops.tracking.interface import Tracking
from meshops.tracking.models import DEFAULT_EXPERIMENT, Artifact, Metric, Run, check_key

# Keeps one request body around 2 MB; the server commits each batch in one transaction.
HTTP_BATCH_ROWS = 25_000


class RemoteTrackingBase(RemoteArea):
    def __init__(self, http: HttpTransport) -> None:
        super().__init__(http)
        self.metric_buffer = MetricBuffer(
            self.log_metric_rows, max_rows=HTTP_BATCH_ROWS, background=True
        )

    def create_run(
        self,
        experiment: str = DEFAULT_EXPERIMENT,
        name: str | None = None,
        parent_run_id: str | None = None,
        tags: dict[str, str] | None = None,
        capture_environment: bool = True,
    ) -> Run:
        env = environment.capture() if capture_environment else None
        all_tags = {**(env.tags if env else {}), **(tags or {})}
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
        return ActiveRun(self, run, self.metric_buffer)  # type: ignore[arg-type]

    def end_run(self, run_id: str, status: str = "FINISHED", error: str | None = None) -> Run:
        self.metric_buffer.flush()  # the run's values land before it ends
        body = {"status": status, "error": error}
        return Run.model_validate(self.http.post(f"/v1/runs/{_seg(run_id)}/end", body))

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
            self.http.request(
                "POST",
                "/v1/metrics/batch",
                content=jsontext.dumps({"rows": chunk}),
                headers={"content-type": "application/json"},
            )

    def flush(self) -> None:
        self.metric_buffer.flush()

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

    def read_artifact(self, run_id: str, path: str) -> bytes:
        data = self.http.request(
            "GET", f"/v1/runs/{_seg(run_id)}/artifacts/content", params={"path": path}
        )
        return data if isinstance(data, bytes) else str(data).encode()

    def download_artifacts(self, run_id: str, path: str, dest: str | Path) -> Path:
        tracking: Tracking = self  # type: ignore[assignment]  # the derived half lists
        matches = select_artifacts(tracking.list_artifacts(run_id, path), path, run_id)
        by_digest = {a.digest: a.path for a in matches}
        return write_artifacts(
            matches, path, dest, lambda digest: self.read_artifact(run_id, by_digest[digest])
        )


def _seg(value: str) -> str:
    return quote(value, safe="")
