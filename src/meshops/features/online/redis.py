"""The Redis online store (`pip install meshops[redis]`): one hash per view and entity,
`<prefix>fv:<view>:<entity key>` with fields `ts`, `cts` (event and created time in
microseconds) and `v` (the msgpack values). The newest-wins rule runs inside Redis as a
Lua script, so concurrent materializations cannot overwrite newer values with older ones.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from meshops.features.online.base import OnlineRecord, OnlineStore, StoredValues, unpack
from meshops.kernel.errors import InvalidInput

_UPSERT_NEWEST = """
local cur = redis.call('HMGET', KEYS[1], 'ts', 'cts')
local ts, cts = tonumber(ARGV[1]), tonumber(ARGV[2])
local old = tonumber(cur[1])
if (not old) or ts > old or (ts == old and cts >= tonumber(cur[2])) then
  redis.call('HSET', KEYS[1], 'ts', ARGV[1], 'cts', ARGV[2], 'v', ARGV[3])
  return 1
end
return 0
"""
_PIPELINE_CHUNK = 5000
CONNECT_TIMEOUT = 2.0  # seconds
READ_TIMEOUT = 10.0  # seconds: a materialization's pipelined batch of writes fits in it


class RedisOnlineStore(OnlineStore):
    name = "redis"

    def __init__(self, url: str, prefix: str = "meshops:") -> None:
        try:
            import redis
        except ImportError as exc:  # pragma: no cover - depends on the extra
            raise InvalidInput(
                "the Redis online store needs the redis package",
                {"fix": "pip install 'meshops[redis]'"},
            ) from exc
        self.prefix = prefix
        # Timeouts: a Redis that does not answer fails the lookup in seconds (the API's
        # 503), never hangs it; the client reconnects by itself once Redis is back.
        self.client: Any = redis.Redis.from_url(
            url, socket_connect_timeout=CONNECT_TIMEOUT, socket_timeout=READ_TIMEOUT
        )
        self._upsert = self.client.register_script(_UPSERT_NEWEST)

    def _key(self, view: str, key: str) -> str:
        return f"{self.prefix}fv:{view}:{key}"

    def write_batch(self, view: str, records: Sequence[OnlineRecord]) -> int:
        for start in range(0, len(records), _PIPELINE_CHUNK):
            pipe = self.client.pipeline(transaction=False)
            for r in records[start : start + _PIPELINE_CHUNK]:
                self._upsert(
                    keys=[self._key(view, r.key)],
                    args=[r.event_micros, r.created_micros, r.payload],
                    client=pipe,
                )
            pipe.execute()
        return len(records)

    def read(self, view: str, keys: Sequence[str]) -> list[StoredValues | None]:
        if len(keys) == 1:
            rows = [self.client.hmget(self._key(view, keys[0]), "ts", "v")]
        else:
            pipe = self.client.pipeline(transaction=False)
            for key in keys:
                pipe.hmget(self._key(view, key), "ts", "v")
            rows = pipe.execute()
        return [
            StoredValues(int(ts), unpack(payload)) if ts is not None else None
            for ts, payload in rows
        ]

    def _scan_delete(self, pattern: str) -> None:
        batch: list[bytes] = []
        for key in self.client.scan_iter(match=pattern, count=1000):
            batch.append(key)
            if len(batch) >= 1000:
                self.client.delete(*batch)
                batch = []
        if batch:
            self.client.delete(*batch)

    def update(self, keep: Sequence[str], delete: Sequence[str]) -> None:
        for view in delete:
            self._scan_delete(f"{self.prefix}fv:{view}:*")

    def count(self, view: str) -> int:
        return sum(1 for _ in self.client.scan_iter(match=f"{self.prefix}fv:{view}:*", count=1000))

    def teardown(self) -> None:
        self._scan_delete(f"{self.prefix}fv:*")

    def close(self) -> None:
        self.client.close()
