"""The online store interface: a tiny abstract class each backend implements.

A record is one entity of one feature view: its key (the join key values encoded by
`entity_key`), the event time and created time of the values (microseconds since the
epoch), and the feature values as a msgpack map. Writes keep the newest record per key:
a record replaces the stored one only if its (event time, created time) is not older, so
writing batches in any order, or twice, gives the same result.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

KEY_SEPARATOR = "\x1f"


@dataclass(frozen=True)
class OnlineRecord:
    key: str
    event_micros: int
    created_micros: int
    payload: bytes


@dataclass(frozen=True)
class StoredValues:
    event_micros: int
    values: dict[str, Any]


def entity_key(values: Sequence[Any]) -> str:
    """The key of one entity from its join key values (in the entity's key order)."""
    if len(values) == 1:
        return str(values[0])
    return KEY_SEPARATOR.join(str(v) for v in values)


def pack(values: dict[str, Any]) -> bytes:
    data: bytes = msgpack.packb(values, use_bin_type=True)
    return data


def unpack(payload: bytes) -> dict[str, Any]:
    values: dict[str, Any] = msgpack.unpackb(payload, raw=False)
    return values


class OnlineStore(ABC):
    """Latest feature values per entity key, one namespace per feature view."""

    name: str = "abstract"

    @abstractmethod
    def write_batch(self, view: str, records: Sequence[OnlineRecord]) -> int:
        """Upsert records (newest wins); returns how many were offered."""

    @abstractmethod
    def read(self, view: str, keys: Sequence[str]) -> list[StoredValues | None]:
        """The stored values for each key, in order (None where the key has none)."""

    @abstractmethod
    def update(self, keep: Sequence[str], delete: Sequence[str]) -> None:
        """Prepare storage for the views in `keep`; drop the data of the views in `delete`."""

    @abstractmethod
    def count(self, view: str) -> int:
        """How many entities the view holds."""

    @abstractmethod
    def teardown(self) -> None:
        """Remove everything this store holds."""

    def close(self) -> None:
        return None
