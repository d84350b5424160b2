"""Publishing small data products for feature store tests (through the real mesh)."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from meshops.client import Platform

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
    return {
        "apiVersion": "v3.0.2",
        "kind": "DataContract",
        "id": f"{port}-contract",
        "version": "1.0.0",
        "status": "active",
        "schema": [
            {
                "name": port,
                "properties": [
                    {
                        "name": field.name,
                        "logicalType": overrides.get(field.name, _LOGICAL[str(field.type)]),
                    }
                    for field in table.schema
                ],
            }
        ],
    }


def publish(
    platform: Platform,
    product: str,
    version: str,
    table: pa.Table,
    *,
    port: str = "main",
    overrides: dict[str, str] | None = None,
) -> Any:
    domain, name = product.split(".")
    descriptor = {
        "apiVersion": "v1.0.0",
        "kind": "DataProduct",
        "id": product,
        "name": name,
        "domain": domain,
        "version": version,
        "status": "active",
        "description": {"purpose": "feature store test data"},
        "team": {"members": [{"username": "alice", "role": "owner"}]},
        "outputPorts": [{"name": port, "version": version, "contractId": f"{port}-contract"}],
    }
    return platform.mesh.publish_arrow(
        descriptor, {port: contract_for(port, table, overrides)}, {port: table}
    )
