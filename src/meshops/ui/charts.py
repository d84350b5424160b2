"""Small server-side SVG charts for the pages: lines and bars (graphs are in ui/graphs.py).

Pure functions from numbers to markup; every label is escaped. No JavaScript and no CDN:
the SVG is inlined in the page, so charts render offline and in screenshots.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

PALETTE = ("#2563eb", "#ea580c", "#16a34a", "#9333ea", "#dc2626", "#0891b2", "#ca8a04", "#db2777")


def _fmt(value: float) -> str:
    """A value for people (tooltips, single values): 3 significant digits, no `1.2e+04`
    below a million."""
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    magnitude = abs(value)
    if magnitude >= 1_000_000 or magnitude < 0.001:
        return f"{value:.3g}"
    if magnitude >= 100:
        return f"{value:,.0f}" if float(value).is_integer() or magnitude >= 1000 else f"{value:.4g}"
    return f"{value:.4g}"


def is_integral(values: Sequence[float]) -> bool:
    """True when every value is a whole number (steps, run numbers, counts)."""
    return bool(values) and all(math.isfinite(v) and float(v).is_integer() for v in values)


def nice_ticks(low: float, high: float, count: int = 5, *, integer: bool = False) -> list[float]:
    """Round tick values (1-2-2.5-5 steps) whose first is <= low and last >= high, so an axis
    drawn from the first to the last tick contains every value; whole numbers only when
    `integer`. A single value gets an axis around it."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return [0.0]
    low, high = min(low, high), max(low, high)
    if integer:
        low, high = float(math.floor(low)), float(math.ceil(high))
    if high == low:
        pad = max(math.ceil(abs(low) * 0.1), 1) if integer else (abs(low) * 0.1 or 1.0)
        lower, upper = low - pad, high + pad  # near the float limit one side overflows
        low, high = (
            (lower if math.isfinite(lower) else low),
            (upper if math.isfinite(upper) else high),
        )
    try:
        ticks = _round_ticks(low, high, max(count, 2), integer)
    except (ArithmeticError, ValueError):
        ticks = []
    if len(ticks) < 2 or not all(math.isfinite(t) for t in ticks):
        ticks = _plain_ticks(low, high, max(count, 2), integer)
    return ticks


def _round_ticks(low: float, high: float, count: int, integer: bool) -> list[float]:
    raw = (high - low) / (count - 1)
    if integer:
        raw = max(raw, 1.0)
    power = 10.0 ** math.floor(math.log10(raw))
    if power == 0 or not math.isfinite(power) or not math.isfinite(raw):
        return []
    multiples = (1, 2, 5, 10) if integer else (1, 2, 2.5, 5, 10)
    step = next(m * power for m in multiples if m * power >= raw * (1 - 1e-12))
    decimals = max(0, 2 - math.floor(math.log10(step))) if step < 1 else 0
    # A hair of slack against float noise (0.6 / 0.1 = 5.999...); the loops below make
    # sure the extremes are still covered.
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    if last - first > count * 4:
        return []
    ticks = [round(k * step, decimals) if decimals else k * step for k in range(first, last + 1)]
    # Float rounding may leave an extreme a hair outside: one more step covers it.
    while ticks[0] > low:
        ticks.insert(0, ticks[0] - step)
    while ticks[-1] < high:
        ticks.append(ticks[-1] + step)
    return sorted(set(ticks))


def _plain_ticks(low: float, high: float, count: int, integer: bool) -> list[float]:
    """Evenly spaced ticks from exactly low to exactly high (ranges too wide or too narrow
    for round steps); computed without `high - low`, which may overflow."""
    ticks = [low * (1 - i / (count - 1)) + high * (i / (count - 1)) for i in range(count)]
    ticks[0], ticks[-1] = low, high
    if integer:
        ticks = [float(round(t)) for t in ticks]
    return sorted(set(ticks))


