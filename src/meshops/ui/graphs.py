"""Layered drawings of small DAGs (lineage, pipeline steps) as inline SVG, left to right.

A Sugiyama-style layout, kept small because the graphs are (at most `MAX_NODES` nodes):

1. layers: longest path from the sources, then sources pulled right next to their first
   consumer (a source feeding only the last layer should not sit at the far left);
2. edges spanning several layers are split by dummy nodes, so they are ordered like nodes
   and routed between the boxes instead of through them;
3. order within each layer: alternating down/up sweeps by the median of the neighbours'
   positions, then adjacent swaps while they remove crossings; the order with the fewest
   crossings seen is kept, so a graph that has a crossing-free layered drawing gets one in
   the common cases (chains, fan-out, fan-in, trees);
4. rows: each node as close to the mean height of its neighbours as the order and the
   spacing allow (isotonic regression per layer, a few passes);
5. edges: smooth cubic curves from the right side of one box to the left side of the next,
   through the dummies of long edges.

Labels wrap onto two lines and are ellipsised after that; the full text is the node's
`<title>` (a tooltip) and `data-label`, so nothing is lost. Pure functions from a `Graph`
to markup; every text is escaped.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

from markupsafe import Markup, escape

MAX_NODES = 80
SWEEPS = 12
NODE_W = 160
NODE_H = 54
GAP_X = 40
GAP_Y = 14
DUMMY_H = 10  # the height a long edge takes where it passes a layer
MARGIN = 8
LABEL_CHARS = 19  # per line of bold 12.5px text in NODE_W
SUB_CHARS = 24
STATUS_COLORS = {
    "ok": "#16a34a",
    "succeeded": "#16a34a",
    "finished": "#16a34a",
    "cached": "#0891b2",
    "skipped": "#94a3b8",
    "running": "#2563eb",
    "pending": "#94a3b8",
    "queued": "#94a3b8",
    "failed": "#dc2626",
    "error": "#dc2626",
    "alert": "#dc2626",
    "cancelled": "#64748b",
    "focus": "#0f172a",
}


@dataclass
class Node:
    id: str
    label: str
    sublabel: str = ""
    href: str | None = None
    status: str | None = None  # colours the node (see STATUS_COLORS)


@dataclass
class Graph:
    nodes: list[Node] = field(default_factory=list)
    edges: list[tuple[str, str, str]] = field(default_factory=list)  # (from, to, label)
    feedback: frozenset[str] = frozenset()  # labels of edges that close loops by nature

    def add(self, node: Node) -> None:
        if all(n.id != node.id for n in self.nodes):
            self.nodes.append(node)


@dataclass
class Layout:
    """Layers of ids, left to right; ids starting with DUMMY are the bends of long edges.
    `paths` maps each drawn edge to the ids it passes through (ends included)."""

    layers: list[list[str]]
    paths: list[tuple[tuple[str, str, str], list[str]]]
    y: dict[str, float] = field(default_factory=dict)  # centre of each id
    turned: set[tuple[str, str, str]] = field(default_factory=set)  # drawn right to left

    def crossings(self) -> int:
        return sum(_layer_crossings(self, i) for i in range(len(self.layers) - 1))


DUMMY = "\x00dummy:"


def layers(node_ids: Sequence[str], edges: Sequence[tuple[str, str, str]]) -> list[list[str]]:
    """The real nodes of each layer, left to right, in drawing order (top to bottom)."""
    return [
        [n for n in layer if not n.startswith(DUMMY)] for layer in layout(node_ids, edges).layers
    ]


def layout(
    node_ids: Sequence[str],
    edges: Sequence[tuple[str, str, str]],
    feedback: Collection[str] = (),
) -> Layout:
    ids = list(dict.fromkeys(node_ids))
    known = set(ids)
    kept = _merge_parallel([e for e in edges if e[0] in known and e[1] in known and e[0] != e[1]])
    forward, turned = _acyclic(ids, kept, feedback)
    rank = _ranks(ids, forward)
    result = _split_long_edges(ids, forward, rank)
    result.turned = {(b, a, label) for a, b, label in turned}
    _order(result)
    _rows(result)
    return result


def graph_svg(graph: Graph, *, max_nodes: int = MAX_NODES) -> Markup:
    """A left-to-right layered drawing; nodes with `href` are links."""
    nodes = graph.nodes[:max_nodes]
    if not nodes:
        return Markup('<p class="muted">No lineage recorded.</p>')
    by_id = {n.id: n for n in nodes}
    drawn = layout(list(by_id), graph.edges, graph.feedback)
    x = {
        nid: MARGIN + i * (NODE_W + GAP_X) for i, layer in enumerate(drawn.layers) for nid in layer
    }
    width = MARGIN * 2 + len(drawn.layers) * NODE_W + (len(drawn.layers) - 1) * GAP_X
    height = MARGIN * 2 + max(drawn.y[n] + _height(n) / 2 for n in drawn.y)
    parts = [
        f'<svg class="graph" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} '
        f'{height:.0f}" width="{width}" height="{height:.0f}" role="img" aria-label="graph">',
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#94a3b8"/></marker></defs>',
    ]
    for edge, path in drawn.paths:
        points = [(x[n], drawn.y[n] + MARGIN) for n in path]
        a, b, label = edge
        marker = "marker-end"
        if edge in drawn.turned:  # laid out backwards to break a cycle: the arrow at the start
            a, b, marker = b, a, "marker-start"
        parts.append(
            f'<path class="edge" data-from="{escape(a)}" data-to="{escape(b)}" '
            f'd="{_curve(points)}" {marker}="url(#arrow)"><title>{escape(label)}</title></path>'
        )
    for node in nodes:
        parts.append(_node_svg(node, x[node.id], drawn.y[node.id] + MARGIN - NODE_H / 2))
    parts.append("</svg>")
    return Markup("".join(parts))


def _merge_parallel(edges: list[tuple[str, str, str]]) -> list[tuple[str, str, str]]:
    """One edge per pair of nodes, its label naming every relation (a step passing three
    outputs to the next is one curve, not three)."""
    labels: dict[tuple[str, str], list[str]] = {}
    for a, b, label in edges:
        known = labels.setdefault((a, b), [])
        if label and label not in known:
            known.append(label)
    return [(a, b, ", ".join(names)) for (a, b), names in labels.items()]


# --- layering -----------------------------------------------------------------------------


def _acyclic(
    ids: list[str], edges: list[tuple[str, str, str]], feedback: Collection[str] = ()
) -> tuple[list[tuple[str, str, str]], set[tuple[str, str, str]]]:
    """The edges with a small set of them turned round so that none closes a cycle, and the
    turned ones (drawn with the arrow at their start, so they still point the right way).

    Lineage can close a loop (a model serves an endpoint whose monitor triggers the run
    that trains the next version): the Eades-Lin-Smyth order puts sources first, sinks
    last, and otherwise the node with the most outgoing over incoming edges, so the edge
    turned round is the one that returns to the start of the story. Edges whose relation is
    in `feedback` (an alert that `triggered` a retraining) are left out of that order, so
    they are the ones turned when they close a loop."""
    outs: dict[str, set[str]] = defaultdict(set)
    ins: dict[str, set[str]] = defaultdict(set)
    for a, b, label in edges:
        if not set(label.split(", ")) & set(feedback):
            outs[a].add(b)
            ins[b].add(a)
    left = dict.fromkeys(ids)
    head: list[str] = []
    tail: list[str] = []

    def remove(node: str) -> None:
        del left[node]
        for other in outs[node]:
            ins[other].discard(node)
        for other in ins[node]:
            outs[other].discard(node)

    while left:
        sinks = [n for n in left if not outs[n]]
        sources = [n for n in left if not ins[n]]
        if not sinks and not sources:
            sources = [max(left, key=lambda n: len(outs[n]) - len(ins[n]))]
        for node in sinks:
            tail.insert(0, node)
            remove(node)
        for node in sources:
            if node in left:
                head.append(node)
                remove(node)
    place = {n: k for k, n in enumerate(head + tail)}
    turned = {e for e in edges if place[e[0]] > place[e[1]]}
    forward = [(b, a, label) if (a, b, label) in turned else (a, b, label) for a, b, label in edges]
    return forward, turned


def _ranks(ids: list[str], edges: list[tuple[str, str, str]]) -> dict[str, int]:
    parents: dict[str, list[str]] = defaultdict(list)
    children: dict[str, list[str]] = defaultdict(list)
    for a, b, _ in edges:
        parents[b].append(a)
        children[a].append(b)
    rank: dict[str, int] = {}
    for node in _topological(ids, parents, children):
        rank[node] = max((rank[p] + 1 for p in parents[node]), default=0)
    for node in reversed(_topological(ids, parents, children)):
        if not parents[node] and children[node]:  # a source sits just before its first use
            rank[node] = min(rank[c] for c in children[node]) - 1
    return rank


def _topological(
    ids: list[str], parents: dict[str, list[str]], children: dict[str, list[str]]
) -> list[str]:
    waiting = {n: len(set(parents[n])) for n in ids}
    ready = [n for n in ids if waiting[n] == 0]
    out: list[str] = []
    while ready:
        node = ready.pop(0)
        out.append(node)
        for child in dict.fromkeys(children[node]):
            waiting[child] -= 1
            if waiting[child] == 0:
                ready.append(child)
    return out


def _split_long_edges(
    ids: list[str], edges: list[tuple[str, str, str]], rank: dict[str, int]
) -> Layout:
    grouped: list[list[str]] = [[] for _ in range(max(rank.values(), default=0) + 1)]
    for node in ids:
        grouped[rank[node]].append(node)
    paths = []
    for k, (a, b, label) in enumerate(edges):
        path = [a]
        for r in range(rank[a] + 1, rank[b]):
            dummy = f"{DUMMY}{k}:{r}"
            grouped[r].append(dummy)
            path.append(dummy)
        paths.append(((a, b, label), [*path, b]))
    return Layout(layers=grouped, paths=paths)


# --- ordering -----------------------------------------------------------------------------


def _neighbours(result: Layout) -> tuple[dict[str, list[str]], dict[str, list[str]]]:
    ups: dict[str, list[str]] = defaultdict(list)
    downs: dict[str, list[str]] = defaultdict(list)
    for _, path in result.paths:
        for u, v in pairwise(path):
            ups[v].append(u)
            downs[u].append(v)
    return ups, downs


def _order(result: Layout) -> None:
    ups, downs = _neighbours(result)
    best = [list(layer) for layer in result.layers]
    fewest = result.crossings()
    for sweep in range(SWEEPS):
        if fewest == 0:
            break
        down = sweep % 2 == 0
        indices = range(1, len(result.layers)) if down else range(len(result.layers) - 2, -1, -1)
        for i in indices:
            fixed = result.layers[i - 1 if down else i + 1]
            _sort_by_median(result.layers[i], fixed, ups if down else downs)
        _transpose(result, ups, downs)
        count = result.crossings()
        if count < fewest:
            fewest, best = count, [list(layer) for layer in result.layers]
    result.layers = best


def _sort_by_median(layer: list[str], fixed: list[str], links: dict[str, list[str]]) -> None:
    position = {n: k for k, n in enumerate(fixed)}
    current = {n: k for k, n in enumerate(layer)}

    def key(node: str) -> tuple[float, int]:
        seen = sorted(position[m] for m in links.get(node, []) if m in position)
        if not seen:  # no neighbour on that side: keep its place
            return float(current[node]), current[node]
        mid = len(seen) // 2
        median = seen[mid] if len(seen) % 2 else (seen[mid - 1] + seen[mid]) / 2
        return float(median), current[node]

    layer.sort(key=key)


def _transpose(result: Layout, ups: dict[str, list[str]], downs: dict[str, list[str]]) -> None:
    """Swap neighbours in a layer while that removes crossings with both adjacent layers."""
    improved = True
    rounds = 0
    while improved and rounds < 8:
        improved, rounds = False, rounds + 1
        for i, layer in enumerate(result.layers):
            before = result.layers[i - 1] if i > 0 else []
            after = result.layers[i + 1] if i + 1 < len(result.layers) else []
            for k in range(len(layer) - 1):
                u, v = layer[k], layer[k + 1]
                now = _pair(u, v, before, ups) + _pair(u, v, after, downs)
                swapped = _pair(v, u, before, ups) + _pair(v, u, after, downs)
                if swapped < now:
                    layer[k], layer[k + 1] = v, u
                    improved = True


def _pair(u: str, v: str, other: list[str], links: dict[str, list[str]]) -> int:
    """Crossings between the edges of u and of v (u above v) towards `other`."""
    if not other:
        return 0
    position = {n: k for k, n in enumerate(other)}
    pu = [position[m] for m in links.get(u, []) if m in position]
    pv = [position[m] for m in links.get(v, []) if m in position]
    return sum(1 for a in pu for b in pv if a > b)


def _layer_crossings(result: Layout, i: int) -> int:
    left = {n: k for k, n in enumerate(result.layers[i])}
    right = {n: k for k, n in enumerate(result.layers[i + 1])}
    segments = [
        (left[u], right[v])
        for _, path in result.paths
        for u, v in pairwise(path)
        if u in left and v in right
    ]
    segments.sort()
    return sum(
        1
        for k, (a1, b1) in enumerate(segments)
        for a2, b2 in segments[k + 1 :]
        if a1 < a2 and b1 > b2
    )


# --- rows ---------------------------------------------------------------------------------


def _height(node: str) -> float:
    return DUMMY_H if node.startswith(DUMMY) else NODE_H


def _rows(result: Layout) -> None:
    """Centres: stacked first, then each layer pulled towards its neighbours' mean height."""
    ups, downs = _neighbours(result)
    tallest = max(_stack_height(layer) for layer in result.layers)
    for layer in result.layers:
        top = (tallest - _stack_height(layer)) / 2
        for node in layer:
            result.y[node] = top + _height(node) / 2
            top += _height(node) + GAP_Y
    for sweep in range(6):
        links = ups if sweep % 2 == 0 else downs
        indices = range(len(result.layers))
        for i in indices if sweep % 2 == 0 else reversed(indices):
            layer = result.layers[i]
            wanted = [
                sum(result.y[m] for m in links[n]) / len(links[n]) if links.get(n) else result.y[n]
                for n in layer
            ]
            for node, y in zip(layer, _isotonic(layer, wanted), strict=True):
                result.y[node] = y
    low = min(result.y[n] - _height(n) / 2 for n in result.y)
    for node in result.y:
        result.y[node] -= low


