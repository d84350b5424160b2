"""Lineage graph: upstream/downstream walks and manual edges."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Depends
from pydantic import BaseModel

from meshops.api.deps import get_context
from meshops.kernel.bounds import LineageDepth
from meshops.kernel.home import Context
from meshops.kernel.lineage import LineageService

router = APIRouter(prefix="/v1/lineage", tags=["lineage"])


class EdgeIn(BaseModel):
    upstream: str
    downstream: str
    relation: str


@router.get("/upstream")
def upstream(urn: str, depth: LineageDepth = 5, ctx: Context = Depends(get_context)) -> list[Any]:
    return [e.to_json() for e in LineageService(ctx).upstream(urn, depth)]


@router.get("/downstream")
def downstream(urn: str, depth: LineageDepth = 5, ctx: Context = Depends(get_context)) -> list[Any]:
    return [e.to_json() for e in LineageService(ctx).downstream(urn, depth)]


@router.post("/edges", status_code=201)
def add_edge(body: EdgeIn, ctx: Context = Depends(get_context)) -> dict[str, str]:
    LineageService(ctx).add_edge(body.upstream, body.downstream, body.relation)
    return {"status": "recorded"}