def tick_labels(ticks: Sequence[float]) -> list[str]:
    """Labels with just enough digits to tell the ticks apart and read them exactly."""
    if not ticks:
        return []
    biggest = max(abs(t) for t in ticks)
    step = min((b - a for a, b in itertools.pairwise(ticks)), default=biggest) or 1.0
    whole = biggest < 1e15 and all(float(t).is_integer() for t in ticks)
    scientific = not whole and (biggest >= 1_000_000 or 0 < biggest < 0.001)
    for digits in range(16):
        labels = [f"{t:.{digits}e}" if scientific else f"{t:.{digits}f}" for t in ticks]
        if all(
            abs(float(lab) - t) <= abs(step) * 1e-6 for lab, t in zip(labels, ticks, strict=True)
        ):
            return [_trim(lab) for lab in labels]
    return [repr(t) for t in ticks]


def _trim(label: str) -> str:
    """`0.50` -> `0.5`, `2.50e+07` -> `2.5e+07`, `-0.0` -> `0`."""
    mantissa, _, exponent = label.partition("e")
    if "." in mantissa:
        mantissa = mantissa.rstrip("0").rstrip(".")
    if float(mantissa) == 0:
        return "0"
    return f"{mantissa}e{exponent}" if exponent else mantissa


@dataclass(frozen=True)
class _Plot:
    """The plot rectangle and the two axes' ranges: data -> pixel coordinates."""

    left: float
    top: float
    width: float
    height: float
    x0: float
    x1: float
    y0: float
    y1: float

    def sx(self, x: float) -> float:
        return self.left + _fraction(x, self.x0, self.x1) * self.width

    def sy(self, y: float) -> float:
        return self.top + self.height - _fraction(y, self.y0, self.y1) * self.height


def _fraction(value: float, low: float, high: float) -> float:
    span = high / 2 - low / 2  # halves: no overflow for values near the float limit
    return (value / 2 - low / 2) / span if span else 0.5


def line_chart(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str = "",
    x_label: str = "step",
    y_label: str = "",
    width: int = 560,
    height: int = 240,
    max_points: int = 500,
    threshold: float | None = None,
    thresholds: Mapping[str, float] | None = None,
    threshold_label: str = "threshold",
    x_integer: bool | None = None,
    y_integer: bool | None = None,
    x_tick_format: Callable[[float], str] | None = None,
    x_names: Mapping[float, str] | None = None,
) -> Markup:
    """One polyline per series over a shared x axis; long series are thinned evenly.

    The axes run from a round tick at or below the smallest value to one at or above the
    largest, so every point is inside the plot. An axis has whole-number ticks when its
    data are whole numbers (steps, run numbers; `x_integer`/`y_integer` override). When
    every series has a single point there is nothing to draw a line through: the values
    are shown as numbers. `threshold` draws one dashed horizontal line (e.g. a drift
    statistic's limit), `thresholds` one per series in the series' colour; both are inside
    the y range. The legend is below the plot, never over the lines. `x_tick_format`
    writes an x value (ticks, tooltips); `x_names` names points' x in tooltips (e.g. the
    run at run number 3)."""
    cleaned = _clean_series(series, max_points)
    points = [p for pts in cleaned.values() for p in pts]
    limits = _threshold_values(threshold, thresholds, cleaned)
    x_format = x_tick_format or _fmt
    if points and all(len(pts) <= 1 for pts in cleaned.values()):
        return single_values(
            cleaned,
            title=title,
            x_label=x_label,
            y_label=y_label,
            threshold=threshold,
            thresholds=thresholds,
            x_format=x_format,
        )
    if not points:
        return _empty(width, height, title)
    xs, ys = [p[0] for p in points], [p[1] for p in points + [(0.0, v) for v in limits]]
    x_ints = is_integral(xs) if x_integer is None else x_integer
    y_ints = is_integral(ys) if y_integer is None else y_integer
    x_ticks = nice_ticks(min(xs), max(xs), count=6, integer=x_ints)
    y_ticks = nice_ticks(min(ys), max(ys), integer=y_ints)
    y_texts = tick_labels(y_ticks)
    x_texts = [x_format(t) for t in x_ticks] if x_tick_format else tick_labels(x_ticks)
    pad_l = 14 + (16 if y_label else 0) + max(len(t) for t in y_texts) * 6.2
    # The last x tick label is centred on the plot's right edge: room for its half.
    pad_r = max(16.0, len(x_texts[-1]) * 3.4 + 6)
    pad_t = 28.0 if title else 12.0
    plot = _Plot(
        pad_l,
        pad_t,
        width - pad_l - pad_r,
        height - pad_t - 40,
        x_ticks[0],
        x_ticks[-1],
        y_ticks[0],
        y_ticks[-1],
    )
    names = list(cleaned)
    entries = [*(names if len(names) > 1 else []), *([threshold_label] if limits else [])]
    legend_rows = _legend_rows(entries, plot.width)
    total_h = height + len(legend_rows) * 16 + (6 if legend_rows else 0)
    names_of = x_names or {}

    def point_x(x: float) -> str:
        return names_of.get(x) or x_format(x)

    parts = [
        _svg_open(width, total_h, title or "line chart"),
        _title(title, pad_l),
        _axes(plot, x_ticks, x_texts, y_ticks, y_texts),
        _axis_labels(plot, x_label, y_label, height),
        *_threshold_lines(plot, threshold, thresholds, names),
        *(
            _series(plot, name, pts, PALETTE[i % len(PALETTE)], point_x)
            for i, (name, pts) in enumerate(cleaned.items())
        ),
        _legend(legend_rows, plot, height, names, threshold_label),
        "</svg>",
    ]
    return Markup("".join(parts))


