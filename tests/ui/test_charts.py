"""The SVG chart module: scales, escaping, thinning and the layered graph layout."""

from __future__ import annotations

import math
import re
import xml.etree.ElementTree as ET

from hypothesis import given, settings
from hypothesis import strategies as st

from meshops.ui import charts


def _parse(svg: str) -> ET.Element:
    return ET.fromstring(svg)  # well-formed XML or this raises


SVG = "{http://www.w3.org/2000/svg}"


def _plot_area(root: ET.Element) -> tuple[float, float, float, float]:
    [area] = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "plot-area"]
    x, y = float(area.get("x") or 0), float(area.get("y") or 0)
    return x, y, x + float(area.get("width") or 0), y + float(area.get("height") or 0)


def _drawn_points(root: ET.Element) -> list[tuple[float, float]]:
    points = [(float(c.get("cx") or 0), float(c.get("cy") or 0)) for c in root.iter(f"{SVG}circle")]
    for line in root.iter(f"{SVG}polyline"):
        for pair in (line.get("points") or "").split():
            x, y = pair.split(",")
            points.append((float(x), float(y)))
    return points


def _assert_inside(svg: str) -> None:
    root = _parse(svg)
    left, top, right, bottom = _plot_area(root)
    for x, y in _drawn_points(root):
        assert left - 0.06 <= x <= right + 0.06 and top - 0.06 <= y <= bottom + 0.06, (x, y)


def _ticks(svg: str, axis: str) -> list[str]:
    return re.findall(rf'class="tick {axis}"[^>]*>([^<]+)<', svg)


def test_line_chart_draws_one_polyline_per_series_inside_the_plot() -> None:
    svg = charts.line_chart(
        {"loss": [(0, 1.0), (1, 0.5), (2, 0.25)], "acc": [(0, 0.1), (2, 0.9)]}, title="t"
    )
    root = _parse(svg)
    lines = root.findall(f"{SVG}polyline")
    assert [p.get("data-series") for p in lines] == ["loss", "acc"]
    _assert_inside(svg)
    # the y axis starts at or below the minimum and ends at or above the maximum
    ticks = [float(t) for t in _ticks(svg, "y")]
    assert min(ticks) <= 0.1 and max(ticks) >= 1.0


def test_the_top_tick_is_at_or_above_the_largest_value() -> None:
    # issue 19: f1 0.8143 was drawn above a 0.81 top
    svg = charts.line_chart({"f1": [(0, 0.79), (1, 0.805), (2, 0.8143)]}, title="f1")
    assert float(_ticks(svg, "y")[-1]) >= 0.8143
    _assert_inside(svg)


def test_a_single_point_per_series_is_a_number_not_a_chart() -> None:
    html = charts.line_chart({"run a": [(0, 0.8143)], "run b": [(0, 0.79)]}, title="f1")
    assert "<svg" not in html and "polyline" not in html
    assert 'data-value="0.8143"' in html and "0.8143" in html and "run b" in html
    # one series with a history, one with a single value: a chart with a visible point
    mixed = charts.line_chart({"a": [(0, 1.0), (1, 2.0)], "b": [(3, 1.5)]})
    assert "<svg" in mixed and mixed.count("<circle") == 3
    _assert_inside(mixed)


def test_whole_number_data_get_whole_number_ticks() -> None:
    svg = charts.line_chart({"drift": [(1, 0.1), (2, 0.3), (3, 0.2)]}, x_label="monitor run")
    assert _ticks(svg, "x") == ["1", "2", "3"]
    counts = charts.bar_chart(["a", "b"], [1.0, 3.0])
    assert all(float(t).is_integer() for t in _ticks(counts, "y"))


def test_the_legend_is_below_the_plot_and_the_threshold_inside_it() -> None:
    svg = charts.line_chart(
        {"age (psi)": [(1, 0.02), (2, 0.4)], "tenure (psi)": [(1, 0.05), (2, 0.08)]},
        threshold=0.5,
        threshold_label="drift threshold",
        y_label="PSI",
    )
    root = _parse(svg)
    _, top, _, bottom = _plot_area(root)
    legend = [t for t in root.iter(f"{SVG}text") if t.get("class") == "legend"]
    assert [t.text for t in legend] == ["age (psi)", "tenure (psi)", "drift threshold"]
    assert all(float(t.get("y") or 0) > bottom + 20 for t in legend)  # under the x label
    [line] = [x for x in root.iter(f"{SVG}line") if x.get("class") == "threshold"]
    assert top <= float(line.get("y1") or 0) <= bottom and line.get("data-threshold") == "0.5"
    assert float(_ticks(svg, "y")[-1]) >= 0.5
    per_series = charts.line_chart(
        {"a": [(1, 0.1), (2, 0.2)], "b": [(1, 3.0), (2, 4.0)]}, thresholds={"a": 0.3, "b": 5}
    )
    assert per_series.count('class="threshold"') == 2
    assert float(_ticks(per_series, "y")[-1]) >= 5


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
    bars = [r for r in root.iter(f"{SVG}rect") if r.get("class") == "bar"]
    heights = [float(b.get("height") or 0) for b in bars]
    assert heights[1] > heights[2] > heights[0] > 0
    _, top, _, bottom = _plot_area(root)
    assert all(top <= float(b.get("y") or 0) <= bottom for b in bars)


