"""`platform.serving`: endpoints, predictions, feedback and the prediction log, identical over
both transports (`ServingService` in-process, `RemoteServing` over HTTP)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Protocol

from meshops.serving.models import Endpoint, FeedbackItem, Prediction, RolledLog

if TYPE_CHECKING:
    import pyarrow as pa

    from meshops.mesh.models import DataProductVersion


class Serving(Protocol):
    def create_endpoint(
        self,
        name: str,
        model: str,
        *,
        domain: str | None = None,
        canary: str | None = None,
        canary_percent: float = 0.0,
        shadows: list[str] | None = None,
        features: list[str] | str | None = None,
        entity_keys: list[str] | None = None,
        description: str = "",
        trust_model_code: bool = False,
    ) -> Endpoint:
        """An endpoint serving `model` (`churn@champion`, `churn/3` or a `models:/` URI);
        optional canary (`canary_percent` of requests, by request-id hash), shadows (scored
        and logged, not returned) and online-feature enrichment by `entity_keys`.
        `trust_model_code=True` allows pickled (python-flavor) models; it is audited."""
        ...

    def get_endpoint(self, name: str) -> Endpoint: ...

    def list_endpoints(self, domain: str | None = None) -> list[Endpoint]: ...

    def set_traffic(
        self,
        name: str,
        *,
        model: str | None = None,
        canary: str | None = None,
        canary_percent: float = 0.0,
        shadows: list[str] | None = None,
        trust_model_code: bool | None = None,
    ) -> Endpoint: ...

    def delete_endpoint(self, name: str) -> None: ...

    def predict(self, name: str, records: Any, request_id: str | None = None) -> Prediction:
        """Score a list of records (dicts) or an MLflow-style body; the returned
        `request_id` is the key for feedback."""
        ...

    def feedback(self, name: str, request_id: str, label: Any, record: int = 0) -> int: ...

    def feedback_bulk(self, name: str, items: list[FeedbackItem] | list[dict[str, Any]]) -> int: ...

    def flush(self) -> None:
        """Write buffered prediction-log rows (embedded: this process; remote: the server)."""
        ...

    def prediction_window(
        self,
        name: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        with_labels: bool = True,
        include_shadow: bool = False,
    ) -> pa.Table: ...

    def roll_log(self, name: str) -> RolledLog: ...

    def batch_score(
        self,
        model: str,
        product: str,
        version: str | None = None,
        *,
        output: str,
        output_version: str | None = None,
        port: str | None = None,
        keep_columns: list[str] | None = None,
        trust_model_code: bool = False,
    ) -> DataProductVersion: ...
