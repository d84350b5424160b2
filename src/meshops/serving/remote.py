"""What serving's HTTP client writes by hand; the rest of `Serving` is derived from its
declarations (`meshops.kernel.rpc`, wired in `meshops.assembly`).

Predictions and feedback go to the data plane's routes (`serving.endpoint_app`, the same in
`meshops server` and `meshops serve`): the body is the scoring payload itself and the
request id travels in a header. `flush` has nothing to send: the server writes its own
buffer before it answers window and roll calls."""

from __future__ import annotations

from typing import Any
from urllib.parse import quote

from meshops.kernel.rpc import RemoteArea
from meshops.serving.models import REQUEST_ID_HEADER, FeedbackItem, Prediction


def _endpoint_path(name: str, action: str) -> str:
    return f"/v1/endpoints/{quote(name, safe='')}/{action}"


class RemoteServingBase(RemoteArea):
    def predict(
        self, name: str, records: Any, request_id: str | None = None, *, proba: bool = False
    ) -> Prediction:
        body = records if isinstance(records, dict) else {"records": records}
        if proba:
            body = {**body, "proba": True}
        headers = {REQUEST_ID_HEADER: request_id} if request_id else None
        answer = self.http.request(
            "POST", _endpoint_path(name, "predict"), json=body, headers=headers
        )
        return Prediction.model_validate(answer)

    def feedback(self, name: str, request_id: str, label: Any, record: int = 0) -> int:
        return self.feedback_bulk(
            name, [FeedbackItem(request_id=request_id, label=label, record=record)]
        )

    def feedback_bulk(self, name: str, items: list[FeedbackItem] | list[dict[str, Any]]) -> int:
        body = [i.model_dump(mode="json") if isinstance(i, FeedbackItem) else i for i in items]
        answer = self.http.post(_endpoint_path(name, "feedback"), {"items": body})
        return int(answer["stored"])

    def flush(self) -> None:
        return None
