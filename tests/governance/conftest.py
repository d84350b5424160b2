"""Helpers of the governance tests: acting as other principals on a home."""

from __future__ import annotations

from typing import Any

import pyarrow as pa

from meshops.governance.service import GovernanceService
from meshops.kernel.auth import Actor
from meshops.kernel.home import Home
from tests.support.products import data_contract, data_product


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
    return data_contract("crm-customers", "customers", properties)


def customers_descriptor(owner: str = "olivia") -> dict[str, Any]:
    return data_product("crm.customers", "crm-customers", owner=owner)


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
