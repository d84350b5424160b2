"""`platform.serving`: endpoints, predictions, feedback and the prediction log, declared once
for both transports (`meshops.kernel.rpc`): `ServingService` implements it in-process; the
routes and the HTTP client are derived from the declarations. Predictions and feedback are
written by hand (`serving/remote.py`): their routes are the data plane's
(`serving/endpoint_app.py`), shared with `meshops serve`."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Annotated, Any, Literal, Protocol

from pydantic import Field

from meshops.kernel import rpc
from meshops.kernel.bounds import Percent
from meshops.mesh.models import DataProductVersion
from meshops.serving.models import Endpoint, FeedbackItem, Prediction, RolledLog

if TYPE_CHECKING:
    import pyarrow as pa


class Serving(Protocol):
    @rpc.post("/v1/endpoints", status=201)
    def create_endpoint(
        self,
        name: str,
        model: str,
        *,
        domain: str | None = None,
        canary: str | None = None,
        canary_percent: Percent = 0.0,
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

    @rpc.get("/v1/endpoints/{name}")
    def get_endpoint(self, name: str) -> Endpoint: ...

    @rpc.get("/v1/endpoints")
    def list_endpoints(self, domain: str | None = None) -> list[Endpoint]: ...

    @rpc.put("/v1/endpoints/{name}/traffic")
    def set_traffic(
        self,
        name: str,
        *,
        model: str | None = None,
        canary: str | None = None,
        canary_percent: Percent = 0.0,
        shadows: list[str] | None = None,
        trust_model_code: bool | None = None,
    ) -> Endpoint: ...

    @rpc.delete("/v1/endpoints/{name}", status=204)
    def delete_endpoint(self, name: str) -> None: ...

    def predict(
        self, name: str, records: Any, request_id: str | None = None, *, proba: bool = False
    ) -> Prediction:
        """Score a list of records (dicts) or an MLflow-style body; the returned
        `request_id` is the key for feedback. `proba=True`: each prediction is an object
        with the label (`prediction`) and `proba_<class>` per class of a classifier."""
        ...

    def feedback(self, name: str, request_id: str, label: Any, record: int = 0) -> int: ...

    def feedback_bulk(self, name: str, items: list[FeedbackItem] | list[dict[str, Any]]) -> int: ...

    def flush(self) -> None:
        """Write buffered prediction-log rows (embedded: this process; remote: the server)."""
        ...

    @rpc.get("/v1/endpoints/{name}/predictions")
    def prediction_window(
        self,
        name: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        with_labels: bool = True,
        include_shadow: bool = False,
    ) -> pa.Table:
        """Predictions logged in [start, end), with labels where feedback came (an Arrow
        table; what monitors read)."""
        ...

    @rpc.post("/v1/endpoints/{name}/log/roll")
    def roll_log(self, name: str) -> RolledLog: ...

    @rpc.post("/v1/serving/batch", status=201)
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
        engine: Literal["local", "ray"] = "local",
        ray_address: Annotated[str, Field(max_length=500)] | None = None,
        block_rows: Annotated[int, Field(ge=1, le=10_000_000)] | None = None,
        workers: Annotated[int, Field(ge=1, le=256)] | None = None,
    ) -> DataProductVersion:
        """Score `product` with `model` and publish the predictions as a version of `output`.
        `engine="ray"`: blocks of `block_rows` rows are scored in parallel by `workers`
        Ray actors, each loading the model once, on the Ray at `ray_address` (default: a
        local Ray; in the API server, the cluster its admin configured); the published
        predictions equal a local scoring's (docs/ray.md)."""
        ...
