"""Data-product documents as the tests write them: an ODPS descriptor (`data_product`) and
an ODCS contract (`data_contract`) with one schema object per output port."""

from __future__ import annotations

from typing import Any


def data_contract(
    contract_id: str,
    port: str,
    properties: list[dict[str, Any]],
    *,
    quality: list[dict[str, Any]] | None = None,
    sla: list[dict[str, Any]] | None = None,
    version: str = "1.0.0",
    api_version: str = "v3.1.0",
) -> dict[str, Any]:
    """A contract whose schema object is named after the port it describes."""
    schema: dict[str, Any] = {"name": port, "properties": properties}
    if quality:
        schema["quality"] = quality
    doc: dict[str, Any] = {
        "apiVersion": api_version,
        "kind": "DataContract",
        "id": contract_id,
        "version": version,
        "status": "active",
        "schema": [schema],
    }
    if sla:
        doc["slaProperties"] = sla
    return doc


def data_product(
    product: str,
    contract_id: str,
    *,
    port: str | None = None,
    version: str = "1.0.0",
    owner: str = "alice",
    purpose: str | None = None,
    tags: list[str] | None = None,
) -> dict[str, Any]:
    """The descriptor of `domain.name` with one active output port (named like the product
    unless `port` is given) under `contract_id`."""
    domain, name = product.split(".")
    doc: dict[str, Any] = {
        "apiVersion": "v1.0.0",
        "kind": "DataProduct",
        "id": product,
        "name": name,
        "domain": domain,
        "version": version,
        "status": "active",
        "description": {"purpose": purpose or f"{name} of the {domain} domain"},
    }
    if tags is not None:
        doc["tags"] = tags
    doc["team"] = {"members": [{"username": owner, "role": "owner"}]}
    doc["outputPorts"] = [{"name": port or name, "version": version, "contractId": contract_id}]
    return doc
