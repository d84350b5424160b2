"""The feature store over real data products, on every transport (embedded, HTTP, and
embedded on PostgreSQL): apply, training sets, materialization, online lookups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pyarrow as pa
import pytest

from meshops.client import Platform
from meshops.features.models import (
    Entity,
    Feature,
    FeatureRepo,
    FeatureServiceDef,
    FeatureView,
    OnDemandFeature,
    SourceRef,
)
from meshops.kernel.errors import InvalidInput, NotFound
from tests.features.helpers import publish
from tests.support.products import data_product

T0 = datetime(2024, 1, 1, tzinfo=UTC)
TS = pa.timestamp("us", tz="UTC")


def hours(n: float) -> datetime:
    return T0 + timedelta(hours=n)


def orders_v1() -> pa.Table:
    return pa.table(
        {
            "customer_id": [1, 1, 1, 2, 2],
            "event_time": pa.array([hours(0), hours(5), hours(10), hours(1), hours(2)], TS),
            "orders_7d": [1, 2, 3, 10, 11],
            "avg_amount": [10.0, 20.0, 30.0, 5.0, 6.0],
            "segment": ["a", "a", "b", "c", "c"],
        }
    )


def repo(ttl: int | None = 24 * 3600, tag: str = "") -> FeatureRepo:
    """Definitions over `sales.customer_stats<tag>`; views and services named with `tag`."""
    view = FeatureView(
        name=f"customer_stats{tag}",
        entities=["customer"],
        source=SourceRef(product=f"sales.customer_stats{tag}"),
        event_time="event_time",
        features=[
            Feature(name="orders_7d", type="int64", description="orders in the last 7 days"),
            Feature(name="avg_amount", type="float64"),
            Feature(name="segment", type="string"),
        ],
        ttl_seconds=ttl,
        owner="alice",
        tags={"team": "growth"},
    )
    return FeatureRepo(
        entities=[Entity(name="customer", join_keys=["customer_id"])],
        feature_views=[view],
        on_demand_features=[
            OnDemandFeature(
                name=f"amount_ratio{tag}",
                function="tests.features.ondemand_funcs:amount_ratio",
                inputs=[f"customer_stats{tag}:avg_amount"],
                request=["amount"],
            )
        ],
        feature_services=[
            FeatureServiceDef(
                name=f"churn{tag}", features=[f"customer_stats{tag}:*", f"amount_ratio{tag}"]
            )
        ],
    )


class Ready:
    """A platform with `sales.customer_stats<tag>` published and `repo(tag=tag)` applied."""

    def __init__(self, platform: Platform, tag: str) -> None:
        self.platform, self.tag = platform, tag
        self.features = platform.features
        self.lineage = platform.lineage
        self.product = f"sales.customer_stats{tag}"
        self.view = f"customer_stats{tag}"
        self.service = f"churn{tag}"
        self.ratio = f"amount_ratio{tag}"

    def publish(self, version: str, table: pa.Table) -> None:
        publish(self.platform, self.product, version, table)

    def repo(self, ttl: int | None = 24 * 3600) -> FeatureRepo:
        return repo(ttl, self.tag)


_count = iter(range(10_000))


@pytest.fixture
def ready(shared_platform: Platform) -> Ready:
    r = Ready(shared_platform, f"_{next(_count)}")
    r.publish("1.0.0", orders_v1())
    r.features.apply(r.repo())
    return r


def test_apply_is_idempotent_and_listed(ready: Ready) -> None:
    again = ready.features.apply(ready.repo())
    assert again.created == [] and again.updated == []
    assert f"feature_view:{ready.view}" in again.unchanged
    kinds = {(d.kind, d.name) for d in ready.features.list_definitions()}
    assert ("feature_service", ready.service) in kinds and ("entity", "customer") in kinds
    view = ready.features.get_view(ready.view)
    assert view.ttl_seconds == 24 * 3600 and view.features[0].description
    changed = ready.features.apply(ready.repo(ttl=3600))
    assert changed.updated == [f"feature_view:{ready.view}"]


def test_contract_validation_names_the_field_and_fix(ready: Ready) -> None:
    bad = ready.repo()
    bad.feature_views[0].features.append(Feature(name="nope", type="int64"))
    with pytest.raises(InvalidInput) as info:
        ready.features.apply(bad)
    assert info.value.detail["field"] == "features[3].name"
    assert "no column 'nope'" in info.value.message and "orders_7d" in info.value.detail["fix"]
    wrong = ready.repo()
    wrong.feature_views[0].features[2] = Feature(name="segment", type="float64")
    with pytest.raises(InvalidInput) as info:
        ready.features.apply(wrong)
    assert info.value.detail["field"] == "features[2].type"
    assert "string" in info.value.detail["fix"]


def test_training_set_is_point_in_time_correct_and_recorded(ready: Ready) -> None:
    entities = pa.table(
        {
            "customer_id": [1, 1, 2, 3, 1],
            "event_timestamp": pa.array([hours(4), hours(10), hours(1.5), hours(3), hours(40)], TS),
            "amount": [40.0, 60.0, 5.0, 1.0, 1.0],
        }
    )
    name = f"train{ready.tag}"
    ts = ready.features.training_set(entities, ready.service, name=name)
    table = ts.to_arrow()
    assert table.column_names == [
        "customer_id", "event_timestamp", "amount",
        "orders_7d", "avg_amount", "segment", ready.ratio,
    ]  # fmt: skip
    assert table.column("orders_7d").to_pylist() == [1, 3, 10, None, None]
    # hours(40) is 30 h after the last value: beyond the 24 h TTL.
    assert table.column(ready.ratio).to_pylist() == [4.0, 2.0, 1.0, None, None]
    assert ts.info.row_count == 5 and ts.info.sources[0].version == "1.0.0"
    # Same inputs: same digest, same record; reading it back recomputes the same rows.
    again = ready.features.training_set(entities, ready.service, name=name)
    assert again.digest == ts.digest and again.info.id == ts.info.id
    assert ready.features.get_training_set(ts.info.id).to_arrow().equals(table)
    upstream = {e.upstream for e in ready.lineage.upstream(ts.urn, 1)}
    assert f"meshops:dataproduct:{ready.product}:1.0.0" in upstream
    assert f"meshops:featureview:{ready.view}" in upstream
    assert f"meshops:featureservice:{ready.service}" in upstream
    assert [t.id for t in ready.features.list_training_sets(name)] == [ts.info.id]


def test_training_set_digest_changes_with_new_product_version(ready: Ready) -> None:
    entities = pa.table({"customer_id": [1], "event_timestamp": pa.array([hours(6)], TS)})
    first = ready.features.training_set(entities, [f"{ready.view}:orders_7d"])
    ready.publish("1.1.0", orders_v1().slice(0, 2))
    second = ready.features.training_set(entities, [f"{ready.view}:orders_7d"])
    assert second.digest != first.digest
    assert second.info.sources[0].version == "1.1.0"
    assert second.to_arrow().column("orders_7d").to_pylist() == [2]
    # The old set still reads the version it was made from.
    old = ready.features.get_training_set(first.info.id).to_arrow()
    assert old.column("orders_7d").to_pylist() == [2]
    assert first.info.sources[0].version == "1.0.0"


def test_a_name_is_one_path_segment(ready: Ready) -> None:
    """`?` or `#` in a name reaches the server inside its path segment, so it names nothing
    (the HTTP client once sent names as they were: `id?x=1` read training set `id`)."""
    entities = pa.table({"customer_id": [1], "event_timestamp": pa.array([hours(6)], TS)})
    made = ready.features.training_set(entities, [f"{ready.view}:orders_7d"])
    for suffix in ("?x=1", "#x"):
        with pytest.raises(NotFound):
            ready.features.get_training_set(made.info.id + suffix)
        with pytest.raises(NotFound):
            ready.features.get(ready.view + suffix)
        with pytest.raises(NotFound):
            ready.features.status(ready.view + suffix)
    assert ready.features.get_training_set(made.info.id).info == made.info


def test_materialize_online_and_offline_agree(ready: Ready) -> None:
    results = ready.features.materialize([ready.view], end=hours(12))
    assert [(r.view, r.rows_written) for r in results] == [(ready.view, 2)]
    rows = [{"customer_id": 1, "amount": 90.0}, {"customer_id": 2, "amount": 12.0},
            {"customer_id": 99, "amount": 1.0}]  # fmt: skip
    online = ready.features.online(rows, ready.service, now=hours(12))
    assert [r.status for r in online.rows] == ["ok", "ok", "missing"]
    assert online.to_dict()["orders_7d"] == [3, 11, None]
    assert online.to_dict()[ready.ratio] == [3.0, 2.0, None]
    assert online.rows[2].missing == [ready.view]
    # Offline at the same time gives the same values.
    entities = pa.table(
        {"customer_id": [1, 2, 99], "event_timestamp": pa.array([hours(12)] * 3, TS),
         "amount": [90.0, 12.0, 1.0]}
    )  # fmt: skip
    offline = ready.features.training_set(entities, ready.service).to_arrow().to_pydict()
    for name in online.features:
        assert offline[name] == online.to_dict()[name], name
    # Beyond the TTL the value is reported stale and nulled, as offline.
    later = ready.features.online(rows[:1], [f"{ready.view}:orders_7d"], now=hours(40))
    assert later.rows[0].status == "stale" and later.rows[0].values == {"orders_7d": None}
    assert later.rows[0].stale == [ready.view]


def test_materialize_is_incremental(ready: Ready) -> None:
    first = ready.features.materialize([ready.view], end=hours(12))[0]
    assert first.rows_written == 2 and not first.skipped
    assert ready.features.materialize([ready.view], end=hours(12))[0].skipped
    newer = pa.concat_tables([
        orders_v1(),
        pa.table({"customer_id": [2, 3], "event_time": pa.array([hours(11.5), hours(13)], TS),
                  "orders_7d": [12, 1], "avg_amount": [7.0, 1.0], "segment": ["c", "d"]}),
    ])  # fmt: skip
    ready.publish("1.1.0", newer)
    # Only rows after the watermark (hours(12)) are new: customer 3 at hours(13). The late
    # row of customer 2 (hours(11.5)) needs a full run, as the view has no created time.
    second = ready.features.materialize([ready.view], end=hours(14))[0]
    assert second.version == "1.1.0" and second.rows_written == 1
    view = f"{ready.view}:orders_7d"
    online = ready.features.online([{"customer_id": 2}, {"customer_id": 3}], [view], now=hours(14))
    assert online.to_dict()["orders_7d"] == [11, 1]
    full = ready.features.materialize([ready.view], end=hours(14), full=True)[0]
    assert full.rows_written == 3
    online = ready.features.online([{"customer_id": 2}, {"customer_id": 3}], [view], now=hours(14))
    assert online.to_dict()["orders_7d"] == [12, 1]


def test_status_reports_freshness_and_statistics(ready: Ready) -> None:
    ready.features.materialize([ready.view], end=hours(12))
    status = ready.features.status(ready.view)
    assert status.rows == 5 and status.entities == 2
    assert status.newest_event_time == hours(10)
    assert status.materialized_version == "1.0.0"
    assert status.fresh is False  # 2024 data is older than the 24 h TTL today
    stats = {s.name: s for s in status.features}
    assert stats["orders_7d"].min == 1 and stats["orders_7d"].max == 11
    assert stats["avg_amount"].mean == pytest.approx(14.2)
    assert stats["segment"].distinct == 3


def test_unknown_features_and_bad_entities_are_clear_errors(ready: Ready) -> None:
    with pytest.raises(NotFound):
        ready.features.online([{"customer_id": 1}], ["nope:x"])
    with pytest.raises(InvalidInput) as info:
        ready.features.online([{"customer_id": 1}], [f"{ready.view}:nope"])
    assert "orders_7d" in info.value.detail["fix"]
    with pytest.raises(InvalidInput) as info:
        ready.features.online([{"id": 1}], [f"{ready.view}:orders_7d"])
    assert "customer_id" in info.value.message
    with pytest.raises(InvalidInput) as info:
        ready.features.training_set(pa.table({"customer_id": [1]}), [f"{ready.view}:orders_7d"])
    assert info.value.detail["field"] == "timestamp_column"


def test_entities_from_sql_over_a_data_product(ready: Ready) -> None:
    labels = pa.table(
        {"customer_id": [2, 1], "label_time": pa.array([hours(1.5), hours(6)], TS),
         "churned": [True, False]}
    )  # fmt: skip
    ready.platform.mesh.publish_arrow(*_labels_product(f"labels{ready.tag}", labels))
    query = (
        f"SELECT customer_id, label_time AS event_timestamp, churned "
        f"FROM sales.labels{ready.tag} ORDER BY customer_id"
    )
    table = ready.features.training_set(query, [f"{ready.view}:orders_7d"]).to_arrow()
    assert table.to_pydict()["orders_7d"] == [2, 10]
    assert table.to_pydict()["churned"] == [False, True]


def _labels_product(name: str, table: pa.Table) -> tuple[dict[str, object], ...]:
    from tests.features.helpers import contract_for

    descriptor = data_product(f"sales.{name}", "main-contract", port="main", purpose="labels")
    return descriptor, {"main": contract_for("main", table)}, {"main": table}
