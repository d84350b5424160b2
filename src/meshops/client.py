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
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from meshops import assembly
from meshops.assembly import AreaSpec
from meshops.kernel.config import Settings, load_settings

if TYPE_CHECKING:
    from meshops.features.interface import FeatureStore
    from meshops.governance.interface import Governance
    from meshops.kernel.auth import Actor
    from meshops.kernel.home import Context, Home
    from meshops.kernel.http import HttpTransport
    from meshops.kernel.lineage import Lineage
    from meshops.mesh.interface import Mesh
    from meshops.monitoring.interface import Monitoring
    from meshops.pipelines.interface import Pipelines
    from meshops.project.interface import Project
    from meshops.registry.interface import Registry
    from meshops.registry.loaded import LoadedModel
    from meshops.serving.interface import Serving
    from meshops.tracking.interface import Tracking

P = TypeVar("P")


class Platform:
    """One handle on the platform, whatever the transport."""

    def __init__(
        self,
        settings: Settings,
        *,
        home: Home | None = None,
        http: HttpTransport | None = None,
        actor: Actor | None = None,
        owns_home: bool = False,
    ) -> None:
        """`owns_home`: the platform opened `home` itself (`connect`), so closing the
        platform closes the home (its database connections, serving threads) too."""
        self.settings = settings
        self.home = home
        self.http = http
        self._owns_home = owns_home
        if home is not None:
            self.context: Context | None = home.context(actor)
        elif http is not None:
            self.context = None
        else:
            raise ValueError("a Platform needs a home or an HTTP transport")
        _open_platforms.add(self)

    # Areas are built on first use (and imported then): a command that needs one area does
    # not pay for importing the others. `cached_property` keeps them assignable in tests.

    @cached_property
    def lineage(self) -> Lineage:
        from meshops.kernel.lineage import Lineage, LineageService

        if self.context is not None:
            return LineageService(self.context)
        from meshops.kernel.rpc import remote

        return remote(Lineage, self._http())

    @cached_property
    def mesh(self) -> Mesh:
        return self._area(assembly.MESH)

    @cached_property
    def tracking(self) -> Tracking:
        return self._area(assembly.TRACKING)

    @cached_property
    def registry(self) -> Registry:
        return self._area(assembly.REGISTRY)

    @cached_property
    def features(self) -> FeatureStore:
        return self._area(assembly.FEATURES)

    @cached_property
    def monitoring(self) -> Monitoring:
        return self._area(assembly.MONITORING)

    @cached_property
    def pipelines(self) -> Pipelines:
        return self._area(assembly.PIPELINES)

    @cached_property
    def governance(self) -> Governance:
        return self._area(assembly.GOVERNANCE)

    @cached_property
    def serving(self) -> Serving:
        return self._area(assembly.SERVING)

    @cached_property
    def project(self) -> Project:
        return self._area(assembly.PROJECT)

    def _area(self, area: AreaSpec[P]) -> P:
        """The area's service on this platform's context, or its HTTP client (derived from
        the area's declarations, on top of its hand-written methods)."""
        if self.context is not None:
            return area.service(self.context)
        return area.remote(self._http(), self)

    def _http(self) -> HttpTransport:
        assert self.http is not None
        return self.http

    @property
    def is_remote(self) -> bool:
        return self.http is not None

    def flush(self) -> None:
        # Only areas already built can hold buffered work (tracking, serving).
        for area in ("tracking", "serving"):
            if area in self.__dict__:
                self.__dict__[area].flush()

    def close(self) -> None:
        self.flush()
        if self.http is not None:
            self.http.close()
        _open_platforms.discard(self)
        if self._owns_home and self.home is not None:
            self.home.close()

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
        from meshops.kernel.http import HttpTransport

        assert settings.uri is not None
        http = HttpTransport(settings.uri, settings.token)
        return Platform(settings, http=http)
    from meshops.kernel.home import Home

    return Platform(settings, home=Home(settings), actor=actor, owns_home=True)


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
