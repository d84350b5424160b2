"""The tracking API, declared once for both transports (`meshops.kernel.rpc`):
`TrackingService` implements it in-process; the routes and the HTTP client are derived from
the declarations. Written by hand on both sides (`tracking.remote`, `api.routers.tracking`):
run creation (the environment is captured where the code runs), the metric buffer and its
batched rows, artifact bytes and folders."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Protocol

from pydantic import Field

from meshops.kernel import rpc
from meshops.kernel.bounds import MAX_RUNS_PER_BATCH, JsonObject
from meshops.tracking.models import (
    Artifact,
    DatasetInput,
    Experiment,
    Metric,
    Run,
    RunPage,
    RunSpec,
)

if TYPE_CHECKING:
    from meshops.tracking.active import ActiveRun


class Tracking(Protocol):
    @rpc.post("/v1/experiments", status=201)
    def create_experiment(
        self, name: str, description: str = "", tags: dict[str, str] | None = None
    ) -> Experiment: ...

    @rpc.get("/v1/experiments/{name_or_id}")
    def get_experiment(self, name_or_id: str) -> Experiment: ...

    @rpc.get("/v1/experiments")
    def list_experiments(self) -> list[Experiment]: ...

    def create_run(
        self,
        experiment: str = "default",
        name: str | None = None,
        parent_run_id: str | None = None,
        tags: dict[str, str] | None = None,
        capture_environment: bool = True,
    ) -> Run:
        """Start a run (RUNNING). The experiment is created on first use. Git commit,
        branch, remote, dirty flag, diff digest, Python version, packages and host are
        captured as `meshops.*` tags unless `capture_environment` is False."""
        ...

    def start_run(
        self,
        experiment: str = "default",
        name: str | None = None,
        parent_run_id: str | None = None,
        tags: dict[str, str] | None = None,
        capture_environment: bool = True,
    ) -> ActiveRun:
        """`with tracking.start_run(...) as run:` creates the run; the block's end flushes
        buffered metrics and ends it FINISHED, or FAILED with the error if the block raised."""
        ...

    @rpc.post("/v1/runs/batch", status=201)
    def create_runs(
        self, runs: Annotated[list[RunSpec], Field(max_length=MAX_RUNS_PER_BATCH)]
    ) -> list[str]:
        """Many whole runs (experiment, name, tags, params, metric values, status, start
        and end times) in one request and one transaction: all are created or none, and a
        bad run is an error naming `runs[i]` and its field. Returns the new run ids in
        order. An import: no environment is captured and no run events are emitted."""
        ...

    @rpc.get("/v1/runs/-/resolve")
    def resolve_run_id(self, id_or_prefix: str) -> str:
        """The whole id of a run from its id or a unique prefix of it (tables print ids
        short); an ambiguous prefix is an error listing the candidates."""
        ...

    @rpc.get("/v1/runs/{run_id}")
    def get_run(self, run_id: str) -> Run: ...

    @rpc.post("/v1/runs/{run_id}/end")
    def end_run(self, run_id: str, status: str = "FINISHED", error: str | None = None) -> Run: ...

    @rpc.post("/v1/runs/{run_id}/params", status=204)
    def log_params(self, run_id: str, params: JsonObject) -> None: ...

    def log_metrics(self, run_id: str, metrics: Iterable[Metric]) -> None:
        """Append a batch of metric values (the fast path every buffer flushes through)."""
        ...

    def log_metric(
        self, run_id: str, key: str, value: float, step: int = 0, timestamp: float | None = None
    ) -> None:
        """Buffered per-value logging; sent in batches (see `flush`)."""
        ...

    def log_metric_rows(self, rows: Sequence[Sequence[Any]]) -> None:
        """The batch fast path: (run_id, key, value, step, timestamp) rows, one transaction."""
        ...

    def flush(self) -> None:
        """Send every buffered metric value now (also done at run end, close and exit)."""
        ...

    @rpc.post("/v1/runs/{run_id}/tags", status=204)
    def set_tags(self, run_id: str, tags: dict[str, str]) -> None: ...

    def log_artifact(
        self, run_id: str, local_path: str | Path, artifact_path: str | None = None
    ) -> list[Artifact]:
        """Store a file or a whole folder under the run's artifact tree."""
        ...

    def log_artifact_bytes(self, run_id: str, artifact_path: str, data: bytes) -> Artifact: ...

    @rpc.get("/v1/runs/{run_id}/artifacts")
    def list_artifacts(self, run_id: str, prefix: str = "") -> list[Artifact]: ...

    def read_artifact(self, run_id: str, path: str) -> bytes: ...

    def download_artifacts(self, run_id: str, path: str, dest: str | Path) -> Path: ...

    @rpc.post("/v1/runs/{run_id}/inputs", status=204)
    def log_input(self, run_id: str, dataset: DatasetInput) -> None: ...

    @rpc.get("/v1/runs/{run_id}/metrics/history")
    def metric_history(self, run_id: str, key: str) -> list[Metric]: ...

    @rpc.post("/v1/runs/search")
    def search_runs(
        self,
        experiments: list[str] | None = None,
        filter: str = "",
        order_by: list[str] | None = None,
        max_results: int = 100,
        page_token: str | None = None,
    ) -> RunPage:
        """Filter language: `metrics.rmse < 0.5 and params.model = 'rf' and tags.team = 'x'`
        plus attributes (`attributes.status = 'FINISHED'`, `name`, `start_time` ...);
        order by `metrics.x DESC`, `params.y`, `start_time` ..."""
        ...
