"""The online store backends (SQLite and Redis) behind one interface: newest wins, in any
write order; missing keys; dropping a view; and a whole home configured for Redis."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from meshops.client import Platform
from meshops.features.online import open_online_store
from meshops.features.online.base import OnlineRecord, OnlineStore, entity_key, pack
from meshops.features.online.sqlite import SqliteOnlineStore
from meshops.kernel.errors import InvalidInput
from meshops.kernel.home import Home
from tests.conftest import REDIS_ENV, make_settings
from tests.features.helpers import publish
from tests.features.test_end_to_end import TS, hours, orders_v1, repo


def redis_url_or_skip() -> str:
    url = os.environ.get(REDIS_ENV)
    if not url:
        pytest.skip(f"Redis tests need {REDIS_ENV} (e.g. redis://127.0.0.1:6379/0)")
    return url


@pytest.fixture(params=["sqlite", "redis"])
def online_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OnlineStore]:
    if request.param == "sqlite":
        store: OnlineStore = SqliteOnlineStore(tmp_path / "online.db")
    else:
        from meshops.features.online.redis import RedisOnlineStore

        store = RedisOnlineStore(redis_url_or_skip(), prefix=f"test-{uuid.uuid4().hex[:8]}:")
    yield store
    store.teardown()
    store.close()


def record(key: str, event: int, created: int = 0, **values: object) -> OnlineRecord:
    return OnlineRecord(key, event, created, pack(values))


def test_newest_wins_whatever_the_write_order(online_store: OnlineStore) -> None:
    online_store.write_batch("v", [record("1", 20, x=2), record("2", 5, x=5)])
    online_store.write_batch("v", [record("1", 10, x=1)])  # older: ignored
    online_store.write_batch("v", [record("1", 20, created=3, x=3)])  # same time, later created
    online_store.write_batch("v", [record("1", 20, created=1, x=9)])  # earlier created: ignored
    found = online_store.read("v", ["1", "3", "2", "1"])
    assert [f.values["x"] if f else None for f in found] == [3, None, 5, 3]
    assert found[0] is not None and found[0].event_micros == 20
    assert online_store.count("v") == 2
    assert online_store.read("unknown_view", ["1"]) == [None]


def test_update_drops_deleted_views_only(online_store: OnlineStore) -> None:
    online_store.update(keep=["a", "b"], delete=[])
    online_store.write_batch("a", [record("1", 1, x=1)])
    online_store.write_batch("b", [record("1", 1, x=2)])
    online_store.update(keep=["b"], delete=["a"])
    assert online_store.read("a", ["1"]) == [None]
    found = online_store.read("b", ["1"])[0]
    assert found is not None and found.values == {"x": 2}


@settings(max_examples=25, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 3), st.integers(0, 5), st.integers(0, 2)), max_size=20))
def test_any_order_of_writes_keeps_the_maximum(writes: list[tuple[int, int, int]]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        store = SqliteOnlineStore(Path(folder) / "o.db")
        for position, (key, event, created) in enumerate(writes):
            store.write_batch("v", [record(str(key), event, created, p=position)])
        for key in range(4):
            mine = [(e, c) for k, e, c in writes if k == key]
            found = store.read("v", [str(key)])[0]
            if not mine:
                assert found is None
                continue
            assert found is not None
            assert found.event_micros == max(mine)[0]
            # Equal (event, created): the last write of them wins.
            best = max(mine)
            last = max(p for p, (k, e, c) in enumerate(writes) if k == key and (e, c) == best)
            assert found.values["p"] == last
        store.close()


def test_entity_keys_of_compound_keys_do_not_collide() -> None:
    assert entity_key([1]) == "1" == entity_key(["1"])
    assert entity_key(["a", "b c"]) != entity_key(["a b", "c"])


def test_unknown_online_store_type_names_the_setting(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "home")
    home = Home(replace(settings, extra={"features": {"online_store": {"type": "cassandra"}}}))
    try:
        with pytest.raises(InvalidInput) as info:
            open_online_store(home)
        assert info.value.detail["field"] == "features.online_store.type"
    finally:
        home.close()


def test_a_home_configured_for_redis_serves_online_features(tmp_path: Path) -> None:
    url = redis_url_or_skip()
    prefix = f"test-{uuid.uuid4().hex[:8]}:"
    settings = make_settings(tmp_path / "home")
    settings = replace(
        settings,
        extra={"features": {"online_store": {"type": "redis", "url": url, "prefix": prefix}}},
    )
    home = Home(settings)
    platform = Platform(settings, home=home)
    try:
        publish(platform, "sales.customer_stats", "1.0.0", orders_v1())
        platform.features.apply(repo())
        assert platform.features.materialize(end=hours(12))[0].rows_written == 2
        assert open_online_store(home).name == "redis"
        rows = [{"customer_id": 1, "amount": 60.0}, {"customer_id": 5, "amount": 1.0}]
        online = platform.features.online(rows, "churn", now=hours(12))
        assert online.to_dict()["orders_7d"] == [3, None]
        assert online.to_dict()["amount_ratio"] == [2.0, None]
        assert [r.status for r in online.rows] == ["ok", "missing"]
        entities = pa.table(
            {"customer_id": [1, 5], "event_timestamp": pa.array([hours(12)] * 2, TS),
             "amount": [60.0, 1.0]}
        )  # fmt: skip
        offline = platform.features.training_set(entities, "churn").to_arrow().to_pydict()
        assert all(offline[n] == online.to_dict()[n] for n in online.features)
    finally:
        open_online_store(home).teardown()
        platform.close()
        home.close()


def test_stale_is_judged_against_now(tmp_path: Path) -> None:
    home = Home(make_settings(tmp_path / "home"))
    platform = Platform(home.settings, home=home)
    try:
        now = datetime.now(UTC)
        table = pa.table(
            {"customer_id": [1, 2],
             "event_time": pa.array([now - timedelta(hours=1), now - timedelta(days=3)], TS),
             "orders_7d": [1, 2], "avg_amount": [1.0, 2.0], "segment": ["a", "b"]}
        )  # fmt: skip
        publish(platform, "sales.customer_stats", "1.0.0", table)
        platform.features.apply(repo())
        platform.features.materialize()
        online = platform.features.online(
            [{"customer_id": 1}, {"customer_id": 2}], ["customer_stats:orders_7d"]
        )
        assert [r.status for r in online.rows] == ["ok", "stale"]
        assert online.to_dict()["orders_7d"] == [1, None]
        assert online.rows[1].event_times["customer_stats"] is not None
    finally:
        platform.close()
        home.close()
