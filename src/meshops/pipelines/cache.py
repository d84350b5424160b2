"""Step cache keys: code digest + parameters + input artifact digests.

Equal keys mean the step would compute the same outputs from the same inputs, so the engine
reuses the outputs of the earliest successful step run with that key (one query per wave of
ready steps, see `engine.py`) and records the skip as a cache hit pointing at it.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), default=str)


def cache_key(code_digest: str, params: dict[str, Any], inputs: dict[str, str]) -> str:
    material = canonical_json({"code": code_digest, "params": params, "inputs": inputs})
    return hashlib.sha256(material.encode()).hexdigest()
