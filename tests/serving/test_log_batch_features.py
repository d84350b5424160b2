"""Rolling the prediction log into data product versions, batch scoring of data products,
online-feature enrichment at predict time and trusted (python-flavor) model code — over
every transport (embedded, HTTP, embedded on PostgreSQL) on one platform per module."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pyarrow as pa
import pytest

from meshops.client import Platform
from meshops.features.models import (
    Entity,
    Feature,
    FeatureRepo,
    FeatureServiceDef,
    FeatureView,
    SourceRef,
)
from meshops.kernel.errors import Forbidden, InvalidInput
from tests.features.helpers import publish
from tests.serving.helpers import FEATURES, expected, record, register_churn, training_frame

TS = pa.timestamp("us", tz="UTC")


def upstream(platform: Platform, urn: str) -> set[str]:
    return {e.upstream for e in platform.lineage.upstream(urn, depth=1)}


# --- roll_log ---------------------------------------------------------------------------------


def test_roll_log_publishes_append_only_versions_owned_by_the_domain(
    shared_platform: Platform, uniq: str
) -> None:
    platform, model, api = shared_platform, f"churn_{uniq}", f"roll-{uniq}"
    register_churn(platform, name=model)
    endpoint = platform.serving.create_endpoint(api, f"{model}@champion", domain="sales")
    product = f"sales.roll_{uniq}_predictions"
    assert endpoint.log_product == product

    empty = platform.serving.roll_log(api)
    assert (empty.version, empty.rows, empty.chunks) == (None, 0, 0)

    platform.serving.predict(api, [record(0)], request_id=f"{uniq}-a")
    platform.serving.predict(api, [record(1), record(2)], request_id=f"{uniq}-b")
    first = platform.serving.roll_log(api)
    assert (first.product, first.version, first.rows) == (product, "1.0.0", 3)
    assert first.chunks >= 1
    assert platform.serving.roll_log(api).version is None  # nothing new since

    platform.serving.predict(api, [record(3)], request_id=f"{uniq}-c")
    second = platform.serving.roll_log(api)
    assert (second.version, second.rows) == ("1.1.0", 1)

    # Each version is a partition of the rows logged since the previous roll, read through
    # the governed read path like any product, and owned by the endpoint's domain.
    v1 = platform.mesh.read(product, "1.0.0").to_pylist()
    assert sorted((r["request_id"], r["record"]) for r in v1) == [
        (f"{uniq}-a", 0),
        (f"{uniq}-b", 0),
        (f"{uniq}-b", 1),
    ]
    assert {r["role"] for r in v1} == {"primary"} and {r["model"] for r in v1} == {model}
    b1 = next(r for r in v1 if (r["request_id"], r["record"]) == (f"{uniq}-b", 1))
    assert json.loads(b1["inputs"]) == record(2)
    assert b1["prediction"] == str(expected([record(2)])[0])
    v2 = platform.mesh.read(product, "1.1.0")
    assert v2.column("request_id").to_pylist() == [f"{uniq}-c"]
    assert platform.mesh.get_product(product).domain == "sales"
    assert sorted(v.version for v in platform.mesh.list_versions(product)) == ["1.0.0", "1.1.0"]
    # Lineage: endpoint --input_to--> each log version.
    assert endpoint.urn in upstream(platform, f"meshops:dataproduct:{product}:1.1.0")
    # Rolling publishes; it does not take rows out of the log monitors read.
    assert platform.serving.prediction_window(api, with_labels=False).num_rows == 4


# --- batch scoring ----------------------------------------------------------------------------


def customers(n: int = 50) -> pa.Table:
    rows = [record(100 + i) for i in range(n)]
    columns: dict[str, Any] = {"customer_id": list(range(n))}
    columns.update({f: [r[f] for r in rows] for f in FEATURES})
    return pa.table(columns)


def test_batch_score_publishes_predictions_with_lineage(
    shared_platform: Platform, uniq: str
) -> None:
    platform, model = shared_platform, f"churn_{uniq}"
    register_churn(platform, versions=2, name=model)
    source = f"sales.customers_{uniq}"
    table = customers()
    published = publish(platform, source, "1.0.0", table)
    output = f"sales.scores_{uniq}"

    scored = platform.serving.batch_score(f"{model}@champion", source, "1.0.0", output=output)
    assert scored.version == "1.0.0"
    result = platform.mesh.read(output, "1.0.0")
    assert result.column_names == ["customer_id", *FEATURES, "prediction", "model", "model_version"]
    assert result.column("customer_id").to_pylist() == list(range(50))
    assert result.column("prediction").to_pylist() == expected(table.to_pylist(), 1)
    assert set(result.column("model_version").to_pylist()) == {1}
    assert set(result.column("model").to_pylist()) == {model}
    inputs = upstream(platform, scored.urn)
    assert published.urn in inputs and f"meshops:model:{model}:1" in inputs

    # The next run is the next minor version; the latest input version is used when none
    # is given; keep_columns narrows what is carried over (dropping columns is a breaking
    # change of the output product, so that is a major version).
    same = platform.serving.batch_score(f"{model}/2", source, output=output)
    assert same.version == "1.1.0"
    again = platform.serving.batch_score(
        f"{model}/2", source, output=output, keep_columns=["customer_id"]
    )
    assert again.version == "2.0.0"
    narrow = platform.mesh.read(output, "2.0.0")
    assert narrow.column_names == ["customer_id", "prediction", "model", "model_version"]
    assert narrow.column("prediction").to_pylist() == expected(table.to_pylist(), 2)
    assert f"meshops:model:{model}:2" in upstream(platform, again.urn)

    with pytest.raises(InvalidInput) as info:
        platform.serving.batch_score(f"{model}/1", source, output="no_domain")
    assert info.value.detail["field"] == "output"
    with pytest.raises(InvalidInput) as info:
        platform.serving.batch_score(f"{model}/1", source, output=output, keep_columns=["nope"])
    assert info.value.detail["field"] == "keep_columns"
    # An input lacking a column the model needs is a clear error, not a model crash.
    partial = f"sales.partial_{uniq}"
    publish(platform, partial, "1.0.0", table.drop_columns(["calls"]))
    with pytest.raises(InvalidInput) as info:
        platform.serving.batch_score(f"{model}/1", partial, output=output)
    assert info.value.detail["missing"] == ["calls"]


# --- online-feature enrichment ----------------------------------------------------------------


def feature_repo(uniq: str) -> FeatureRepo:
    view = FeatureView(
        name=f"stats_{uniq}",
        entities=[f"customer_{uniq}"],
        source=SourceRef(product=f"sales.stats_{uniq}"),
        event_time="event_time",
        features=[Feature(name="tenure", type="float64"), Feature(name="spend", type="float64")],
        ttl_seconds=None,
    )
    return FeatureRepo(
        entities=[Entity(name=f"customer_{uniq}", join_keys=["customer_id"])],
        feature_views=[view],
        feature_services=[FeatureServiceDef(name=f"svc_{uniq}", features=[f"stats_{uniq}:*"])],
    )


STORED = {1: {"tenure": 2.0, "spend": 1.5}, 2: {"tenure": -1.0, "spend": -2.0}}


def test_predict_enriches_records_from_the_online_store(
    shared_platform: Platform, uniq: str
) -> None:
    platform, model = shared_platform, f"churn_{uniq}"
    register_churn(platform, name=model)
    stats = pa.table(
        {
            "customer_id": [1, 2],
            "event_time": pa.array([datetime(2024, 1, 1, tzinfo=UTC)] * 2, TS),
            "tenure": [STORED[1]["tenure"], STORED[2]["tenure"]],
            "spend": [STORED[1]["spend"], STORED[2]["spend"]],
        }
    )
    publish(platform, f"sales.stats_{uniq}", "1.0.0", stats)
    platform.features.apply(feature_repo(uniq))
    platform.features.materialize([f"stats_{uniq}"])
    by_list = platform.serving.create_endpoint(
        f"enrich-{uniq}",
        f"{model}@champion",
        features=[f"stats_{uniq}:tenure", f"stats_{uniq}:spend"],
        entity_keys=["customer_id"],
    )
    assert by_list.enrichment is not None
    assert by_list.enrichment.entity_keys == ["customer_id"]

    sent = [
        {"customer_id": 1, "calls": 0.5, "age": 1.0},
        {"customer_id": 2, "calls": -0.5, "age": 0.2, "tenure": 3.0},  # the request wins
        {**record(7)},  # no entity key: scored as sent, nothing looked up
    ]
    seen = [
        {**STORED[1], **sent[0]},
        {**STORED[2], **sent[1]},
        sent[2],
    ]
    answer = platform.serving.predict(f"enrich-{uniq}", sent, request_id=f"{uniq}-e")
    assert answer.predictions == expected(seen)

    # The window has the values the model saw (from the request or the store).
    window = platform.serving.prediction_window(f"enrich-{uniq}").to_pylist()
    assert [{f: row[f] for f in FEATURES} for row in window] == [
        {f: s[f] for f in FEATURES} for s in seen
    ]
    assert [row["customer_id"] for row in window] == [1, 2, None]

    # The same through a feature service name.
    platform.serving.create_endpoint(
        f"enrich-svc-{uniq}",
        f"{model}@champion",
        features=f"svc_{uniq}",
        entity_keys=["customer_id"],
    )
    via_service = platform.serving.predict(f"enrich-svc-{uniq}", sent[:2])
    assert via_service.predictions == expected(seen[:2])

    with pytest.raises(InvalidInput) as info:
        platform.serving.create_endpoint(
            f"enrich-bad-{uniq}", f"{model}@champion", features=[f"stats_{uniq}:tenure"]
        )
    assert info.value.detail["field"] == "entity_keys"


def test_enriched_log_rows_keep_request_and_added_values_apart(
    shared_platform: Platform, uniq: str
) -> None:
    """The rolled log keeps what the client sent (`inputs`) apart from what the feature
    store added (`features`)."""
    platform, model = shared_platform, f"churn_{uniq}"
    register_churn(platform, name=model)
    stats = pa.table(
        {
            "customer_id": [1],
            "event_time": pa.array([datetime(2024, 1, 1, tzinfo=UTC)], TS),
            "tenure": [STORED[1]["tenure"]],
            "spend": [STORED[1]["spend"]],
        }
    )
    publish(platform, f"sales.stats_{uniq}", "1.0.0", stats)
    platform.features.apply(feature_repo(uniq))
    platform.features.materialize([f"stats_{uniq}"])
    api = f"enrich-{uniq}"
    platform.serving.create_endpoint(
        api, f"{model}@champion", features=f"svc_{uniq}", entity_keys=["customer_id"]
    )
    platform.serving.predict(api, [{"customer_id": 1, "calls": 0.0, "age": 0.0}])
    rolled = platform.serving.roll_log(api)
    [row] = platform.mesh.read(rolled.product, rolled.version).to_pylist()
    assert row["inputs"] == '{"customer_id":1,"calls":0.0,"age":0.0}'
    assert row["features"] == '{"tenure":2.0,"spend":1.5}'


# --- trusted model code -----------------------------------------------------------------------


class Threshold:
    """A python-flavor model (pickled with cloudpickle): 1 when tenure > 0."""

    def predict(self, frame: pd.DataFrame) -> list[int]:
        return [int(v > 0) for v in frame["tenure"]]


def test_python_flavor_models_need_trust_model_code_which_is_audited(
    shared_platform: Platform, uniq: str
) -> None:
    platform, model, api = shared_platform, f"py_{uniq}", f"py-{uniq}"
    platform.registry.create_model(model, domain="sales")
    example = pd.DataFrame([record(i) for i in range(3)])
    platform.registry.log_model(model, Threshold(), flavor="python", input_example=example)
    assert platform.registry.get_version(model, 1).flavor == "python"

    with pytest.raises(InvalidInput) as info:
        platform.serving.create_endpoint(api, f"{model}/1")
    assert info.value.detail["field"] == "trust_model_code"
    assert "trust_model_code=True" in info.value.detail["fix"]

    endpoint = platform.serving.create_endpoint(api, f"{model}/1", trust_model_code=True)
    assert endpoint.trust_model_code is True
    records = [record(i) for i in range(6)]
    if platform.is_remote:
        # The API server runs no user code unless its admin named the model
        # (tests/security/test_user_code.py covers that setting and `meshops serve`).
        with pytest.raises(Forbidden, match="does not run in the API server") as refused:
            platform.serving.predict(api, records)
        assert "--trust-model-code" in refused.value.detail["fix"]
    else:
        answer = platform.serving.predict(api, records)
        assert answer.predictions == [int(r["tenure"] > 0) for r in records]
    actions = [e.action for e in platform.governance.audit_events(obj=endpoint.urn)]
    assert "serving.trust_model_code" in actions

    # Changing traffic keeps the setting unless asked; revoking it refuses the python model.
    kept = platform.serving.set_traffic(api, model=f"{model}/1")
    assert kept.trust_model_code is True
    with pytest.raises(InvalidInput):
        platform.serving.set_traffic(api, model=f"{model}/1", trust_model_code=False)

    # Batch scoring takes the same explicit option.
    source = f"sales.customers_{uniq}"
    publish(platform, source, "1.0.0", customers(8))
    with pytest.raises(InvalidInput) as info:
        platform.serving.batch_score(f"{model}/1", source, output=f"sales.py_scores_{uniq}")
    assert info.value.detail["field"] == "trust_model_code"
    if platform.is_remote:  # batch scoring over HTTP would run the model in the server
        with pytest.raises(Forbidden, match="does not run in the API server"):
            platform.serving.batch_score(
                f"{model}/1", source, output=f"sales.py_scores_{uniq}", trust_model_code=True
            )
        return
    scored = platform.serving.batch_score(
        f"{model}/1", source, output=f"sales.py_scores_{uniq}", trust_model_code=True
    )
    tenure = customers(8).column("tenure").to_pylist()
    result = platform.mesh.read(scored.product, scored.version)
    assert result.column("prediction").to_pylist() == [int(t > 0) for t in tenure]


# --- monitoring reads the prediction log --------------------------------------------------


def test_drift_and_performance_monitors_read_an_endpoint_prediction_log(
    shared_platform: Platform, uniq: str
) -> None:
    """The `prediction_log` monitor source over a real endpoint: a scheduled-style run (no
    tables passed) reads the served inputs, finds the drift, and joins feedback labels."""
    from meshops.monitoring import sources
    from meshops.monitoring.models import MonitorSource, MonitorSpec

    platform, model, api = shared_platform, f"churn_{uniq}", f"mon-{uniq}"
    register_churn(platform, name=model)
    platform.serving.create_endpoint(api, f"{model}@champion")
    # Loaded by name on first use: monitoring imports no area.
    sources._SOURCES.pop("prediction_log", None)
    assert "prediction_log" in sources.registered_sources()
    reference = pa.Table.from_pandas(training_frame()[0], preserve_index=False)
    source = MonitorSource(type="prediction_log")
    platform.monitoring.create_monitor(
        MonitorSpec(
            name=f"drift-{uniq}",
            kind="data_drift",
            domain="sales",
            endpoint=api,
            numerical=FEATURES,
            source=source,
        ),
        reference=reference,
    )
    calm = [record(1000 + i) for i in range(120)]
    served = platform.serving.predict(api, calm, request_id=f"{uniq}-calm")
    first = platform.monitoring.run_monitor(f"drift-{uniq}")
    assert first.current_rows == 120
    assert first.metrics["dataset_drift"] == 0, first.summary

    shifted = [{**r, "tenure": r["tenure"] + 3.0} for r in map(record, range(2000, 2120))]
    platform.serving.predict(api, shifted)
    second = platform.monitoring.run_monitor(f"drift-{uniq}")
    assert second.current_rows == 240
    drifted = {f.feature for f in second.features if f.drifted}
    assert drifted == {"tenure"}, second.summary

    # Performance: labels sent as feedback are joined per (request id, record).
    platform.monitoring.create_monitor(
        MonitorSpec(
            name=f"perf-{uniq}", kind="performance", domain="sales", endpoint=api, source=source
        )
    )
    truth = expected(calm)
    platform.serving.feedback_bulk(
        api,
        [{"request_id": served.request_id, "record": i, "label": truth[i]} for i in range(60)],
    )
    perf = platform.monitoring.run_monitor(f"perf-{uniq}")
    assert perf.metrics["labelled_rows"] == 60
    assert perf.metrics["accuracy"] == 1.0
