"""The mesh's routes the RPC layer does not derive (the rest are declared on
`meshops.mesh.interface`): the publish upload (one Arrow table per port) and the reads,
whose Arrow stream carries the lifecycle warnings in a header."""

from __future__ import annotations

import json
import warnings
from typing import Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import Response
from pydantic import BaseModel, ValidationError

from meshops.api.deps import get_context
from meshops.kernel.access import Interface
from meshops.kernel.bounds import check_nesting
from meshops.kernel.errors import InvalidInput
from meshops.kernel.home import Context
from meshops.kernel.wire import ARROW_STREAM, decode_table, encode_table
from meshops.mesh.models import BuildSummary
from meshops.mesh.publish_service import PublishService
from meshops.mesh.read_service import ReadService
from meshops.mesh.remote import WARNINGS_HEADER

router = APIRouter(prefix="/v1/mesh", tags=["mesh"])


class SqlIn(BaseModel):
    query: str
    interface: Interface = "sql"


def _remote_interface(claimed: str, default: Interface) -> Interface:
    """What a remote caller may say it reads through: a pipeline, or the default."""
    return "pipeline" if claimed == "pipeline" else default


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
        tables[part.filename] = decode_table(await part.read(), "tables")
    version = PublishService(ctx).publish_arrow(
        meta["descriptor"],
        meta["contracts"],
        tables,
        inputs=meta.get("inputs") or [],
        build=_build_summary(meta.get("build")),
    )
    return version.model_dump(mode="json")


def _build_summary(value: Any) -> BuildSummary | None:
    """The `meta` part's optional `build`: how the client built the tables (a report)."""
    if value is None:
        return None
    try:
        return BuildSummary.model_validate(value)
    except ValidationError as exc:
        raise InvalidInput(
            f"the `meta` part's `build` is not a build report: {exc.errors()[0]['msg']}",
            {"field": "meta.build", "fix": "send the build's BuildSummary, or leave it out"},
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


def _arrow_response(table: Any, notes: list[str]) -> Response:
    headers = {WARNINGS_HEADER: json.dumps(notes)} if notes else {}
    return Response(content=encode_table(table), media_type=ARROW_STREAM, headers=headers)


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
    chosen = _remote_interface(interface, "http")
    table, notes = ReadService(ctx).read_with_notes(
        product, version, port, wanted, interface=chosen, purpose=purpose
    )
    return _arrow_response(table, notes)


@router.post("/sql")
def sql(body: SqlIn, ctx: Context = Depends(get_context)) -> Response:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        table = ReadService(ctx).sql(body.query, interface=_remote_interface(body.interface, "sql"))
    return _arrow_response(table, [str(w.message) for w in caught])
