"""Which model answers a request: the primary route, a canary share, and shadows.

The canary split is deterministic by request id (CRC32 of the id into 10,000 buckets), so
a client retrying a request with the same id lands on the same version, and the share of
requests a canary sees converges to its percentage.
"""

from __future__ import annotations

import zlib

BUCKETS = 10_000


def bucket(request_id: str) -> int:
    return zlib.crc32(request_id.encode()) % BUCKETS


def goes_to_canary(request_id: str, percent: float) -> bool:
    if percent <= 0.0:
        return False
    if percent >= 100.0:
        return True
    return bucket(request_id) < round(percent * BUCKETS / 100.0)
