"""The feature store over HTTP (`kernel.http.HttpTransport`); same Protocol as the service."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import pyarrow as pa

from meshops.features.arrow_ipc import bytes_to_reader, table_to_bytes
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
from meshops.kernel.errors import InvalidInput
from meshops.kernel.http import HttpTransport

PREFIX = "/v1/features"


def _entities_bytes(entities: Any) -> bytes:
    if isinstance(entities, pa.RecordBatchReader):
        entities = entities.read_all()
    if not isinstance(entities, pa.Table):
        try:
            entities = pa.Table.from_pandas(entities, preserve_index=False)
        except (TypeError, AttributeError) as exc:
            raise InvalidInput(
                "entities must be an Arrow table or a pandas DataFrame", {"field": "entities"}
            ) from exc
    return table_to_bytes(entities.replace_schema_metadata(None))


class RemoteFeatureStore:
    def __init__(self, http: HttpTransport) -> None:
        self.http = http

    def apply(self, repo: FeatureRepo) -> ApplyResult:
        body = self.http.post(f"{PREFIX}/apply", repo.model_dump(mode="json"))
        return ApplyResult.model_validate(body)

    def list_definitions(self, kind: str | None = None) -> list[ViewSummary]:
        body = self.http.get(f"{PREFIX}/definitions", kind=kind)
        return [ViewSummary.model_validate(item) for item in body]

    def get(self, name: str, kind: str = "feature_view") -> ViewSummary:
        return ViewSummary.model_validate(self.http.get(f"{PREFIX}/definitions/{kind}/{name}"))

    def get_view(self, name: str) -> FeatureView:
        return FeatureView.model_validate(self.http.get(f"{PREFIX}/views/{name}"))

    def _training_set(self, info: TrainingSetInfo) -> TrainingSet:
        def reader() -> pa.RecordBatchReader:
            return bytes_to_reader(self.http.get(f"{PREFIX}/training-sets/{info.id}/data"))

        return TrainingSet(info, reader)

    def training_set(
        self,
        entities: Any,
        features: list[str] | str,
        *,
        name: str = "training_set",
        timestamp_column: str = "event_timestamp",
        full_names: bool = False,
    ) -> TrainingSet:
        params: dict[str, Any] = {
            "name": name,
            "timestamp_column": timestamp_column,
            "full_names": str(full_names).lower(),
        }
        if isinstance(features, str):
            params["service"] = features
        else:
            params["feature"] = list(features)
        if isinstance(entities, str):
            # SQL over data products: the server runs it through the governed read path.
            params["sql"] = entities
            content = b""
        else:
            content = _entities_bytes(entities)
        body = self.http.request(
            "POST",
            f"{PREFIX}/training-sets",
            params=params,
            content=content,
            headers={"content-type": "application/vnd.apache.arrow.stream"},
        )
        return self._training_set(TrainingSetInfo.model_validate(body))

    def get_training_set(self, id_or_digest: str) -> TrainingSet:
        body = self.http.get(f"{PREFIX}/training-sets/{id_or_digest}")
        return self._training_set(TrainingSetInfo.model_validate(body))

    def list_training_sets(self, name: str | None = None) -> list[TrainingSetInfo]:
        body = self.http.get(f"{PREFIX}/training-sets", name=name)
        return [TrainingSetInfo.model_validate(item) for item in body]

    def materialize(
        self,
        views: list[str] | None = None,
        *,
        end: datetime | None = None,
        full: bool = False,
        progress: Progress | None = None,
    ) -> list[MaterializeResult]:
        names = views or [
            d.name for d in self.list_definitions("feature_view") if d.definition.get("online")
        ]
        results = []
        # One call per view, so a caller can show progress view by view.
        for view in names:
            body = self.http.post(
                f"{PREFIX}/materialize",
                {"views": [view], "end": end.isoformat() if end else None, "full": full},
            )
            done = [MaterializeResult.model_validate(item) for item in body]
            results += done
            if progress:
                for result in done:
                    progress(result.view, result.rows_written, result.rows_written)
        return results

    def online(
        self,
        entity_rows: Sequence[dict[str, Any]],
        features: list[str] | str,
        *,
        full_names: bool = False,
        now: datetime | None = None,
    ) -> OnlineResponse:
        body = self.http.post(
            f"{PREFIX}/online",
            {
                "entity_rows": list(entity_rows),
                "features": features,
                "full_names": full_names,
                "now": now.isoformat() if now else None,
            },
        )
        return OnlineResponse.model_validate(body)

    def status(self, view_name: str) -> ViewStatus:
        return ViewStatus.model_validate(self.http.get(f"{PREFIX}/views/{view_name}/status"))
