"""Endpoints, predictions, feedback and the prediction log over every transport."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meshops.client import Platform
from meshops.kernel.errors import Conflict, InvalidInput, NotFound
from tests.serving.helpers import FEATURES, record, register_churn


def test_endpoint_predict_feedback_and_window(platform: Platform) -> None:
    register_churn(platform)
    endpoint = platform.serving.create_endpoint("churn-api", "churn@champion")
    assert endpoint.domain == "sales"
    assert endpoint.model == "models:/churn@champion"
    assert [e.name for e in platform.serving.list_endpoints()] == ["churn-api"]
    with pytest.raises(Conflict):
        platform.serving.create_endpoint("churn-api", "churn@champion")

    started = datetime.now(UTC) - timedelta(seconds=1)
    one = platform.serving.predict("churn-api", [record(1)], request_id="req-1")
    assert one.request_id == "req-1"
    assert one.model_version == 1
    assert one.predictions in ([0], [1])
    many = platform.serving.predict("churn-api", [record(i) for i in range(5)])
    assert len(many.predictions) == 5 and len(many.request_id) == 32
    # MLflow's scoring forms are accepted too.
    split = {"dataframe_split": {"columns": FEATURES, "data": [list(record(1).values())]}}
    assert platform.serving.predict("churn-api", split).predictions == one.predictions

    assert platform.serving.feedback("churn-api", "req-1", 1) == 1
    stored = platform.serving.feedback_bulk(
        "churn-api",
        [{"request_id": many.request_id, "record": i, "label": i % 2} for i in range(5)],
    )
    assert stored == 5

    window = platform.serving.prediction_window(
        "churn-api", started, datetime.now(UTC) + timedelta(seconds=1)
    )
    assert window.num_rows == 7
    rows = window.to_pylist()
    first = next(r for r in rows if r["request_id"] == "req-1")
    assert first["label"] == 1 and first["model_version"] == 1 and first["role"] == "primary"
    assert first["tenure"] == record(1)["tenure"]
    assert first["prediction"] == one.predictions[0]
    unlabeled = [r for r in rows if r["label"] is None]
    assert len(unlabeled) == 1  # the dataframe_split request got no feedback
    assert platform.serving.prediction_window("churn-api", with_labels=False).num_rows == 7
    assert (
        "label"
        not in platform.serving.prediction_window("churn-api", with_labels=False).schema.names
    )


def test_signature_validation_names_record_and_column(platform: Platform) -> None:
    register_churn(platform)
    platform.serving.create_endpoint("churn-api", "churn@champion")
    bad = [record(0), {**record(1), "spend": "lots"}]
    with pytest.raises(InvalidInput) as info:
        platform.serving.predict("churn-api", bad)
    assert info.value.detail["record"] == 1
    assert info.value.detail["field"] == "spend"
    missing = [record(0), record(1), {k: v for k, v in record(2).items() if k != "calls"}]
    with pytest.raises(InvalidInput) as info:
        platform.serving.predict("churn-api", missing)
    assert info.value.detail == {**info.value.detail, "record": 2, "field": "calls"}
    with pytest.raises(InvalidInput):
        platform.serving.predict("churn-api", [])
    with pytest.raises(NotFound):
        platform.serving.predict("nope", [record(0)])
    # Nothing was logged for refused requests.
    assert platform.serving.prediction_window("churn-api").num_rows == 0


def test_canary_and_shadow_routing(platform: Platform) -> None:
    register_churn(platform, versions=3)
    platform.serving.create_endpoint(
        "churn-api", "churn@champion", canary="churn/2", canary_percent=30, shadows=["churn/3"]
    )
    served: dict[int, int] = {}
    ids = [f"r{i}" for i in range(200)]
    for rid in ids:
        answer = platform.serving.predict("churn-api", [record(0)], request_id=rid)
        served[answer.model_version] = served.get(answer.model_version, 0) + 1
        # Deterministic by request id: the same id goes the same way again.
        again = platform.serving.predict("churn-api", [record(0)], request_id=rid)
        assert again.model_version == answer.model_version
    assert set(served) == {1, 2}  # the shadow is never returned
    assert 40 <= served[2] <= 80  # ~30 % of 200 ids, split by the id hash
    window = platform.serving.prediction_window("churn-api", include_shadow=True)
    roles = window.column("role").to_pylist()
    assert roles.count("shadow") == 400  # every request was shadow-scored by version 3
    versions = window.column("model_version").to_pylist()
    assert {v for v, r in zip(versions, roles, strict=True) if r == "shadow"} == {3}
    assert platform.serving.prediction_window("churn-api").num_rows == 400

    changed = platform.serving.set_traffic("churn-api", canary=None, shadows=[])
    assert changed.canary is None and changed.generation == 2
    with pytest.raises(InvalidInput):
        platform.serving.set_traffic("churn-api", canary="churn/2", canary_percent=150)
    with pytest.raises(NotFound):
        platform.serving.set_traffic("churn-api", canary="churn/9", canary_percent=5)


def test_lineage_model_version_to_endpoint(platform: Platform) -> None:
    register_churn(platform)
    endpoint = platform.serving.create_endpoint("churn-api", "churn@champion")
    upstream = platform.lineage.upstream(endpoint.urn, depth=1)
    assert any(e.upstream == "meshops:model:churn:1" for e in upstream)