def _stack_height(layer: list[str]) -> float:
    return sum(_height(n) for n in layer) + GAP_Y * max(len(layer) - 1, 0)


def _isotonic(layer: list[str], wanted: list[float]) -> list[float]:
    """The centres closest (least squares) to `wanted` that keep the order and spacing:
    pool-adjacent-violators on the wanted centres minus the spacing before each node."""
    offsets, total = [], 0.0
    for k, node in enumerate(layer):
        if k:
            total += (_height(layer[k - 1]) + _height(node)) / 2 + GAP_Y
        offsets.append(total)
    blocks: list[list[float]] = []  # [sum, count]
    for want, offset in zip(wanted, offsets, strict=True):
        blocks.append([want - offset, 1.0])
        while len(blocks) > 1 and blocks[-2][0] / blocks[-2][1] > blocks[-1][0] / blocks[-1][1]:
            s, c = blocks.pop()
            blocks[-1][0] += s
            blocks[-1][1] += c
    values = [b[0] / b[1] for b in blocks for _ in range(int(b[1]))]
    return [v + o for v, o in zip(values, offsets, strict=True)]


# --- drawing ------------------------------------------------------------------------------


def _curve(points: Sequence[tuple[float, float]]) -> str:
    """From the right side of the first box to the left side of the last, one smooth cubic
    per gap between layers; a long edge runs straight across the layers it passes."""
    (x0, y0), rest = points[0], points[1:]
    d = [f"M{x0 + NODE_W:.1f},{y0:.1f}"]
    x_prev, y_prev = x0 + NODE_W, y0
    for k, (x, y) in enumerate(rest):
        bend = (x - x_prev) / 2
        d.append(f"C{x_prev + bend:.1f},{y_prev:.1f} {x - bend:.1f},{y:.1f} {x:.1f},{y:.1f}")
        if k < len(rest) - 1:  # a dummy: cross its layer level
            d.append(f"L{x + NODE_W:.1f},{y:.1f}")
            x_prev, y_prev = x + NODE_W, y
    return " ".join(d)


