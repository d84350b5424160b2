"""Small server-side SVG charts for the pages: lines, bars and a layered graph (DAG/lineage).

Pure functions from numbers to markup; every label is escaped. No JavaScript and no CDN:
the SVG is inlined in the page, so charts render offline and in screenshots.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from markupsafe import Markup, escape

PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777")
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


def _fmt(value: float) -> str:
    if value == 0:
        return "0"
    magnitude = abs(value)
    if magnitude >= 10_000 or magnitude < 0.001:
        return f"{value:.2g}"
    if magnitude >= 100:
        return f"{value:.0f}"
    return f"{value:.3g}"


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick values covering [low, high] (1-2-5 steps)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0]
    if high <= low:
        high = low + (abs(low) or 1.0)
    raw = (high - low) / max(count - 1, 1)
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 2.5, 5, 10) if m * power >= raw)
    start = math.floor(low / step) * step
    ticks = []
    value = start
    while value <= high + step * 0.5:
        ticks.append(round(value, 12))
        value += step
    return ticks


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str = "",
    x_label: str = "step",
    y_label: str = "",
    width: int = 560,
    height: int = 240,
    max_points: int = 500,
) -> Markup:
    """One polyline per series over a shared x axis; long series are thinned evenly."""
    pad_l, pad_r, pad_t, pad_b = 56, 16, 28 if title else 12, 40
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    cleaned = {
        name: _thin([(float(x), float(y)) for x, y in pts if math.isfinite(y)], max_points)
        for name, pts in series.items()
    }
    points = [p for pts in cleaned.values() for p in pts]
    parts = [_svg_open(width, height, title or "line chart")]
    if title:
        parts.append(f'<text class="chart-title" x="{pad_l}" y="18">{escape(title)}</text>')
    if not points:
        parts.append(f'<text class="chart-empty" x="{width / 2}" y="{height / 2}">no data</text>')
        return Markup("".join(parts) + "</svg>")
    xs, ys = [p[0] for p in points], [p[1] for p in points]
    x_ticks, y_ticks = nice_ticks(min(xs), max(xs)), nice_ticks(min(ys), max(ys))
    x0, x1, y0, y1 = x_ticks[0], x_ticks[-1], y_ticks[0], y_ticks[-1]

    def sx(x: float) -> float:
        return pad_l + (x - x0) / ((x1 - x0) or 1) * plot_w

    def sy(y: float) -> float:
        return pad_t + plot_h - (y - y0) / ((y1 - y0) or 1) * plot_h

    parts.append(
        _axes(
            left=pad_l,
            top=pad_t,
            w=plot_w,
            h=plot_h,
            x_ticks=x_ticks,
            y_ticks=y_ticks,
            sx=sx,
            sy=sy,
        )
    )
    parts.append(
        f'<text class="axis-label" x="{pad_l + plot_w / 2}" y="{height - 4}">'
        f"{escape(x_label)}</text>"
    )
    if y_label:
        parts.append(
            f'<text class="axis-label" transform="translate(12 {pad_t + plot_h / 2}) rotate(-90)">'
            f"{escape(y_label)}</text>"
        )
    for i, (name, pts) in enumerate(cleaned.items()):
        color = PALETTE[i % len(PALETTE)]
        coords = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in pts)
        parts.append(
            f'<polyline class="series" data-series="{escape(name)}" fill="none" '
            f'stroke="{color}" stroke-width="2" points="{coords}"><title>{escape(name)}</title>'
            "</polyline>"
        )
        if len(pts) <= 40:
            parts.extend(
                f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="2.5" fill="{color}">'
                f"<title>{escape(name)}: {_fmt(y)} @ {_fmt(x)}</title></circle>"
                for x, y in pts
            )
    parts.append(_legend(list(cleaned), width - pad_r - 4, pad_t + 4))
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str = "",
    width: int = 560,
    height: int = 220,
    color: str = PALETTE[0],
) -> Markup:
    """Vertical bars, one per label (labels are thinned on the axis when crowded)."""
    pad_l, pad_r, pad_t, pad_b = 48, 12, 28 if title else 12, 44
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    parts = [_svg_open(width, height, title or "bar chart")]
    if title:
        parts.append(f'<text class="chart-title" x="{pad_l}" y="18">{escape(title)}</text>')
    if not values:
        parts.append(f'<text class="chart-empty" x="{width / 2}" y="{height / 2}">no data</text>')
        return Markup("".join(parts) + "</svg>")
    y_ticks = nice_ticks(min(0.0, *values), max(values) or 1.0)
    y0, y1 = y_ticks[0], y_ticks[-1]

    def sy(y: float) -> float:
        return pad_t + plot_h - (y - y0) / ((y1 - y0) or 1) * plot_h

    slot = plot_w / len(values)
    parts.append(
        _axes(
            left=pad_l, top=pad_t, w=plot_w, h=plot_h, x_ticks=[], y_ticks=y_ticks, sx=float, sy=sy
        )
    )
    every = max(1, math.ceil(len(labels) / 10))
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = pad_l + i * slot + slot * 0.15
        top, base = sy(max(value, 0.0)), sy(min(value, 0.0))
        parts.append(
            f'<rect class="bar" x="{x:.1f}" y="{top:.1f}" width="{slot * 0.7:.1f}" '
            f'height="{max(base - top, 0.5):.1f}" fill="{color}">'
            f"<title>{escape(label)}: {_fmt(value)}</title></rect>"
        )
        if i % every == 0:
            parts.append(
                f'<text class="tick" x="{x + slot * 0.35:.1f}" y="{pad_t + plot_h + 14}">'
                f"{escape(_short(label, 12))}</text>"
            )
    parts.append("</svg>")
    return Markup("".join(parts))


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

    def add(self, node: Node) -> None:
        if all(n.id != node.id for n in self.nodes):
            self.nodes.append(node)


def layers(node_ids: Sequence[str], edges: Sequence[tuple[str, str, str]]) -> list[list[str]]:
    """Longest-path layering (sources left), then one barycentre pass to reduce crossings.
    Cycles (which lineage should not have) are broken by ignoring back edges."""
    parents: dict[str, list[str]] = defaultdict(list)
    for a, b, _ in edges:
        if a != b:
            parents[b].append(a)
    depth: dict[str, int] = {}
    visiting: set[str] = set()

    def level(n: str) -> int:
        if n in depth:
            return depth[n]
        visiting.add(n)
        ups = [level(p) + 1 for p in parents.get(n, []) if p not in visiting]
        visiting.discard(n)
        depth[n] = max(ups, default=0)
        return depth[n]

    for n in node_ids:
        level(n)
    grouped: dict[int, list[str]] = defaultdict(list)
    for n in node_ids:
        grouped[depth[n]].append(n)
    result = [grouped[i] for i in sorted(grouped)]
    for i in range(1, len(result)):
        position = {n: k for k, n in enumerate(result[i - 1])}

        def centre(n: str, position: dict[str, int] = position) -> float:
            ps = [position[p] for p in parents.get(n, []) if p in position]
            return sum(ps) / len(ps) if ps else float("inf")

        result[i].sort(key=centre)
    return result


def graph_svg(graph: Graph, *, node_w: int = 200, node_h: int = 46, max_nodes: int = 80) -> Markup:
    """A left-to-right layered drawing; nodes with `href` are links."""
    nodes = graph.nodes[:max_nodes]
    by_id = {n.id: n for n in nodes}
    edges = [e for e in graph.edges if e[0] in by_id and e[1] in by_id]
    if not nodes:
        return Markup('<p class="muted">No lineage recorded.</p>')
    columns = layers([n.id for n in nodes], edges)
    gap_x, gap_y, margin = 70, 18, 10
    tallest = max(len(c) for c in columns)
    width = margin * 2 + len(columns) * node_w + (len(columns) - 1) * gap_x
    height = margin * 2 + tallest * node_h + (tallest - 1) * gap_y + node_h  # room for arcs
    where: dict[str, tuple[float, float]] = {}
    for ci, column in enumerate(columns):
        # centred below the head room that arcs over skipped layers need
        offset = node_h + (height - node_h - (len(column) * node_h + (len(column) - 1) * gap_y)) / 2
        for ri, nid in enumerate(column):
            where[nid] = (margin + ci * (node_w + gap_x), offset + ri * (node_h + gap_y))
    parts = [_svg_open(width, height, "graph", cls="graph")]
    parts.append(
        '<defs><marker id="arrow" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" '
        'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        'fill="#94a3b8"/></marker></defs>'
    )
    for a, b, label in edges:
        (ax, ay), (bx, by) = where[a], where[b]
        x1, y1, x2, y2 = ax + node_w, ay + node_h / 2, bx, by + node_h / 2
        mid = (x1 + x2) / 2
        if x2 - x1 > gap_x + 1:  # skips a layer: arc over the boxes in between
            lift = node_h * 0.9  # the curve rises ~3/4 of it: over the boxes in between
            c1, c2 = (
                f"{x1 + gap_x:.1f},{y1 - lift:.1f}",
                f"{x2 - gap_x:.1f},{y2 - lift:.1f}",
            )
        else:
            c1, c2 = f"{mid:.1f},{y1:.1f}", f"{mid:.1f},{y2:.1f}"
        parts.append(
            f'<path class="edge" d="M{x1:.1f},{y1:.1f} C{c1} {c2} '
            f'{x2:.1f},{y2:.1f}" marker-end="url(#arrow)"><title>{escape(label)}</title></path>'
        )
    for node in nodes:
        x, y = where[node.id]
        color = STATUS_COLORS.get((node.status or "").lower(), "#cbd5e1")
        body = (
            f'<rect x="{x:.1f}" y="{y:.1f}" width="{node_w}" height="{node_h}" rx="8" '
            f'stroke="{color}" class="node-box{" focus" if node.status == "focus" else ""}"/>'
            f'<text class="node-label" x="{x + 10:.1f}" y="{y + 19:.1f}">'
            f"{escape(_short(node.label, 26))}</text>"
            f'<text class="node-sub" x="{x + 10:.1f}" y="{y + 35:.1f}">'
            f"{escape(_short(node.sublabel, 30))}</text><title>{escape(node.id)}</title>"
        )
        if node.href:
            parts.append(
                f'<a class="node" href="{escape(node.href)}" data-urn="{escape(node.id)}">'
                f"{body}</a>"
            )
        else:
            parts.append(f'<g class="node" data-urn="{escape(node.id)}">{body}</g>')
    parts.append("</svg>")
    return Markup("".join(parts))


# --- helpers ---


def _svg_open(width: int, height: int, label: str, cls: str = "chart") -> str:
    return (
        f'<svg class="{cls}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}">'
    )


def _axes(
    *,
    left: float,
    top: float,
    w: float,
    h: float,
    x_ticks: Sequence[float],
    y_ticks: Sequence[float],
    sx: object,
    sy: object,
) -> str:
    assert callable(sx) and callable(sy)
    out = [
        f'<line class="axis" x1="{left}" y1="{top + h}" x2="{left + w}" y2="{top + h}"/>',
        f'<line class="axis" x1="{left}" y1="{top}" x2="{left}" y2="{top + h}"/>',
    ]
    for t in y_ticks:
        y = sy(t)
        out.append(f'<line class="grid" x1="{left}" y1="{y:.1f}" x2="{left + w}" y2="{y:.1f}"/>')
        out.append(f'<text class="tick y" x="{left - 6}" y="{y + 4:.1f}">{_fmt(t)}</text>')
    for t in x_ticks:
        x = sx(t)
        out.append(f'<text class="tick" x="{x:.1f}" y="{top + h + 16}">{_fmt(t)}</text>')
    return "".join(out)


def _legend(names: list[str], right: float, y: float) -> str:
    """A boxed legend whose right edge is at `right` (top right of the plot)."""
    if len(names) < 2:
        return ""
    shown = names[:8]
    box = max(len(_short(n, 28)) for n in shown) * 6.2 + 24
    x = right - box + 4
    out = [
        f'<rect class="legend-bg" x="{x - 4:.1f}" y="{y - 4}" width="{box:.0f}" '
        f'height="{len(shown) * 14 + 6}" rx="4"/>'
    ]
    for i, name in enumerate(shown):
        color = PALETTE[i % len(PALETTE)]
        yy = y + i * 14
        out.append(
            f'<rect x="{x}" y="{yy}" width="10" height="3" fill="{color}"/>'
            f'<text class="legend" x="{x + 14}" y="{yy + 5}">{escape(_short(name, 28))}</text>'
        )
    return "".join(out)


def _thin(points: list[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    points.sort()
    if len(points) <= limit:
        return points
    stride = len(points) / limit
    return [points[int(i * stride)] for i in range(limit)] + [points[-1]]


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
