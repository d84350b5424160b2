"""A pipeline whose step reads a governed data product through `meshops.connect()`, with no
identity of its own: whatever the worker running it provides (tests/security/
test_run_identity.py)."""

from __future__ import annotations

from typing import Any

import meshops
from meshops.pipelines import pipeline, step


@step(cache=False)
def read_product(where: str, product: str) -> dict[str, Any]:
    with meshops.connect(where) as platform:
        table = platform.mesh.read(product)
        return {"actor": platform.governance.whoami().name, "rows": table.num_rows}


@pipeline
def read_governed(where: str = "", product: str = "crm.customers") -> object:
    return read_product(where, product)
