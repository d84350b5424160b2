"""The feature store API, declared once for both transports (`meshops.kernel.rpc`):
`FeatureStoreService` implements it in-process; the routes and the HTTP client are derived
from the declarations. Three operations are written by hand on both sides
(`features/remote.py`, `api/routers/features.py`): `training_set` and `get_training_set`,
whose answer streams its data from a route of its own, and `materialize`, which takes a
progress callback; the online lookup's route also has an ASGI fast path."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Protocol

from meshops.features.materialize import Progress
from meshops.features.models import (
    ApplyResult,
    FeatureRepo,
    FeatureView,
    MaterializeResult,
    OnlineResponse,
    TrainingSet,
    TrainingSetInfo,
    ViewStatus,
    ViewSummary,
)
from meshops.kernel import rpc


class FeatureStore(Protocol):
    @rpc.post("/v1/features/apply")
    def apply(self, repo: FeatureRepo) -> ApplyResult:
        """Create or update entities, feature views (checked against their product's
        contract), on-demand features and feature services."""
        ...

    @rpc.get("/v1/features/definitions")
    def list_definitions(self, kind: str | None = None) -> list[ViewSummary]: ...

    @rpc.get("/v1/features/definitions/{kind}/{name}")
    def get(self, name: str, kind: str = "feature_view") -> ViewSummary: ...

    @rpc.get("/v1/features/views/{name}")
    def get_view(self, name: str) -> FeatureView: ...

    def training_set(
        self,
        entities: Any,
        features: list[str] | str,
        *,
        name: str = "training_set",
        timestamp_column: str = "event_timestamp",
        full_names: bool = False,
    ) -> TrainingSet:
        """Point-in-time correct features for each row of `entities` (Arrow or pandas, or
        SQL over data products naming them `domain.name`: the join keys and
        `timestamp_column`), recorded with a digest and lineage."""
        ...

    def get_training_set(self, id_or_digest: str) -> TrainingSet: ...

    @rpc.get("/v1/features/training-sets")
    def list_training_sets(self, name: str | None = None) -> list[TrainingSetInfo]: ...

    def materialize(
        self,
        views: list[str] | None = None,
        *,
        end: datetime | None = None,
        full: bool = False,
        progress: Progress | None = None,
    ) -> list[MaterializeResult]:
        """Load what is new since each view's watermark into the online store."""
        ...

    @rpc.post("/v1/features/online")
    def online(
        self,
        entity_rows: Sequence[dict[str, Any]],
        features: list[str] | str | None = None,
        *,
        service: str | None = None,
        full_names: bool = False,
        now: datetime | None = None,
    ) -> OnlineResponse:
        """The latest values per entity row of `features` ('view:feature' references) or
        of the feature service `service`; missing or stale (beyond TTL) values are nulls
        with a per-row status."""
        ...

    @rpc.get("/v1/features/views/{view_name}/status")
    def status(self, view_name: str) -> ViewStatus:
        """Freshness and basic statistics of a view."""
        ...
