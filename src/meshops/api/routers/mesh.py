"""Data mesh: domains, products, versions, publish, reads (Arrow IPC), SQL, catalog search."""

from __future__ import annotations

import json
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel

from meshops.api.deps import get_context
from meshops.kernel.access import Interface
from meshops.kernel.bounds import (
    JsonObject,
    LineageDepth,
    Offset,
    SearchLimit,
    check_nesting,
)
from meshops.kernel.errors import InvalidInput
from meshops.kernel.home import Context
from meshops.mesh.remote import ARROW_STREAM, WARNINGS_HEADER, ipc_to_table, table_to_ipc
from meshops.mesh.service import MeshService

router = APIRouter(prefix="/v1/mesh", tags=["mesh"])
catalog_router = APIRouter(prefix="/v1/catalog", tags=["catalog"])


class DomainIn(BaseModel):
    name: str
    description: str = ""
    owners: list[str] | None = None
    members: list[str] | None = None
    team: str = ""


class DomainUpdate(BaseModel):
    description: str | None = None
    owners: list[str] | None = None
    members: list[str] | None = None
    team: str | None = None


class Documents(BaseModel):
    descriptor: JsonObject
    contracts: dict[str, JsonObject]


class DeprecateIn(BaseModel):
    sunset: str | None = None
    replacement: str | None = None
    reason: str = ""


class SqlIn(BaseModel):
    query: str


def _dump(model: Any) -> Any:
    return model.model_dump(mode="json")


@router.post("/domains", status_code=201)
def create_domain(body: DomainIn, ctx: Context = Depends(get_context)) -> Any:
    return _dump(MeshService(ctx).create_domain(**body.model_dump()))


@router.get("/domains")
def list_domains(ctx: Context = Depends(get_context)) -> Any:
    return [_dump(d) for d in MeshService(ctx).list_domains()]


@router.get("/domains/{name}")
def get_domain(name: str, ctx: Context = Depends(get_context)) -> Any:
    return _dump(MeshService(ctx).get_domain(name))


@router.put("/domains/{name}")
def update_domain(name: str, body: DomainUpdate, ctx: Context = Depends(get_context)) -> Any:
    return _dump(MeshService(ctx).update_domain(name, **body.model_dump()))


@router.post("/diff")
def diff(body: Documents, ctx: Context = Depends(get_context)) -> Any:
    return _dump(MeshService(ctx).diff_documents(body.descriptor, body.contracts))


@router.post("/register", status_code=201)
def register(body: Documents, ctx: Context = Depends(get_context)) -> Any:
    return _dump(MeshService(ctx).register_documents(body.descriptor, body.contracts))


@router.post("/publish", status_code=201)
async def publish(request: Request, ctx: Context = Depends(get_context)) -> Any:
    """multipart/form-data: `meta` (JSON: descriptor, contracts, inputs) and one `tables`
    part per output port (an Arrow IPC stream, filename = port name)."""
    form = await request.form()
    meta_part = form.get("meta")
    if meta_part is None or isinstance(meta_part, str):
        raise InvalidInput("the publish request needs a `meta` JSON part", {"field": "meta"})
    meta = _publish_meta(await meta_part.read())
    tables = {}
    for part in form.getlist("tables"):
        if isinstance(part, str) or not part.filename:
            raise InvalidInput("each `tables` part needs the port as filename", {"field": "tables"})
        tables[part.filename] = _table_part(part.filename, await part.read())
    service = MeshService(ctx)
    version = service.publish_arrow(
        meta["descriptor"], meta["contracts"], tables, inputs=meta.get("inputs") or []
    )
    return _dump(version)


def _table_part(port: str, data: bytes) -> Any:
    try:
        return ipc_to_table(data)
    except Exception as exc:  # pyarrow's ArrowInvalid and friends: the caller's bytes
        raise InvalidInput(
            f"the `tables` part {port!r} is not an Arrow IPC stream: {exc}",
            {"field": "tables", "fix": "send each port's table as an Arrow IPC stream"},
        ) from exc


