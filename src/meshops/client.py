"""The SDK entry point: `meshops.connect(uri)` returns a `Platform`.

The same `Platform` interface runs the services in-process on an embedded home (SQLite +
local files by default) or talks HTTP to `meshops server`; `MESHOPS_URI` picks, like
MLflow's tracking URI. Each area exposes one object on the platform (`platform.tracking`,
`platform.registry` ...) whose embedded and remote implementations satisfy one Protocol.
"""

from __future__ import annotations

import atexit
import contextlib
import dataclasses
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from meshops.features.interface import FeatureStore
from meshops.governance.interface import Governance
from meshops.kernel.auth import Actor
from meshops.kernel.config import Settings, load_settings
from meshops.kernel.home import Context, Home
from meshops.kernel.http import HttpTransport
from meshops.kernel.lineage import LineageService, RemoteLineage
from meshops.mesh.interface import Mesh
from meshops.monitoring.interface import Monitoring
from meshops.pipelines.interface import Pipelines
from meshops.project.interface import Project
from meshops.registry.interface import Registry
from meshops.serving.interface import Serving
from meshops.tracking.interface import Tracking

if TYPE_CHECKING:
    from meshops.registry.loaded import LoadedModel


class Platform:
    """One handle on the platform, whatever the transport."""

    def __init__(
        self,
        settings: Settings,
        *,
        home: Home | None = None,
        http: HttpTransport | None = None,
        actor: Actor | None = None,
    ) -> None:
        self.settings = settings
        self.home = home
        self.http = http
        self._closers: list[Callable[[], None]] = []
        if home is not None:
            ctx = home.context(actor)
            self.context: Context | None = ctx
            self.lineage: LineageService | RemoteLineage = LineageService(ctx)
            from meshops.mesh.service import MeshService

            self.mesh: Mesh = MeshService(ctx)
            from meshops.tracking.service import TrackingService

            self.tracking: Tracking = TrackingService(ctx)
            from meshops.registry.service import RegistryService

            self.registry: Registry = RegistryService(ctx)
            from meshops.features.service import FeatureStoreService

            self.features: FeatureStore = FeatureStoreService(ctx)
            from meshops.monitoring.service import MonitoringService

            self.monitoring: Monitoring = MonitoringService(ctx)
            from meshops.pipelines.service import PipelinesService

            self.pipelines: Pipelines = PipelinesService(ctx)
            from meshops.governance.service import GovernanceService

            self.governance: Governance = GovernanceService(ctx)
            from meshops.serving.service import ServingService

            self.serving: Serving = ServingService(ctx)
            from meshops.project.service import ProjectService

            self.project: Project = ProjectService(ctx)
        elif http is not None:
            self.context = None
            self.lineage = RemoteLineage(http)
            from meshops.mesh.remote import RemoteMesh

            self.mesh = RemoteMesh(http)
            from meshops.tracking.remote import RemoteTracking

            self.tracking = RemoteTracking(http)
            from meshops.registry.remote import RemoteRegistry

            self.registry = RemoteRegistry(http)
            from meshops.features.remote import RemoteFeatureStore

            self.features = RemoteFeatureStore(http)
            from meshops.monitoring.remote import RemoteMonitoring

            self.monitoring = RemoteMonitoring(http)
            from meshops.pipelines.remote import RemotePipelines

            self.pipelines = RemotePipelines(http, settings.token)
            from meshops.governance.remote import RemoteGovernance

            self.governance = RemoteGovernance(http)
            from meshops.serving.remote import RemoteServing

            self.serving = RemoteServing(http)
            from meshops.project.remote import RemoteProject

            self.project = RemoteProject(http, self)
        else:
            raise ValueError("a Platform needs a home or an HTTP transport")
        self.on_close(self.tracking.flush)
        self.on_close(self.serving.flush)
        _open_platforms.add(self)

    @property
    def is_remote(self) -> bool:
        return self.http is not None

    def on_close(self, closer: Callable[[], None]) -> None:
        """Register work to finish before the platform closes (e.g. flush buffers)."""
        self._closers.append(closer)

    def flush(self) -> None:
        for closer in list(self._closers):
            closer()

    def close(self) -> None:
        self.flush()
        if self.http is not None:
            self.http.close()
        _open_platforms.discard(self)

    def __enter__(self) -> Platform:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        where = self.settings.uri if self.is_remote else str(self.settings.home)
        return f"Platform({where!r})"


_open_platforms: weakref.WeakSet[Platform] = weakref.WeakSet()


@atexit.register
def _flush_at_exit() -> None:
    # Nothing buffered is lost on a normal interpreter exit.
    for platform in list(_open_platforms):
        with contextlib.suppress(Exception):
            platform.flush()


def connect(
    uri: str | None = None,
    *,
    home: str | Path | None = None,
    token: str | None = None,
    actor: Actor | None = None,
) -> Platform:
    """Open the platform named by `uri` (or `MESHOPS_URI`, or the embedded default home)."""
    settings = load_settings(uri=uri, home=home)
    if token:
        # Areas that open their own HTTP connections (pipelines' artifacts) read it here.
        settings = dataclasses.replace(settings, token=token)
    if settings.is_remote:
        assert settings.uri is not None
        http = HttpTransport(settings.uri, settings.token)
        return Platform(settings, http=http)
    return Platform(settings, home=Home(settings), actor=actor)


def load_model(
    uri: str,
    platform: Platform | None = None,
    *,
    trust: bool = False,
    trusted_types: list[str] | None = None,
) -> LoadedModel:
    """Load a registered model by `models:/name@alias`, `models:/name/version` or
    `models:/name/latest` (see `Registry.load_model` for `trust` and `trusted_types`)."""
    if platform is not None:
        return platform.registry.load_model(uri, trust=trust, trusted_types=trusted_types)
    with connect() as opened:
        return opened.registry.load_model(uri, trust=trust, trusted_types=trusted_types)
