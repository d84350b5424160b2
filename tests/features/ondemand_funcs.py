"""On-demand feature functions used by the tests (importable as module:function)."""

from __future__ import annotations

from typing import Any


def amount_ratio(row: dict[str, Any]) -> float | None:
    """The request's amount relative to the customer's average order amount."""
    if row["avg_amount"] in (None, 0) or row["amount"] is None:
        return None
    return float(row["amount"]) / float(row["avg_amount"])
