"""Self-contained HTML report of a monitor run: SVG plots inlined, no CDN, works offline.

Plots are drawn with matplotlib's Agg/SVG backends through `Figure` objects (no pyplot
global state, so rendering is safe in server threads); text stays text in the SVG.
"""

from __future__ import annotations

import io
import itertools
from collections import defaultdict
from typing import TYPE_CHECKING, Any

import jinja2
from markupsafe import Markup

from meshops.monitoring.models import FeatureResult, Monitor, MonitorResult

if TYPE_CHECKING:
    from matplotlib.figure import Figure

REFERENCE_COLOR = "#4c72b0"
CURRENT_COLOR = "#dd8452"
MAX_HISTORY_LINES = 12
PERFORMANCE_METRICS = ("accuracy", "precision", "recall", "f1", "roc_auc", "rmse", "mae", "r2")


def _figure(width: float, height: float) -> Figure:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=72)


def _svg(figure: Figure) -> Markup:
    import matplotlib

    buffer = io.StringIO()
    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": "meshops"}):
        figure.savefig(buffer, format="svg", bbox_inches="tight")
    text = buffer.getvalue()
    return Markup(text[text.index("<svg") :])  # drop the XML prologue to inline it


def histogram_svg(feature: FeatureResult) -> Markup:
    """Reference vs current distribution of one feature (shares, so sizes compare)."""
    hist = feature.histogram
    figure = _figure(5.2, 2.6)
    axes = figure.add_subplot()
    reference, current = hist.get("reference", []), hist.get("current", [])
    if hist.get("edges"):
        edges = hist["edges"]
        widths = [b - a for a, b in itertools.pairwise(edges)]
        axes.bar(
            edges[:-1],
            reference,
            width=widths,
            align="edge",
            alpha=0.55,
            color=REFERENCE_COLOR,
            label="reference",
        )
        axes.bar(
            edges[:-1],
            current,
            width=widths,
            align="edge",
            alpha=0.55,
            color=CURRENT_COLOR,
            label="current",
        )
    else:
        labels = hist.get("labels", [])
        positions = list(range(len(labels)))
        axes.bar(
            [p - 0.2 for p in positions],
            reference,
            width=0.4,
            color=REFERENCE_COLOR,
            label="reference",
        )
        axes.bar(
            [p + 0.2 for p in positions], current, width=0.4, color=CURRENT_COLOR, label="current"
        )
        axes.set_xticks(positions, labels, rotation=45 if len(labels) > 6 else 0, fontsize=8)
    axes.set_ylabel("share of rows")
    axes.set_title(f"{feature.feature} — {feature.method} {feature.score:.4g}", fontsize=10)
    axes.legend(fontsize=8)
    return _svg(figure)


def lines_svg(
    title: str, series: dict[str, list[tuple[int, float]]], thresholds: dict[str, float]
) -> Markup:
    """Metric values over runs (x = run id), one line per series."""
    figure = _figure(7.5, 3.0)
    axes = figure.add_subplot()
    for name, points in list(series.items())[:MAX_HISTORY_LINES]:
        axes.plot(
            [p[0] for p in points], [p[1] for p in points], marker="o", markersize=3, label=name
        )
    for name, value in thresholds.items():
        axes.axhline(value, linestyle="--", linewidth=1, color="#c44e52", label=name)
    axes.set_xlabel("run")
    axes.set_title(title, fontsize=10)
    axes.legend(fontsize=7, loc="best")
    return _svg(figure)


def drift_history(
    history: list[FeatureResult],
) -> tuple[dict[str, list[tuple[int, float]]], dict[str, float]]:
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    thresholds: dict[str, float] = {}
    for row in history:
        series[f"{row.feature} ({row.method})"].append((row.result_id, row.score))
        thresholds[f"threshold {row.method}"] = row.threshold
    return dict(series), thresholds


def performance_history(results: list[MonitorResult]) -> dict[str, list[tuple[int, float]]]:
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for result in sorted(results, key=lambda r: r.id):
        for name in PERFORMANCE_METRICS:
            if name in result.metrics:
                series[name].append((result.id, result.metrics[name]))
    return dict(series)