def _clean_series(
    series: Mapping[str, Sequence[tuple[float, float]]], max_points: int
) -> dict[str, list[tuple[float, float]]]:
    """Finite points only, sorted by x, long series thinned evenly."""
    return {
        name: _thin(
            [(float(x), float(y)) for x, y in pts if math.isfinite(x) and math.isfinite(y)],
            max_points,
        )
        for name, pts in series.items()
    }


def _title(title: str, left: float) -> str:
    if not title:
        return ""
    return f'<text class="chart-title" x="{left:.0f}" y="18">{escape(title)}</text>'


def _empty(width: int, height: int, title: str) -> Markup:
    return Markup(
        _svg_open(width, height, title or "chart")
        + _title(title, 56)
        + f'<text class="chart-empty" x="{width / 2}" y="{height / 2}">no data</text></svg>'
    )


def single_values(
    series: Mapping[str, Sequence[tuple[float, float]]],
    *,
    title: str = "",
    x_label: str = "step",
    y_label: str = "",
    threshold: float | None = None,
    thresholds: Mapping[str, float] | None = None,
    x_format: Callable[[float], str] = _fmt,
) -> Markup:
    """One number per series (a chart of a single point says nothing a number does not)."""
    rows = []
    for name, pts in series.items():
        if not pts:
            continue
        x, y = pts[-1]
        limit = (thresholds or {}).get(name, threshold)
        extra = f" ({threshold_text(limit)})" if limit is not None else ""
        where = " ".join(filter(None, [y_label, "at", x_label]))
        rows.append(
            f'<dt>{escape(name)}</dt><dd><span class="value" data-value="{y!r}">{_fmt(y)}</span>'
            f'<span class="muted small"> {escape(where)} {escape(x_format(x))}'
            f"{escape(extra)}</span></dd>"
        )
    heading = f'<div class="chart-title"><b>{escape(title)}</b></div>' if title else ""
    label = escape(title or "values")
    return Markup(
        f'<div class="chart-values" role="group" aria-label="{label}">{heading}'
        f'<dl class="facts">{"".join(rows)}</dl></div>'
    )


def threshold_text(limit: float) -> str:
    return f"threshold {_fmt(limit)}"


