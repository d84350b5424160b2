"""The one lineage graph: every derivation between two URNs is an edge.

`upstream`/`downstream` walk N hops with a recursive CTE, so impact analysis is one query.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol

from sqlalchemy import Connection, text

from meshops.kernel import rpc
from meshops.kernel.bounds import LineageDepth
from meshops.kernel.db import insert_ignoring_conflicts, utcnow
from meshops.kernel.errors import InvalidInput
from meshops.kernel.steps import StepRelation, current_step
from meshops.kernel.steps import link as link_to_step
from meshops.kernel.tables import lineage_edges
from meshops.kernel.urn import Urn

if TYPE_CHECKING:
    from meshops.kernel.home import Context

MAX_DEPTH = 50


@dataclass(frozen=True)
class Edge:
    upstream: str
    downstream: str
    relation: str
    depth: int = 1

    def to_json(self) -> dict[str, Any]:
        return {
            "upstream": self.upstream,
            "downstream": self.downstream,
            "relation": self.relation,
            "depth": self.depth,
        }


def add_edge(
    conn: Connection,
    upstream: str,
    downstream: str,
    relation: str,
    properties: dict[str, Any] | None = None,
) -> None:
    """Record `upstream --relation--> downstream`; recording it again is a no-op."""
    add_edges(conn, [(upstream, downstream, relation)], properties)


def add_edges(
    conn: Connection,
    edges: list[tuple[str, str, str]],
    properties: dict[str, Any] | None = None,
) -> None:
    for up, down, _ in edges:
        Urn.parse(up)
        Urn.parse(down)
    now = utcnow()
    rows = [
        {
            "upstream": up,
            "downstream": down,
            "relation": rel,
            "properties": properties or {},
            "created_at": now,
        }
        for up, down, rel in edges
    ]
    insert_ignoring_conflicts(conn, lineage_edges, rows, ["upstream", "downstream", "relation"])


_WALK = """
WITH RECURSIVE walk(upstream, downstream, relation, depth) AS (
    SELECT upstream, downstream, relation, 1 FROM lineage_edges WHERE {start} = :urn
    UNION
    SELECT e.upstream, e.downstream, e.relation, w.depth + 1
    FROM lineage_edges e JOIN walk w ON e.{start} = w.{next}
    WHERE w.depth < :depth
)
SELECT upstream, downstream, relation, MIN(depth) AS depth
FROM walk GROUP BY upstream, downstream, relation ORDER BY depth, upstream, downstream
"""


def walk(
    conn: Connection, urn: str, direction: Literal["upstream", "downstream"], depth: int = 5
) -> list[Edge]:
    """Edges reachable from `urn` within `depth` hops, nearest first."""
    if not 1 <= depth <= MAX_DEPTH:
        raise InvalidInput(f"depth must be between 1 and {MAX_DEPTH}", {"field": "depth"})
    # Walking upstream follows edges into `urn` (matching on downstream), and vice versa.
    start, nxt = (
        ("downstream", "upstream") if direction == "upstream" else ("upstream", "downstream")
    )
    sql = text(_WALK.format(start=start, next=nxt))
    rows = conn.execute(sql, {"urn": urn, "depth": depth})
    return [Edge(r.upstream, r.downstream, r.relation, int(r.depth)) for r in rows]


def nodes(edges: list[Edge]) -> list[str]:
    seen: dict[str, None] = {}
    for edge in edges:
        seen.setdefault(edge.upstream)
        seen.setdefault(edge.downstream)
    return list(seen)


def path_exists(conn: Connection, source: str, target: str, depth: int = 20) -> bool:
    return any(e.downstream == target for e in walk(conn, source, "downstream", depth))


class Lineage(Protocol):
    """`platform.lineage`: the graph over both transports (declared once, kernel.rpc)."""

    @rpc.get("/v1/lineage/upstream")
    def upstream(self, urn: str, depth: LineageDepth = 5) -> list[Edge]:
        """What `urn` derives from, up to `depth` hops."""
        ...

    @rpc.get("/v1/lineage/downstream")
    def downstream(self, urn: str, depth: LineageDepth = 5) -> list[Edge]:
        """What derives from `urn`, up to `depth` hops (impact analysis)."""
        ...

    @rpc.post("/v1/lineage/edges", status=201)
    def add_edge(self, upstream: str, downstream: str, relation: str) -> None:
        """Record an edge no area records itself (e.g. an external system's)."""
        ...

    @rpc.post("/v1/lineage/step-links", status=201)
    def link_to_step(self, urn: str, relation: StepRelation = "produced") -> str:
        """Inside a pipeline step: link `urn` to the running step's run (and its pipeline
        run): `steprun -produced-> urn`, or `urn -input_to-> steprun` for `consumed`.
        Returns the step run's URN. What the platform creates inside a step (tracking
        runs, model versions, publishes, training sets) is linked without it; this is for
        objects it does not create, e.g. an external system's."""
        ...


class LineageService:
    """Read the graph (lineage.read: every principal) and record edges no area records."""

    def __init__(self, ctx: Context) -> None:
        self.ctx = ctx

    def upstream(self, urn: str, depth: int = 5) -> list[Edge]:
        self.ctx.authorize("lineage.read")
        Urn.parse(urn)
        with self.ctx.db.read() as conn:
            return walk(conn, urn, "upstream", depth)

    def downstream(self, urn: str, depth: int = 5) -> list[Edge]:
        self.ctx.authorize("lineage.read")
        Urn.parse(urn)
        with self.ctx.db.read() as conn:
            return walk(conn, urn, "downstream", depth)

    def add_edge(self, upstream: str, downstream: str, relation: str) -> None:
        self.ctx.authorize("lineage.write")
        with self.ctx.db.begin() as conn:
            add_edge(conn, upstream, downstream, relation)
            self.ctx.audit(conn, "lineage.add_edge", downstream, detail={"upstream": upstream})

    def link_to_step(self, urn: str, relation: str = "produced") -> str:
        # The step is this process's (set by the executor) or, on the server, the request's
        # step verified against the run's state; whoever the run acts as may link to it.
        here = current_step()
        step_urn = here.step_run_urn if here is not None else None
        if step_urn is None:
            raise InvalidInput(
                "not inside a pipeline step: there is no step run to link to",
                {"field": "urn", "fix": "call link_to_step from a @step function of a run"},
            )
        self.ctx.authorize("pipelines.run")
        Urn.parse(urn)
        with self.ctx.db.begin() as conn:
            link_to_step(conn, urn, relation)
            self.ctx.audit(
                conn,
                "lineage.link_to_step",
                urn,
                detail={"step_run": step_urn, "relation": relation},
            )
        return step_urn
