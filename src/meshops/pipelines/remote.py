"""What the pipelines client does differently over HTTP; the rest is derived from the
declarations in `pipelines.interface`.

`run`, a local `resume` and `reproduce` execute steps in this process and record through
the server; artifacts travel as raw bytes to the server's blob endpoints. `run_host` gives
a process that executes runs both the public and the worker operations.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast
from urllib.parse import quote

from meshops.kernel.http import HttpTransport
from meshops.kernel.rpc import RemoteArea, remote
from meshops.pipelines.artifacts import HttpArtifactStore, StoreSpec
from meshops.pipelines.interface import BASE, Pipelines, RunHost
from meshops.pipelines.models import PipelineRun, ReproduceReport, RunDetail

TrackingSource = Callable[[], Any]


class RemotePipelinesBase(RemoteArea):
    """`tracking` gives the platform's tracking client, for the runs executed here."""

    def __init__(self, http: HttpTransport, tracking: TrackingSource | None = None) -> None:
        super().__init__(http)
        self.tracking = tracking

    def run(
        self,
        pipeline: Any,
        params: dict[str, Any] | None = None,
        executor: str = "inline",
        *,
        ray_address: str | None = None,
        max_workers: int | None = None,
        track: bool = True,
    ) -> RunDetail:
        from meshops.pipelines.runner import run_here

        options = {"ray_address": ray_address, "max_workers": max_workers}
        tracking = self._tracking() if track else None
        return run_here(
            self._host(), pipeline, params, executor, tracking=tracking, executor_options=options
        )

    def resume(
        self, run_id: str, *, local: bool = False, executor: str | None = None
    ) -> PipelineRun:
        if local:
            from meshops.pipelines.runner import run_here

            host = self._host()
            old = host.get_run(run_id).run
            detail = run_here(
                host,
                old.ref,
                old.params,
                executor or old.executor,
                tracking=self._tracking(),
                resumed_from=run_id,
            )
            return detail.run
        # Not derived: the server never executes a run itself, so only `executor` is sent.
        path = f"{BASE}/runs/{quote(run_id, safe='')}/resume"
        return PipelineRun.model_validate(self.http.post(path, {"executor": executor}))

    def reproduce(
        self, run_id: str, executor: str = "inline", *, use_current_code: bool = False
    ) -> ReproduceReport:
        from meshops.pipelines import reproduction

        connection = reproduction.http_connection(self.http.base_url, self.http.token)
        return reproduction.reproduce(self._host(), connection, run_id, executor, use_current_code)

    def _host(self) -> RunHost:
        """This client with the worker operations, on the same transport."""
        return remote(RunHost, self.http, RemoteRunHostBase, tracking=self.tracking)

    def _tracking(self) -> Any:
        return self.tracking() if self.tracking is not None else None


class RemoteWorkerBase(RemoteArea):
    def store_spec(self) -> StoreSpec:
        return StoreSpec("http", self.http.base_url, token=self.http.token)

    def put_artifact(self, data: bytes) -> str:
        return HttpArtifactStore(self.http).put_bytes(data)

    def get_artifact(self, digest: str) -> bytes:
        return HttpArtifactStore(self.http).get_bytes(digest)


class RemoteRunHostBase(RemotePipelinesBase, RemoteWorkerBase):
    pass


def run_host(pipelines: Pipelines) -> RunHost:
    """The public and the worker operations on the transport of `pipelines`: in-process,
    the service itself (it implements both); over HTTP, the client of both Protocols."""
    if isinstance(pipelines, RemotePipelinesBase):
        return pipelines._host()
    return cast(RunHost, pipelines)