def bar_chart(
    labels: Sequence[str],
    values: Sequence[float],
    *,
    title: str = "",
    y_label: str = "",
    width: int = 560,
    height: int = 220,
    color: str = PALETTE[0],
) -> Markup:
    """Vertical bars, one per label (labels are thinned on the axis when crowded); the y
    axis starts at 0 (or below the smallest negative value) and has whole-number ticks for
    counts."""
    clean = [float(v) if math.isfinite(v) else 0.0 for v in values]
    y_ticks = (
        nice_ticks(min(0.0, *clean), max(0.0, *clean), integer=is_integral(clean)) if clean else []
    )
    y_texts = tick_labels(y_ticks)
    pad_l = 14 + (16 if y_label else 0) + max((len(t) for t in y_texts), default=1) * 6.2
    pad_r, pad_t, pad_b = 12.0, 28.0 if title else 12.0, 44.0
    plot_w, plot_h = width - pad_l - pad_r, height - pad_t - pad_b
    parts = [_svg_open(width, height, title or "bar chart")]
    if title:
        parts.append(f'<text class="chart-title" x="{pad_l:.0f}" y="18">{escape(title)}</text>')
    if not clean:
        parts.append(f'<text class="chart-empty" x="{width / 2}" y="{height / 2}">no data</text>')
        return Markup("".join(parts) + "</svg>")
    plot = _Plot(pad_l, pad_t, plot_w, plot_h, 0.0, 1.0, y_ticks[0], y_ticks[-1])
    parts.append(_axes(plot, [], [], y_ticks, y_texts))
    if y_label:
        parts.append(_axis_labels(plot, "", y_label, height))
    slot = plot_w / len(clean)
    every = max(1, math.ceil(len(labels) / 10))
    for i, (label, value) in enumerate(zip(labels, clean, strict=True)):
        x = pad_l + i * slot + slot * 0.15
        top, base = plot.sy(max(value, 0.0)), plot.sy(min(value, 0.0))
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


def _svg_open(width: int, height: int, label: str, cls: str = "chart") -> str:
    return (
        f'<svg class="{cls}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="{escape(label)}">'
    )


def _axes(
    plot: _Plot,
    x_ticks: Sequence[float],
    x_texts: Sequence[str],
    y_ticks: Sequence[float],
    y_texts: Sequence[str],
) -> str:
    """The plot rectangle (`rect.plot-area`: what every point lies inside), axes, grid
    lines and tick labels."""
    left, top, w, h = plot.left, plot.top, plot.width, plot.height
    out = [
        f'<rect class="plot-area" x="{left:.1f}" y="{top:.1f}" width="{w:.1f}" '
        f'height="{h:.1f}" fill="none"/>',
        f'<line class="axis" x1="{left:.1f}" y1="{top + h:.1f}" x2="{left + w:.1f}" '
        f'y2="{top + h:.1f}"/>',
        f'<line class="axis" x1="{left:.1f}" y1="{top:.1f}" x2="{left:.1f}" y2="{top + h:.1f}"/>',
    ]
    for t, text in zip(y_ticks, y_texts, strict=True):
        y = plot.sy(t)
        out.append(
            f'<line class="grid" x1="{left:.1f}" y1="{y:.1f}" x2="{left + w:.1f}" y2="{y:.1f}"/>'
        )
        out.append(f'<text class="tick y" x="{left - 6:.1f}" y="{y + 4:.1f}">{escape(text)}</text>')
    for t, text in zip(x_ticks, x_texts, strict=True):
        out.append(
            f'<text class="tick x" x="{plot.sx(t):.1f}" y="{top + h + 16:.1f}">'
            f"{escape(text)}</text>"
        )
    return "".join(out)


def _axis_labels(plot: _Plot, x_label: str, y_label: str, height: float) -> str:
    out = []
    if x_label:
        out.append(
            f'<text class="axis-label" x="{plot.left + plot.width / 2:.1f}" y="{height - 6}">'
            f"{escape(x_label)}</text>"
        )
    if y_label:
        out.append(
            f'<text class="axis-label" transform="translate(12 {plot.top + plot.height / 2:.1f})'
            f' rotate(-90)">{escape(y_label)}</text>'
        )
    return "".join(out)


