"""Endpoints, predictions, feedback and the prediction log over every transport."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from meshops.client import Platform
from meshops.kernel.errors import Conflict, InvalidInput, NotFound
from tests.serving.helpers import FEATURES, expected, record, register_churn


def test_endpoint_predict_feedback_and_window(shared_platform: Platform, uniq: str) -> None:
    platform, model, api = shared_platform, f"churn_{uniq}", f"churn-{uniq}"
    register_churn(platform, name=model)
    endpoint = platform.serving.create_endpoint(api, f"{model}@champion")
    assert endpoint.domain == "sales"
    assert endpoint.model == f"models:/{model}@champion"
    assert endpoint.trust_model_code is False
    assert api in [e.name for e in platform.serving.list_endpoints()]
    assert platform.serving.get_endpoint(api) == endpoint
    with pytest.raises(Conflict):
        platform.serving.create_endpoint(api, f"{model}@champion")

    started = datetime.now(UTC) - timedelta(seconds=1)
    one = platform.serving.predict(api, [record(1)], request_id="req-1")
    assert one.request_id == "req-1"
    assert one.model_version == 1
    assert one.predictions in ([0], [1])
    many = platform.serving.predict(api, [record(i) for i in range(5)])
    assert len(many.predictions) == 5 and len(many.request_id) == 32
    # MLflow's scoring forms are accepted too.
    split = {"dataframe_split": {"columns": FEATURES, "data": [list(record(1).values())]}}
    assert platform.serving.predict(api, split).predictions == one.predictions

    assert platform.serving.feedback(api, "req-1", 1) == 1
    stored = platform.serving.feedback_bulk(
        api,
        [{"request_id": many.request_id, "record": i, "label": i % 2} for i in range(5)],
    )
    assert stored == 5

    window = platform.serving.prediction_window(
        api, started, datetime.now(UTC) + timedelta(seconds=1)
    )
    assert window.num_rows == 7
    rows = window.to_pylist()
    first = next(r for r in rows if r["request_id"] == "req-1")
    assert first["label"] == 1 and first["model_version"] == 1 and first["role"] == "primary"
    assert first["tenure"] == record(1)["tenure"]
    assert first["prediction"] == one.predictions[0]
    unlabeled = [r for r in rows if r["label"] is None]
    assert len(unlabeled) == 1  # the dataframe_split request got no feedback
    assert platform.serving.prediction_window(api, with_labels=False).num_rows == 7
    assert "label" not in platform.serving.prediction_window(api, with_labels=False).schema.names


def test_signature_validation_names_record_and_column(shared_platform: Platform, uniq: str) -> None:
    platform, model, api = shared_platform, f"churn_{uniq}", f"churn-{uniq}"
    register_churn(platform, name=model)
    platform.serving.create_endpoint(api, f"{model}@champion")
    bad = [record(0), {**record(1), "spend": "lots"}]
    with pytest.raises(InvalidInput) as info:
        platform.serving.predict(api, bad)
    assert info.value.detail["record"] == 1
    assert info.value.detail["field"] == "spend"
    missing = [record(0), record(1), {k: v for k, v in record(2).items() if k != "calls"}]
    with pytest.raises(InvalidInput) as info:
        platform.serving.predict(api, missing)
    assert info.value.detail == {**info.value.detail, "record": 2, "field": "calls"}
    with pytest.raises(InvalidInput):
        platform.serving.predict(api, [])
    with pytest.raises(NotFound):
        platform.serving.predict("nope", [record(0)])
    # Nothing was logged for refused requests.
    assert platform.serving.prediction_window(api).num_rows == 0


def test_an_endpoint_name_is_one_path_segment(shared_platform: Platform, uniq: str) -> None:
    """`?` or `#` in a name reaches the server inside its path segment, so it names no
    endpoint (the HTTP client once sent names as they were: `api?x=1` read endpoint `api`)."""
    platform, model, api = shared_platform, f"churn_{uniq}", f"churn-{uniq}"
    register_churn(platform, name=model)
    platform.serving.create_endpoint(api, f"{model}@champion")
    for name in (f"{api}?domain=sales", f"{api}#x"):
        with pytest.raises(NotFound):
            platform.serving.get_endpoint(name)
        with pytest.raises(NotFound):
            platform.serving.predict(name, [record(0)])
        with pytest.raises(NotFound):
            platform.serving.feedback(name, "req-1", 1)
        with pytest.raises(NotFound):
            platform.serving.roll_log(name)
    assert platform.serving.prediction_window(api).num_rows == 0


def test_canary_and_shadow_routing(shared_platform: Platform, uniq: str) -> None:
    platform, model, api = shared_platform, f"churn_{uniq}", f"churn-{uniq}"
    register_churn(platform, versions=3, name=model)
    platform.serving.create_endpoint(
        api, f"{model}@champion", canary=f"{model}/2", canary_percent=30, shadows=[f"{model}/3"]
    )
    served: dict[int, int] = {}
    version_of: dict[str, int] = {}
    ids = [f"r{i}" for i in range(120)]
    for n, rid in enumerate(ids):
        answer = platform.serving.predict(api, [record(n)], request_id=rid)
        served[answer.model_version] = served.get(answer.model_version, 0) + 1
        version_of[rid] = answer.model_version
        assert answer.predictions == expected([record(n)], answer.model_version)
    for rid in ids[:15]:
        # Deterministic by request id: the same id goes the same way again.
        again = platform.serving.predict(api, [record(0)], request_id=rid)
        assert again.model_version == version_of[rid]
    assert set(served) == {1, 2}  # the shadow is never returned
    assert 24 <= served[2] <= 48  # ~30 % of 120 ids, split by the id hash
    window = platform.serving.prediction_window(api, include_shadow=True)
    rows = window.to_pylist()
    shadows = [r for r in rows if r["role"] == "shadow"]
    assert len(shadows) == 135  # every request was shadow-scored by version 3
    assert {r["model_version"] for r in shadows} == {3}
    served_at = {(r["request_id"], r["time"]) for r in rows if r["role"] != "shadow"}
    inputs = [{f: row[f] for f in FEATURES} for row in shadows]
    # The shadow's output is version 3's, logged with its request's inputs and time.
    assert [r["prediction"] for r in shadows] == expected(inputs, 3)
    assert {(r["request_id"], r["time"]) for r in shadows} == served_at
    assert platform.serving.prediction_window(api).num_rows == 135

    changed = platform.serving.set_traffic(api, canary=None, shadows=[])
    assert changed.canary is None and changed.generation == 2
    with pytest.raises(InvalidInput):
        platform.serving.set_traffic(api, canary=f"{model}/2", canary_percent=150)
    with pytest.raises(NotFound):
        platform.serving.set_traffic(api, canary=f"{model}/9", canary_percent=5)


def test_lineage_model_version_to_endpoint(shared_platform: Platform, uniq: str) -> None:
    platform, model = shared_platform, f"churn_{uniq}"
    register_churn(platform, name=model)
    endpoint = platform.serving.create_endpoint(f"churn-{uniq}", f"{model}@champion")
    upstream = platform.lineage.upstream(endpoint.urn, depth=1)
    assert any(e.upstream == f"meshops:model:{model}:1" for e in upstream)