def test_nice_ticks_are_round_and_cover_the_range() -> None:
    assert charts.nice_ticks(0, 1) == [0, 0.25, 0.5, 0.75, 1.0]
    ticks = charts.nice_ticks(3.2, 97.5)
    assert ticks[0] <= 3.2 and ticks[-1] >= 97.5 and ticks[1] - ticks[0] in (20, 25)
    assert charts.nice_ticks(5, 5)[0] < 5 < charts.nice_ticks(5, 5)[-1]
    assert charts.nice_ticks(1, 3, integer=True) == [1, 2, 3]
    assert charts.tick_labels([0.0, 0.25, 0.5]) == ["0", "0.25", "0.5"]
    assert charts.tick_labels([0.0, 5000.0, 10000.0]) == ["0", "5000", "10000"]


FINITE = st.floats(allow_nan=False, allow_infinity=False)


@settings(max_examples=300, deadline=None)
@given(st.lists(FINITE, min_size=1, max_size=30))
def test_ticks_cover_any_finite_data(values: list[float]) -> None:
    ticks = charts.nice_ticks(min(values), max(values))
    assert ticks[0] <= min(values) and ticks[-1] >= max(values)
    assert ticks == sorted(ticks) and len(ticks) >= 2 and all(map(math.isfinite, ticks))
    labels = charts.tick_labels(ticks)
    assert len(set(labels)) == len(labels)  # every tick readable as itself


@settings(max_examples=300, deadline=None)
@given(st.lists(st.integers(-(10**12), 10**12), min_size=1, max_size=30))
def test_whole_number_data_give_whole_number_ticks(values: list[int]) -> None:
    ticks = charts.nice_ticks(min(values), max(values), integer=True)
    assert ticks[0] <= min(values) and ticks[-1] >= max(values)
    assert all(float(t).is_integer() for t in ticks)
    assert all("." not in label and "e" not in label for label in charts.tick_labels(ticks))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 10_000), st.floats(-1e9, 1e9, allow_nan=False)),
        min_size=2,
        max_size=60,
    )
)
def test_every_drawn_point_is_inside_the_plot(points: list[tuple[int, float]]) -> None:
    svg = charts.line_chart({"m": [(float(x), y) for x, y in points]}, threshold=0.5)
    if "<svg" in svg:  # a single distinct point is shown as a number
        _assert_inside(svg)


def test_x_values_are_written_by_the_caller_in_ticks_tooltips_and_single_values() -> None:
    svg = charts.line_chart(
        {"f1": [(1, 0.7), (2, 0.8)]}, x_label="run", x_names={1.0: "rf · 5391af14"}
    )
    assert "f1: 0.7 @ rf · 5391af14" in svg and "f1: 0.8 @ 2" in svg
    clock = charts.line_chart({"p50": [(7200, 12.0)]}, x_tick_format=lambda t: f"{t / 3600:.0f}h")
    assert "at step 2h" in clock and "7.2e+03" not in clock


def test_the_last_x_tick_label_fits_inside_the_chart() -> None:
    # A clock label centred on the plot's right edge used to be cut ("23:59:5").
    svg = charts.line_chart(
        {"p99": [(0.0, 1.0), (86_399.0, 2.0)]},
        width=400,
        x_tick_format=lambda x: f"{int(x) // 3600:02d}:{int(x) % 3600 // 60:02d}:{int(x) % 60:02d}",
    )
    root = ET.fromstring(str(svg))
    ticks = [t for t in root.iter("{http://www.w3.org/2000/svg}text") if "x" in t.get("class", "")]
    ticks = [t for t in ticks if t.get("class") == "tick x"] or ticks
    last = ticks[-1]
    half_width = len(last.text or "") * 3.4  # ~6.8 px per character at the tick font size
    assert float(last.get("x", "0")) + half_width <= 400
