"""Helpers of the governance tests: acting as other principals on a home."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from meshops.governance.service import GovernanceService
from meshops.kernel.auth import Actor
from meshops.kernel.home import Home


def as_user(home: Home, name: str, scopes: frozenset[str] | None = None) -> GovernanceService:
    return GovernanceService(home.context(Actor(name, scopes=scopes)))


def admin(home: Home) -> GovernanceService:
    """The home's configured local user ("alice" in tests) is its platform admin."""
    return GovernanceService(home.context())


def customers_contract() -> dict[str, Any]:
    properties = [
        {"name": "customer_id", "logicalType": "integer", "physicalType": "BIGINT"},
        {"name": "email", "logicalType": "string", "classification": "pii"},
        {"name": "region", "logicalType": "string"},
        {"name": "income", "logicalType": "number", "classification": "restricted"},
    ]
    return {
        "apiVersion": "v3.1.0",
        "kind": "DataContract",
        "id": "crm-customers",
        "version": "1.0.0",
        "status": "active",
        "schema": [{"name": "customers", "properties": properties}],
    }


def customers_descriptor(owner: str = "olivia") -> dict[str, Any]:
    return {
        "apiVersion": "v1.0.0",
        "kind": "DataProduct",
        "id": "crm.customers",
        "name": "customers",
        "domain": "crm",
        "version": "1.0.0",
        "status": "active",
        "description": {"purpose": "customers of the crm domain"},
        "team": {"members": [{"username": owner, "role": "owner"}]},
        "outputPorts": [{"name": "customers", "version": "1.0.0", "contractId": "crm-customers"}],
    }


def customers_table(rows: int = 10) -> pa.Table:
    return pa.table(
        {
            "customer_id": pa.array(range(rows), pa.int64()),
            "email": [f"user{i}@example.com" for i in range(rows)],
            "region": ["EU" if i % 2 == 0 else "US" for i in range(rows)],
            "income": [1000.0 * i for i in range(rows)],
        }
    )


def publish_customers(home: Home, rows: int = 4) -> None:
    """Publish crm.customers (owner olivia): grants need a published product, whose owners
    and classification are the server's (issue #14 finding 6)."""
    from meshops.mesh.service import MeshService

    MeshService(home.context()).publish_arrow(
        customers_descriptor(),
        {"customers": customers_contract()},
        {"customers": customers_table(rows)},
    )
