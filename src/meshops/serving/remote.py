"""`platform.serving` over HTTP (the `Serving` Protocol against `meshops server`)."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any

from meshops.kernel.http import HttpTransport
from meshops.serving.models import Endpoint, FeedbackItem, Prediction, RolledLog

if TYPE_CHECKING:
    import pyarrow as pa

    from meshops.mesh.models import DataProductVersion

REQUEST_ID_HEADER = "x-request-id"


class RemoteServing:
    def __init__(self, http: HttpTransport) -> None:
        self.http = http

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
        body = {
            "name": name,
            "model": model,
            "domain": domain,
            "canary": canary,
            "canary_percent": canary_percent,
            "shadows": shadows or [],
            "features": features,
            "entity_keys": entity_keys,
            "description": description,
            "trust_model_code": trust_model_code,
        }
        return Endpoint.model_validate(self.http.post("/v1/endpoints", body))

    def get_endpoint(self, name: str) -> Endpoint:
        return Endpoint.model_validate(self.http.get(f"/v1/endpoints/{name}"))

    def list_endpoints(self, domain: str | None = None) -> list[Endpoint]:
        return [Endpoint.model_validate(e) for e in self.http.get("/v1/endpoints", domain=domain)]

    def set_traffic(
        self,
        name: str,
        *,
        model: str | None = None,
        canary: str | None = None,
        canary_percent: float = 0.0,
        shadows: list[str] | None = None,
        trust_model_code: bool | None = None,
    ) -> Endpoint:
        body = {
            "model": model,
            "canary": canary,
            "canary_percent": canary_percent,
            "shadows": shadows or [],
            "trust_model_code": trust_model_code,
        }
        return Endpoint.model_validate(self.http.put(f"/v1/endpoints/{name}/traffic", body))

    def delete_endpoint(self, name: str) -> None:
        self.http.delete(f"/v1/endpoints/{name}")

    def predict(self, name: str, records: Any, request_id: str | None = None) -> Prediction:
        body = records if isinstance(records, dict) else {"records": records}
        headers = {REQUEST_ID_HEADER: request_id} if request_id else None
        answer = self.http.request(
            "POST", f"/v1/endpoints/{name}/predict", json=body, headers=headers
        )
        return Prediction.model_validate(answer)

    def feedback(self, name: str, request_id: str, label: Any, record: int = 0) -> int:
        return self.feedback_bulk(
            name, [FeedbackItem(request_id=request_id, label=label, record=record)]
        )

    def feedback_bulk(self, name: str, items: list[FeedbackItem] | list[dict[str, Any]]) -> int:
        body = [i.model_dump(mode="json") if isinstance(i, FeedbackItem) else i for i in items]
        answer = self.http.post(f"/v1/endpoints/{name}/feedback", {"items": body})
        return int(answer["stored"])

    def flush(self) -> None:
        # The server writes its own buffer before it answers window and roll calls.
        return None

    def prediction_window(
        self,
        name: str,
        start: datetime | None = None,
        end: datetime | None = None,
        *,
        with_labels: bool = True,
        include_shadow: bool = False,
    ) -> pa.Table:
        import pyarrow as pa

        data = self.http.get(
            f"/v1/endpoints/{name}/predictions",
            start=start.isoformat() if start else None,
            end=end.isoformat() if end else None,
            with_labels=with_labels,
            include_shadow=include_shadow,
        )
        with pa.ipc.open_stream(pa.BufferReader(data)) as reader:
            return reader.read_all()

    def roll_log(self, name: str) -> RolledLog:
        return RolledLog.model_validate(self.http.post(f"/v1/endpoints/{name}/log/roll"))

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
    ) -> DataProductVersion:
        from meshops.mesh.models import DataProductVersion

        body = {
            "model": model,
            "product": product,
            "version": version,
            "output": output,
            "output_version": output_version,
            "port": port,
            "keep_columns": keep_columns,
            "trust_model_code": trust_model_code,
        }
        return DataProductVersion.model_validate(self.http.post("/v1/serving/batch", body))
