"""Online stores: the latest feature values per entity, for request-time lookups.

`base.OnlineStore` is the whole interface (write a batch, read keys, update, tear down);
each backend lives in its own module and is picked by `type` in the `[features.online_store]`
table of `meshops.toml` (see `open_online_store`).
"""

from __future__ import annotations

import threading
import weakref
from typing import TYPE_CHECKING, Any

from meshops.kernel.errors import InvalidInput

if TYPE_CHECKING:
    from meshops.features.online.base import OnlineStore
    from meshops.kernel.home import Home

_stores: weakref.WeakKeyDictionary[Home, OnlineStore] = weakref.WeakKeyDictionary()
_lock = threading.Lock()


def online_store_config(home: Home) -> dict[str, Any]:
    section = home.settings.section("features")
    config = section.get("online_store", {})
    if isinstance(config, str):
        config = {"type": config}
    return dict(config) if isinstance(config, dict) else {}


def open_online_store(home: Home) -> OnlineStore:
    """The home's online store (one per home and process; backends are thread-safe)."""
    store = _stores.get(home)
    if store is not None:
        return store
    with _lock:
        store = _stores.get(home)
        if store is None:
            store = _create(home, online_store_config(home))
            _stores[home] = store
    return store


def _create(home: Home, config: dict[str, Any]) -> OnlineStore:
    kind = str(config.get("type", "sqlite"))
    if kind == "sqlite":
        from meshops.features.online.sqlite import SqliteOnlineStore

        path = config.get("path") or home.settings.home / "online.db"
        return SqliteOnlineStore(path)
    if kind == "redis":
        from meshops.features.online.redis import RedisOnlineStore

        url = config.get("url") or "redis://127.0.0.1:6379/0"
        return RedisOnlineStore(str(url), prefix=str(config.get("prefix", "meshops:")))
    raise InvalidInput(
        f"unknown online store type {kind!r}",
        {
            "field": "features.online_store.type",
            "file": str(home.settings.config_file or "meshops.toml"),
            "fix": "use 'sqlite' (default) or 'redis'",
        },
    )
