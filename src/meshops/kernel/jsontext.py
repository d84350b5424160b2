"""JSON text as meshops writes it over HTTP: never a bare NaN or Infinity.

A metric may legitimately be NaN or infinite, but `NaN`/`Infinity` literals are not JSON
(RFC 8259): strict readers (browsers' `JSON.parse`, Go, jq) reject the whole document. A
non-finite float travels as the string "NaN", "Infinity" or "-Infinity", the mapping of
proto3 JSON that MLflow's REST API uses for metrics. Typed readers get the number back:
pydantic parses those strings into a float field, and so does `float()`; `decode` does it
for untyped values. The API's responses and the SDK's request bodies both go through
`dumps`, so the embedded and the HTTP transport answer the same.
"""

from __future__ import annotations

import json
import math
from typing import Any

NON_FINITE: dict[str, float] = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _text_of(number: float) -> str:
    if math.isnan(number):
        return "NaN"
    return "Infinity" if number > 0 else "-Infinity"


def finite_safe(value: Any) -> Any:
    """`value` with every non-finite float replaced by its string (tuples become lists)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else _text_of(value)
    if isinstance(value, dict):
        return {key: finite_safe(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [finite_safe(item) for item in value]
    return value


def dumps(value: Any) -> bytes:
    """Compact UTF-8 JSON; the common case (all floats finite) costs one `json.dumps`."""
    try:
        text = json.dumps(value, ensure_ascii=False, allow_nan=False, separators=(",", ":"))
    except ValueError:  # "Out of range float values are not JSON compliant"
        text = json.dumps(
            finite_safe(value), ensure_ascii=False, allow_nan=False, separators=(",", ":")
        )
    return text.encode()


def decode(value: Any) -> Any:
    """A number read from meshops JSON: "NaN"/"Infinity"/"-Infinity" back to floats."""
    if isinstance(value, str):
        return NON_FINITE.get(value, value)
    return value
