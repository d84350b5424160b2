"""The SVG chart module: scales, escaping, thinning and the layered graph layout."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET

from meshops.ui import charts


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML or this raises


def test_line_chart_draws_one_polyline_per_series_inside_the_plot() -> None:
    svg = charts.line_chart(
        {"loss": [(0, 1.0), (1, 0.5), (2, 0.25)], "acc": [(0, 0.1), (2, 0.9)]}, title="t"
    )
    root = _parse(svg)
    lines = root.findall("{http://www.w3.org/2000/svg}polyline")
    assert [p.get("data-series") for p in lines] == ["loss", "acc"]
    for line in lines:
        for pair in (line.get("points") or "").split():
            x, y = map(float, pair.split(","))
            assert 56 <= x <= 560 - 16 and 0 <= y <= 240 - 40
    # the y axis starts at or below the minimum and ends at or above the maximum
    ticks = [float(t) for t in re.findall(r'class="tick y"[^>]*>([-0-9.e]+)<', svg)]
    assert min(ticks) <= 0.1 and max(ticks) >= 1.0


def test_labels_are_escaped_and_empty_data_says_so() -> None:
    svg = charts.line_chart({"<script>": [(0, 1.0), (1, 2.0)]}, title="a & b")
    assert "<script>" not in svg and "&lt;script&gt;" in svg and "a &amp; b" in svg
    _parse(svg)
    assert "no data" in charts.line_chart({"x": []})
    assert "no data" in charts.bar_chart([], [])


def test_long_series_are_thinned_and_non_finite_values_dropped() -> None:
    points = [(float(i), float(i % 7)) for i in range(10_000)] + [(1.0, float("nan"))]
    svg = charts.line_chart({"m": points}, max_points=200)
    coords = re.search(r'points="([^"]+)"', svg)
    assert coords and 150 <= len(coords.group(1).split()) <= 202


def test_bar_chart_heights_follow_values() -> None:
    root = _parse(charts.bar_chart(["a", "b", "c"], [1.0, 4.0, 2.0]))
    bars = root.findall("{http://www.w3.org/2000/svg}rect")
    heights = [float(b.get("height") or 0) for b in bars]
    assert heights[1] > heights[2] > heights[0] > 0


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    assert charts.nice_ticks(0, 1) == [0, 0.25, 0.5, 0.75, 1.0]
    ticks = charts.nice_ticks(3.2, 97.5)
    assert ticks[0] <= 3.2 and ticks[-1] >= 97.5 and ticks[1] - ticks[0] in (20, 25)
    assert charts.nice_ticks(5, 5)[-1] > 5


def test_layers_put_every_node_right_of_its_parents() -> None:
    edges = [("a", "c", ""), ("b", "c", ""), ("c", "d", ""), ("a", "d", "")]
    layers = charts.layers(["a", "b", "c", "d"], edges)
    where = {n: i for i, layer in enumerate(layers) for n in layer}
    assert where["a"] == where["b"] == 0 and where["c"] == 1 and where["d"] == 2
    # a cycle (which lineage should not have) still places every node once
    cyclic = charts.layers(["a", "b", "c", "d"], [*edges, ("d", "a", "")])
    assert sorted(n for layer in cyclic for n in layer) == ["a", "b", "c", "d"]


def test_graph_nodes_link_and_edges_connect_boxes() -> None:
    graph = charts.Graph()
    graph.add(charts.Node("u:1", "orders", "data product", "/ui/products/sales.orders"))
    graph.add(charts.Node("u:2", "revenue", "data product", None, "focus"))
    graph.add(charts.Node("u:1", "dup"))
    graph.edges.append(("u:1", "u:2", "input"))
    svg = charts.graph_svg(graph)
    root = _parse(svg)
    ns = "{http://www.w3.org/2000/svg}"
    links = root.findall(f"{ns}a")
    assert [a.get("href") for a in links] == ["/ui/products/sales.orders"]
    [edge] = root.findall(f"{ns}path[@class='edge']")
    rects = [(float(r.get("x") or 0), float(r.get("y") or 0)) for r in root.iter(f"{ns}rect")]
    numbers = [float(n) for n in re.findall(r"-?[0-9.]+", edge.get("d") or "")]
    (ax, ay), (bx, by) = rects
    assert numbers[:2] == [ax + 200, ay + 23] and numbers[-2:] == [bx, by + 23]
    assert 'class="node-box focus"' in svg
    assert "No lineage" in charts.graph_svg(charts.Graph())
