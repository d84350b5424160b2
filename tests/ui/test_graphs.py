"""The layered graph layout (ui/graphs.py): left to right by layer, no crossings where a
crossing-free layered drawing exists, every label's full text kept, smooth curves."""

from __future__ import annotations

import re

from meshops.ui.graphs import DUMMY, Graph, Node, graph_svg, layers, layout, wrap

# product -> feature view -> training run -> model -> endpoint, with fan-out at each step
# and a second product feeding the same views (a crossing-free layered drawing exists).
CHAIN = [
    ("product:orders", "feature:activity", "source_of"),
    ("product:tickets", "feature:activity", "source_of"),
    ("product:profiles", "feature:profile", "source_of"),
    ("feature:activity", "run:train-1", "input_to"),
    ("feature:profile", "run:train-1", "input_to"),
    ("feature:profile", "run:train-2", "input_to"),
    ("run:train-1", "model:churn:1", "produced"),
    ("run:train-2", "model:churn:2", "produced"),
    ("model:churn:1", "endpoint:churn-api", "deployed_to"),
    ("model:churn:2", "endpoint:churn-api", "deployed_to"),
    ("model:churn:2", "endpoint:churn-batch", "deployed_to"),
    ("endpoint:churn-api", "monitor:drift", "monitored_by"),
]


def _ids(edges: list[tuple[str, str, str]]) -> list[str]:
    return list(dict.fromkeys(n for a, b, _ in edges for n in (a, b)))


def test_layers_run_left_to_right_from_sources() -> None:
    columns = layers(_ids(CHAIN), CHAIN)
    kinds = [{n.split(":")[0] for n in column} for column in columns]
    assert kinds == [{"product"}, {"feature"}, {"run"}, {"model"}, {"endpoint"}, {"monitor"}]


def test_chain_with_fan_out_has_no_crossings_whatever_the_input_order() -> None:
    shuffled = CHAIN[::-1]
    ids = sorted(_ids(CHAIN), reverse=True)  # an order that crosses if left alone
    assert layout(ids, shuffled).crossings() == 0
    assert layout(_ids(CHAIN), CHAIN).crossings() == 0


def test_long_edges_are_routed_through_the_layers_without_crossings() -> None:
    # a source skipping two layers, and a second chain interleaved in the input order
    edges = [
        ("a1", "b1", ""),
        ("a2", "b2", ""),
        ("b1", "c1", ""),
        ("b2", "c2", ""),
        ("c1", "d1", ""),
        ("c2", "d2", ""),
        ("a1", "d1", "skips"),
        ("x", "d2", "late source"),
    ]
    drawn = layout(["a2", "b1", "c2", "a1", "b2", "c1", "d2", "d1", "x"], edges)
    assert drawn.crossings() == 0
    long_path = next(path for edge, path in drawn.paths if edge[2] == "skips")
    assert len(long_path) == 4 and all(p.startswith(DUMMY) for p in long_path[1:-1])
    # a source used only by the last layer sits next to it, not at the far left
    assert "x" in layers(["x", *_ids(edges)], edges)[2]


def test_a_known_crossing_free_bipartite_graph_is_untangled() -> None:
    # K(2,2)-free ladder given in the worst order: 3 crossings if drawn as given
    edges = [("l1", "r3", ""), ("l2", "r2", ""), ("l3", "r1", ""), ("l3", "r2", "")]
    assert layout(["l1", "l2", "l3", "r1", "r2", "r3"], edges).crossings() == 0


def test_cycles_do_not_break_the_layout() -> None:
    edges = [("a", "b", ""), ("b", "c", ""), ("c", "a", "back")]
    columns = layers(["a", "b", "c"], edges)
    assert sorted(n for column in columns for n in column) == ["a", "b", "c"]
    assert len(columns) == 3


def test_svg_keeps_every_full_label_and_draws_curves_left_to_right() -> None:
    graph = Graph()
    long_name = "meshops:dataproduct:sales.customer_activity_with_a_very_long_name:2.0.0"
    for node_id in _ids(CHAIN):
        graph.add(Node(node_id, long_name if node_id == "product:orders" else node_id, "kind"))
    graph.edges = list(CHAIN)
    svg = str(graph_svg(graph))
    labels = re.findall(r'data-label="([^"]*)"', svg)
    assert sorted(labels) == sorted(n.label for n in graph.nodes)
    titles = re.findall(r"<title>([^<]*)</title>", svg)
    assert any(t.startswith(long_name) for t in titles)  # the tooltip has the full text
    shown = re.findall(r'<text class="node-label"[^>]*>([^<]*)</text>', svg)
    assert all(len(line) <= 19 for line in shown)
    assert any(line.endswith("…") for line in shown)  # too long for two lines
    paths = re.findall(r'<path class="edge"[^>]* d="M([\d.]+),[\d.]+ C([^"]+)"', svg)
    assert len(paths) == len(CHAIN)
    for start, rest in paths:
        end_x = float(rest.split()[-1].split(",")[0])
        assert end_x > float(start)  # every edge goes left to right


def test_wrap_breaks_after_separators_and_ellipsises() -> None:
    assert wrap("sales.customer_activity", 25, 2) == ["sales.customer_activity"]
    assert wrap("sales.customer_activity", 19, 2) == ["sales.", "customer_activity"]
    assert wrap("customers.churn_labels_of_the_latest_period", 25, 2) == [
        "customers.churn_labels_",
        "of_the_latest_period",
    ]
    lines = wrap("a" * 80, 25, 2)
    assert len(lines) == 2 and lines[1].endswith("…") and all(len(x) <= 25 for x in lines)


def test_empty_graph_says_so() -> None:
    assert "No lineage recorded" in str(graph_svg(Graph()))


def test_parallel_edges_are_one_curve_naming_every_relation() -> None:
    graph = Graph([Node("a", "a"), Node("b", "b")], [("a", "b", "x"), ("a", "b", "y")])
    svg = str(graph_svg(graph))
    assert svg.count('<path class="edge"') == 1 and "<title>x, y</title>" in svg


def test_an_edge_closing_a_cycle_still_points_at_its_target() -> None:
    # model -> endpoint -> monitor -> retraining run -> model: one edge is drawn backwards
    edges = [
        ("model", "endpoint", ""),
        ("endpoint", "monitor", ""),
        ("monitor", "retrain", "triggered"),
        ("retrain", "model", "produced"),
    ]
    graph = Graph([Node(n, n) for n in _ids(edges)], edges)
    drawn = layout(_ids(edges), edges)
    assert drawn.crossings() == 0 and len(drawn.turned) == 1
    svg = str(graph_svg(graph))
    turned = re.findall(
        r'<path class="edge" data-from="(\w+)" data-to="(\w+)"[^>]*marker-start', svg
    )
    assert len(turned) == 1 and turned[0] in [(a, b) for a, b, _ in edges]


def test_a_feedback_relation_is_the_edge_turned_round() -> None:
    # the retraining loop: the alert's `triggered` edge is the one drawn backwards
    edges = [
        ("run", "step-1", "contains"),
        ("step-1", "step-2", "input_to"),
        ("step-2", "step-3", "input_to"),
        ("step-3", "model", "produced"),
        ("model", "endpoint", "deployed_to"),
        ("endpoint", "monitor", "monitored_by"),
        ("monitor", "run", "triggered"),
    ]
    drawn = layout(_ids(edges), edges, feedback={"triggered"})
    assert {label for _, _, label in drawn.turned} == {"triggered"}
    assert drawn.layers[0] == ["run"] and drawn.crossings() == 0