def _node_svg(node: Node, x: float, y: float) -> str:
    color = STATUS_COLORS.get((node.status or "").lower(), "#cbd5e1")
    lines = wrap(node.label, LABEL_CHARS, 2)
    texts = "".join(
        f'<text class="node-label" x="{x + 10:.1f}" y="{y + 18 + 15 * k:.1f}">{escape(line)}</text>'
        for k, line in enumerate(lines)
    )
    sub_y = y + 18 + 15 * len(lines)
    title = node.label if not node.sublabel else f"{node.label} · {node.sublabel}"
    body = (
        f"<title>{escape(title)}\n{escape(node.id)}</title>"
        f'<rect x="{x:.1f}" y="{y:.1f}" width="{NODE_W}" height="{NODE_H}" rx="8" '
        f'stroke="{color}" class="node-box{" focus" if node.status == "focus" else ""}"/>'
        f"{texts}"
        f'<text class="node-sub" x="{x + 10:.1f}" y="{sub_y:.1f}">'
        f"{escape(shorten(node.sublabel, SUB_CHARS))}</text>"
    )
    attrs = f'data-urn="{escape(node.id)}" data-label="{escape(node.label)}"'
    if node.href:
        return f'<a class="node" href="{escape(node.href)}" {attrs}>{body}</a>'
    return f'<g class="node" {attrs}>{body}</g>'


