"""OpenLineage in: `POST /api/v1/lineage`, the path Marquez serves, so an OpenLineage HTTP
transport (Airflow, Spark, dbt, Flink, openlineage-python) can report to a meshops server.

A route of its own rather than a `kernel.rpc` declaration: the body is a raw OpenLineage
event (RunEvent, JobEvent or DatasetEvent), not a request model meshops defines. The caller
authenticates with a meshops API token (`Authorization: Bearer ...`, which the OpenLineage
transports send as their `api_key`) and needs `lineage.write`. Validation and recording:
`kernel/openlineage_ingest.py`; docs/openlineage.md.
"""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends, Request
from starlette.concurrency import run_in_threadpool

from meshops.api.deps import get_context
from meshops.kernel import openlineage_ingest
from meshops.kernel.errors import BadRequest
from meshops.kernel.home import Context

router = APIRouter(tags=["lineage"])


async def _body(request: Request) -> bytes:
    """The body, read no further than the event limit."""
    limit = openlineage_ingest.MAX_EVENT_BYTES
    received = bytearray()
    async for chunk in request.stream():
        received.extend(chunk)
        if len(received) > limit:
            raise BadRequest(
                f"the event is larger than {limit} bytes",
                {"field": "(body)", "fix": "send smaller events (fewer datasets or facets)"},
            )
    return bytes(received)


@router.post("/api/v1/lineage", status_code=201)
async def receive_openlineage(request: Request, ctx: Context = Depends(get_context)) -> Any:
    """Record one OpenLineage event in the lineage graph. 400 names the field that breaks
    the official schema; 401 without a token; 403 without `lineage.write`."""
    event = openlineage_ingest.parse(await _body(request))
    return await run_in_threadpool(openlineage_ingest.record, ctx, event)
