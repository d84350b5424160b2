"""What the feature store's HTTP client writes by hand; the rest of `FeatureStore` is
derived from its declarations (`meshops.kernel.rpc`, wired in `meshops.assembly`).

A training set is made from entity rows sent as one Arrow stream (or SQL the server runs
on the governed read path), and its data streams from a route of its own when read;
`materialize` asks view by view so a caller can show progress."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, cast
from urllib.parse import quote

import pyarrow as pa

from meshops.features.materialize import Progress
from meshops.features.models import MaterializeResult, TrainingSet, TrainingSetInfo
from meshops.kernel.errors import InvalidInput
from meshops.kernel.rpc import RemoteArea
from meshops.kernel.wire import ARROW_STREAM, decode_reader, encode_table

if TYPE_CHECKING:
    from meshops.features.interface import FeatureStore

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
    return encode_table(entities.replace_schema_metadata(None))


class RemoteFeatureStoreBase(RemoteArea):
    def _training_set(self, info: TrainingSetInfo) -> TrainingSet:
        path = f"{PREFIX}/training-sets/{quote(info.id, safe='')}/data"

        def reader() -> pa.RecordBatchReader:
            return decode_reader(self.http.get(path), "the training set's data")

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
            headers={"content-type": ARROW_STREAM},
        )
        return self._training_set(TrainingSetInfo.model_validate(body))

    def get_training_set(self, id_or_digest: str) -> TrainingSet:
        body = self.http.get(f"{PREFIX}/training-sets/{quote(id_or_digest, safe='')}")
        return self._training_set(TrainingSetInfo.model_validate(body))

    def materialize(
        self,
        views: list[str] | None = None,
        *,
        end: datetime | None = None,
        full: bool = False,
        progress: Progress | None = None,
    ) -> list[MaterializeResult]:
        store = cast("FeatureStore", self)
        names = views or [
            d.name for d in store.list_definitions("feature_view") if d.definition.get("online")
        ]
        results = []
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