def _publish_meta(raw: bytes) -> dict[str, Any]:
    """The `meta` part: a JSON object with `descriptor` and `contracts` objects."""
    try:
        meta = json.loads(raw)
    except (ValueError, RecursionError) as exc:
        raise InvalidInput(f"the `meta` part is not JSON: {exc}", {"field": "meta"}) from exc
    if not (
        isinstance(meta, dict)
        and isinstance(meta.get("descriptor"), dict)
        and isinstance(meta.get("contracts"), dict)
    ):
        raise InvalidInput(
            "the `meta` part is a JSON object with `descriptor` and `contracts` objects",
            {"field": "meta", "fix": 'send {"descriptor": {...}, "contracts": {...}}'},
        )
    return dict(check_nesting(meta, "meta"))


@router.get("/products")
def list_products(
    domain: str | None = None, status: str | None = None, ctx: Context = Depends(get_context)
) -> Any:
    return [_dump(p) for p in MeshService(ctx).list_products(domain, status)]


@router.get("/products/{product}")
def get_product(product: str, ctx: Context = Depends(get_context)) -> Any:
    return _dump(MeshService(ctx).get_product(product))


@router.get("/products/{product}/version")
def get_version(
    product: str, version: str | None = None, ctx: Context = Depends(get_context)
) -> Any:
    return _dump(MeshService(ctx).get_version(product, version))


@router.get("/products/{product}/versions")
def list_versions(product: str, ctx: Context = Depends(get_context)) -> Any:
    return [_dump(v) for v in MeshService(ctx).list_versions(product)]


@router.get("/products/{product}/export")
def export(product: str, version: str | None = None, ctx: Context = Depends(get_context)) -> Any:
    return MeshService(ctx).export(product, version)


@router.post("/products/{product}/deprecate")
def deprecate(product: str, body: DeprecateIn, ctx: Context = Depends(get_context)) -> Any:
    service = MeshService(ctx)
    return _dump(service.deprecate(product, body.sunset, body.replacement, body.reason))


@router.post("/products/{product}/retire")
def retire(product: str, ctx: Context = Depends(get_context)) -> Any:
    return _dump(MeshService(ctx).retire(product))


def _arrow_response(table: Any, notes: list[str]) -> Response:
    headers = {WARNINGS_HEADER: json.dumps(notes)} if notes else {}
    return Response(content=table_to_ipc(table), media_type=ARROW_STREAM, headers=headers)


@router.get("/products/{product}/data")
def read(
    product: str,
    *,
    version: str | None = None,
    port: str | None = None,
    columns: str | None = None,
    purpose: str = "",
    interface: str = "http",
    ctx: Context = Depends(get_context),
) -> Response:
    """The port's data as an Arrow IPC stream, through the governed read path."""
    wanted = [c for c in columns.split(",") if c] if columns else None
    chosen: Interface = "pipeline" if interface == "pipeline" else "http"
    table, notes = MeshService(ctx).read_with_notes(
        product, version, port, wanted, interface=chosen, purpose=purpose
    )
    return _arrow_response(table, notes)


@router.post("/sql")
def sql(body: SqlIn, ctx: Context = Depends(get_context)) -> Response:
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = MeshService(ctx).sql(body.query)
    return _arrow_response(table, [str(w.message) for w in caught])


@router.get("/products/{product}/lineage")
def product_lineage(
    product: str,
    version: str | None = None,
    direction: str = "upstream",
    depth: LineageDepth = 5,
    ctx: Context = Depends(get_context),
) -> Any:
    edges = MeshService(ctx).lineage(product, version, direction, depth)
    return [e.to_json() for e in edges]


@router.get("/products/{product}/slo")
def slo(product: str, ctx: Context = Depends(get_context)) -> Any:
    return _dump(MeshService(ctx).slo(product))


@catalog_router.get("/search")
def search(
    *,
    q: str = "",
    domain: str | None = None,
    status: str | None = None,
    classification: str | None = None,
    tag: str | None = None,
    limit: SearchLimit = 20,
    offset: Offset = 0,
    ctx: Context = Depends(get_context),
) -> Any:
    result = MeshService(ctx).search(
        q,
        domain=domain,
        status=status,
        classification=classification,
        tag=tag,
        limit=limit,
        offset=offset,
    )
    return _dump(result)
