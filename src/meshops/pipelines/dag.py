"""Planning: the DAG of a built pipeline, its dependents and ready sets.

Nodes are recorded in call order and a handle can only come from an earlier call, so the
call order is already a topological order; planning is linear in nodes + edges.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from meshops.kernel.errors import InvalidInput
from meshops.pipelines.dsl import Graph


@dataclass
class Plan:
    order: list[str]  # topological
    deps: dict[str, tuple[str, ...]]
    dependents: dict[str, list[str]]
    levels: list[list[str]]  # nodes that may run together, wave by wave

    def downstream(self, nodes: Iterable[str]) -> set[str]:
        """`nodes` and everything that (transitively) depends on them."""
        seen = set(nodes)
        queue = deque(seen)
        while queue:
            for child in self.dependents[queue.popleft()]:
                if child not in seen:
                    seen.add(child)
                    queue.append(child)
        return seen


def plan(graph: Graph) -> Plan:
    deps = {node_id: node.deps for node_id, node in graph.nodes.items()}
    dependents: dict[str, list[str]] = {node_id: [] for node_id in deps}
    depth: dict[str, int] = {}
    levels: list[list[str]] = []
    for node_id, node_deps in deps.items():
        level = 0
        for dep in node_deps:
            if dep not in depth:
                raise InvalidInput(
                    f"step {node_id} depends on {dep}, which is not defined before it",
                    {"fix": "a step can only consume outputs of steps called earlier"},
                )
            dependents[dep].append(node_id)
            level = max(level, depth[dep] + 1)
        depth[node_id] = level
        if level == len(levels):
            levels.append([])
        levels[level].append(node_id)
    return Plan(list(deps), deps, dependents, levels)