_TEMPLATE = jinja2.Environment(autoescape=True).from_string(
    """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>{{ monitor.name }} — run {{ result.id }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #222; }
table { border-collapse: collapse; margin: 1rem 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; font-size: 14px; }
th { background: #f3f3f3; }
.drifted { color: #b00020; font-weight: 600; }
.ok { color: #1b7f3b; }
.grid { display: flex; flex-wrap: wrap; gap: 1rem; }
.grid > div { border: 1px solid #eee; padding: .5rem; }
svg { max-width: 100%; height: auto; }
</style></head>
<body>
<h1>{{ monitor.name }} <small>({{ monitor.kind }})</small></h1>
<p>Run {{ result.id }} · status <b class="{{ 'drifted' if result.status != 'ok' else 'ok' }}">
{{ result.status }}</b> · {{ result.finished_at.strftime('%Y-%m-%d %H:%M:%S UTC') }}
{% if monitor.endpoint %} · endpoint {{ monitor.endpoint }}{% endif %}
{% if monitor.model %} · model {{ monitor.model }}{% endif %}</p>
<p>{{ result.summary }}</p>
<p>Reference rows: {{ result.reference_rows }} · current rows: {{ result.current_rows }}
{% if result.window_start %} · window {{ result.window_start }} –
{{ result.window_end }}{% endif %}</p>
{% if result.features %}
<h2>Features</h2>
<table><tr><th>feature</th><th>type</th><th>test</th><th>score</th><th>threshold</th>
<th>drift</th></tr>
{% for f in result.features %}<tr><td>{{ f.feature }}</td><td>{{ f.kind }}</td>
<td>{{ f.method }}</td><td>{{ '%.5g' % f.score }}</td><td>{{ f.threshold }}</td>
<td class="{{ 'drifted' if f.drifted else 'ok' }}">{{ 'drifted' if f.drifted else 'no' }}</td>
</tr>{% endfor %}</table>
<h2>Reference vs current</h2>
<div class="grid">{% for svg in histograms %}<div>{{ svg }}</div>{% endfor %}</div>
{% endif %}
{% if drift_plot %}<h2>Drift scores over time</h2>{{ drift_plot }}{% endif %}
{% if performance_plot %}<h2>Performance over time</h2>{{ performance_plot }}{% endif %}
<h2>Metrics</h2>
<table><tr><th>metric</th><th>value</th></tr>
{% for name, value in metrics %}<tr><td>{{ name }}</td><td>{{ '%.6g' % value }}</td></tr>
{% endfor %}
</table>
{% if result.details.checks %}<h2>Quality checks</h2>
<table><tr><th>column</th><th>check</th><th>passed</th><th>observed</th><th>expected</th></tr>
{% for c in result.details.checks %}<tr><td>{{ c.column }}</td><td>{{ c.check }}</td>
<td class="{{ 'ok' if c.passed else 'drifted' }}">{{ c.passed }}</td><td>{{ c.observed }}</td>
<td>{{ c.expected }}</td></tr>{% endfor %}</table>{% endif %}
</body></html>
"""
)


def render_report(
    monitor: Monitor,
    result: MonitorResult,
    history: list[MonitorResult],
    feature_history: list[FeatureResult],
) -> str:
    """The HTML of one run, with history plots over the monitor's previous runs."""
    histograms = [histogram_svg(f) for f in result.features if f.histogram]
    series, thresholds = drift_history(feature_history)
    drift_plot = (
        lines_svg("drift score per feature", series, thresholds)
        if series and len({r.result_id for r in feature_history}) > 1
        else None
    )
    perf = performance_history(history)
    performance_plot = lines_svg("performance", perf, {}) if perf else None
    context: dict[str, Any] = {
        "monitor": monitor,
        "result": result,
        "histograms": histograms,
        "drift_plot": drift_plot,
        "performance_plot": performance_plot,
        "metrics": sorted((k, v) for k, v in result.metrics.items() if not k.startswith("drift.")),
    }
    return _TEMPLATE.render(**context)