BREAKS = " .:/@-_"  # where a name reads best when broken, best first


def wrap(text: str, width: int, max_lines: int) -> list[str]:
    """Lines of at most `width` characters, broken after separators where possible; the
    last line is ellipsised when the text does not fit."""
    lines: list[str] = []
    rest = text
    while rest and len(lines) < max_lines:
        if len(rest) <= width:
            lines.append(rest)
            break
        if len(lines) == max_lines - 1:
            lines.append(rest[: width - 1] + "…")
            break
        cut = _cut(rest, width, last_but_one=len(lines) == max_lines - 2)
        lines.append(rest[:cut].rstrip())
        rest = rest[cut:].lstrip()
    return lines or [""]


def _cut(text: str, width: int, *, last_but_one: bool) -> int:
    """Where to end this line: after the best separator that leaves a rest fitting on the
    last line ("sales." / "customer_activity"), else after the latest separator, else at
    the width."""
    cuts = [(BREAKS.index(ch), k + 1) for k, ch in enumerate(text[:width]) if ch in BREAKS]
    if last_but_one:
        fitting = [c for c in cuts if len(text) - c[1] <= width]
        if fitting:
            return min(fitting, key=lambda c: (c[0], -c[1]))[1]
    latest = max((k for _, k in cuts), default=0)
    return latest if latest > width // 3 else width


def shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
