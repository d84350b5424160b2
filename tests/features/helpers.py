"""Publishing small data products for feature store tests (through the real mesh)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from meshops.client import Platform
from tests.support.products import data_contract, data_product

_LOGICAL = {
    "int64": "integer",
    "int32": "integer",
    "double": "number",
    "float": "number",
    "string": "string",
    "bool": "boolean",
    "timestamp[us, tz=UTC]": "timestamp",
    "timestamp[us]": "timestamp",
    "date32[day]": "date",
}


def contract_for(
    port: str, table: pa.Table, overrides: dict[str, str] | None = None
) -> dict[str, Any]:
    overrides = overrides or {}
    properties = [
        {"name": field.name, "logicalType": overrides.get(field.name, _LOGICAL[str(field.type)])}
        for field in table.schema
    ]
    return data_contract(f"{port}-contract", port, properties, api_version="v3.0.2")


def publish(
    platform: Platform,
    product: str,
    version: str,
    table: pa.Table,
    *,
    port: str = "main",
    overrides: dict[str, str] | None = None,
) -> Any:
    purpose = "feature store test data"
    descriptor = data_product(
        product, f"{port}-contract", port=port, version=version, purpose=purpose
    )
    return platform.mesh.publish_arrow(
        descriptor, {port: contract_for(port, table, overrides)}, {port: table}
    )
