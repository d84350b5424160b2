"""Which process may run Python that a user wrote (pickled models, transforms, steps).

The API server (`meshops server`, `create_app`) serves remote callers: a user's Python
never runs there unless an admin named it in the server's `meshops.toml` (each area reads
its own setting, e.g. `[serving] trusted_code_models`). Processes an admin starts for the
purpose run it: `meshops serve ENDPOINT --trust-model-code` (a standalone data plane) and
`meshops worker` (pipeline runs). An embedded SDK runs in its user's own process, with
the user's own rights, so nothing is added there.

`create_app` marks its home with `mark_api_server`; areas ask `is_api_server(home)` before
they would import, unpickle or call user code.
"""

from __future__ import annotations

import weakref
from typing import Any

_API_HOMES: weakref.WeakSet[Any] = weakref.WeakSet()


def mark_api_server(home: Any) -> None:
    """`home` answers remote callers in this process (the API server)."""
    _API_HOMES.add(home)


def is_api_server(home: Any) -> bool:
    return home in _API_HOMES


def named_in_setting(settings: Any, section: str, key: str, name: str) -> bool:
    """Is `name` listed (exactly) in `[section] key = [...]` of the admin's meshops.toml?"""
    listed = settings.section(section).get(key, [])
    return isinstance(listed, list) and name in [str(item) for item in listed]