def _series(
    plot: _Plot,
    name: str,
    pts: Sequence[tuple[float, float]],
    color: str,
    x_text: Callable[[float], str],
) -> str:
    coords = " ".join(f"{plot.sx(x):.1f},{plot.sy(y):.1f}" for x, y in pts)
    out = [
        f'<polyline class="series" data-series="{escape(name)}" fill="none" '
        f'stroke="{color}" stroke-width="2" points="{coords}"><title>{escape(name)}</title>'
        "</polyline>"
    ]
    if len(pts) <= 40:  # few points: each is visible and has its value as a tooltip
        out.extend(
            f'<circle class="point" cx="{plot.sx(x):.1f}" cy="{plot.sy(y):.1f}" r="2.5" '
            f'fill="{color}"><title>{escape(name)}: {_fmt(y)} @ {escape(x_text(x))}</title>'
            "</circle>"
            for x, y in pts
        )
    return "".join(out)


def _threshold_values(
    threshold: float | None,
    thresholds: Mapping[str, float] | None,
    series: Mapping[str, Sequence[tuple[float, float]]],
) -> list[float]:
    values = [] if threshold is None else [float(threshold)]
    values += [float(v) for k, v in (thresholds or {}).items() if series.get(k)]
    return [v for v in values if math.isfinite(v)]


def _threshold_lines(
    plot: _Plot,
    threshold: float | None,
    thresholds: Mapping[str, float] | None,
    names: Sequence[str],
) -> list[str]:
    lines: list[tuple[float, str, str]] = []
    if threshold is not None and math.isfinite(threshold):
        lines.append((float(threshold), "#475569", "all series"))
    for i, name in enumerate(names):
        limit = (thresholds or {}).get(name)
        if limit is not None and math.isfinite(limit):
            lines.append((float(limit), PALETTE[i % len(PALETTE)], name))
    out = []
    for value, color, owner in lines:
        y = plot.sy(value)
        out.append(
            f'<line class="threshold" data-threshold="{value!r}" x1="{plot.left:.1f}" '
            f'y1="{y:.1f}" x2="{plot.left + plot.width:.1f}" y2="{y:.1f}" stroke="{color}" '
            f'stroke-width="1.5" stroke-dasharray="6 4"><title>{escape(owner)}: '
            f"{threshold_text(value)}</title></line>"
        )
    return out


LEGEND_CHARS = 28


def _legend_width(name: str) -> float:
    return len(_short(name, LEGEND_CHARS)) * 6.2 + 30


def _legend_rows(entries: Sequence[str], width: float) -> list[list[str]]:
    """Legend entries flowed into rows no wider than the plot."""
    rows: list[list[str]] = []
    used = width
    for entry in entries:
        if used + _legend_width(entry) > width and (not rows or rows[-1]):
            rows.append([])
            used = 0.0
        rows[-1].append(entry)
        used += _legend_width(entry)
    return rows


def _legend(
    rows: list[list[str]], plot: _Plot, height: float, names: Sequence[str], threshold_label: str
) -> str:
    """Below the x-axis label: a swatch and a name per series (dashed for the threshold)."""
    out = []
    colors = {name: PALETTE[i % len(PALETTE)] for i, name in enumerate(names)}
    for r, row in enumerate(rows):
        x, y = plot.left, height + 4 + r * 16
        for entry in row:
            if entry in colors:
                swatch = (
                    f'<rect x="{x:.1f}" y="{y + 4}" width="12" height="3" fill="{colors[entry]}"/>'
                )
            else:
                swatch = (
                    f'<line x1="{x:.1f}" y1="{y + 5.5}" x2="{x + 12:.1f}" y2="{y + 5.5}" '
                    f'stroke="#475569" stroke-width="1.5" stroke-dasharray="4 3"/>'
                )
            label = entry if entry in colors else threshold_label
            out.append(
                f'<g class="legend-entry">{swatch}<text class="legend" x="{x + 16:.1f}" '
                f'y="{y + 9}">{escape(_short(label, LEGEND_CHARS))}<title>{escape(label)}</title>'
                "</text></g>"
            )
            x += _legend_width(entry)
    return "".join(out)


def _thin(points: list[tuple[float, float]], limit: int) -> list[tuple[float, float]]:
    points.sort()
    if len(points) <= limit:
        return points
    stride = len(points) / limit
    return [points[int(i * stride)] for i in range(limit)] + [points[-1]]


def _short(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"
