"""Data profiles of a published port: per column nulls, an approximate distinct count,
min/max, and a histogram of numeric columns (shown on the catalog's product page)."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

import pyarrow as pa

from meshops.mesh.contract_scan import quote
from meshops.mesh.contracts import arrow_schema, fetch_one, relation
from meshops.mesh.models import ColumnProfile


def profile(source: pa.Table | str, port: str, bins: int = 10) -> list[ColumnProfile]:
    """Per column: nulls, (approximate) distinct count, min/max; numeric histograms."""
    schema = arrow_schema(source)
    profiles: list[ColumnProfile] = []
    with relation(source, port) as con:
        exprs = []
        for f in schema:
            col = quote(f.name)
            comparable = not (pa.types.is_nested(f.type) or pa.types.is_binary(f.type))
            exprs.append(f"count(*) - count({col})")
            exprs.append(f"approx_count_distinct({col})" if comparable else "NULL")
            exprs.append(f"min({col})" if comparable else "NULL")
            exprs.append(f"max({col})" if comparable else "NULL")
        if not exprs:
            return []
        row = fetch_one(con, f"SELECT {', '.join(exprs)} FROM {quote(port)}")
        assert row is not None
        for i, f in enumerate(schema):
            nulls, distinct, low, high = row[4 * i : 4 * i + 4]
            histogram: list[dict[str, Any]] = []
            numeric = pa.types.is_integer(f.type) or pa.types.is_floating(f.type)
            if numeric and low is not None and high is not None and high > low:
                width = (float(high) - float(low)) / bins
                col = quote(f.name)
                counts = con.execute(
                    f"SELECT least(floor(({col} - {float(low)!r}) / {width!r})::INT, "
                    f"{bins - 1}) AS b, "
                    f"count(*) FROM {quote(port)} WHERE {col} IS NOT NULL GROUP BY b ORDER BY b"
                ).fetchall()
                histogram = [
                    {
                        "lower": float(low) + int(b) * width,
                        "upper": float(low) + (int(b) + 1) * width,
                        "count": int(c),
                    }
                    for b, c in counts
                ]
            profiles.append(
                ColumnProfile(
                    name=f.name,
                    type=str(f.type),
                    nulls=int(nulls or 0),
                    distinct=int(distinct or 0),
                    min=_jsonable(low),
                    max=_jsonable(high),
                    histogram=histogram,
                )
            )
    return profiles


def _jsonable(value: Any) -> Any:
    if value is None or isinstance(value, bool | int | float | str):
        return value
    if isinstance(value, datetime | date):
        return value.isoformat()
    return str(value)
