"""The status page's plot (pure): val_bpb over each participant's runs as one inline SVG string, no script, nothing
fetched. One series per participant (its own colour, a line through its scored runs in run order, a dot per run
with a tooltip); a run without a score (failed, timed out) is a small cross on the x axis in its colour. Every name
is escaped; 0 points, 1 point and all-equal values give a readable plot.

    series_svg({"alice": [(0, 1.91), (1, None), (2, 1.85)], "bob": [(0, 2.02)]})

x is the run number (`run-N`, numbered per participant), y the service's val_bpb (lower is better).
"""

from __future__ import annotations

import html
import math
import re
from collections.abc import Mapping, Sequence

Point = tuple[int, float | None]  # (run number, val_bpb); None: the run finished without a score

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22",
           "#17becf")
WIDTH, PLOT_H = 1000, 340
LEFT, TOP, BOTTOM, GAP, LEGEND_W = 76, 20, 58, 24, 280
PLOT_W = WIDTH - LEFT - GAP - LEGEND_W
LEGEND_ROW = 22
MAX_LEGEND_CHARS = 20
FONT = "font-family='system-ui,sans-serif' font-size='12' fill='#333'"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def colour(index: int) -> str:
    """The series colour: ten distinct ones, then hues spaced by the golden angle."""
    if index < len(PALETTE):
        return PALETTE[index]
    return f"hsl({(index * 137.508) % 360:.0f},65%,38%)"


def escape(text: str) -> str:
    """Safe as SVG/HTML text and attribute value (control characters, invalid in XML, become U+FFFD)."""
    return html.escape(_CONTROL.sub("\ufffd", str(text)), quote=True)


def short(name: str, limit: int = MAX_LEGEND_CHARS) -> str:
    return name if len(name) <= limit else name[: limit - 1] + "\u2026"


def nice_step(span: float, target: int) -> float:
    """A 1, 2 or 5 times a power of ten step giving about `target` intervals over `span` (> 0)."""
    raw = span / target
    magnitude = 10 ** math.floor(math.log10(raw))
    return next(m * magnitude for m in (1, 2, 5, 10) if m * magnitude >= raw * (1 - 1e-9))


def y_axis(values: Sequence[float]) -> tuple[float, float, list[float], int]:
    """(low, high, ticks, decimals) covering the values; equal values get a small band around them."""
    low, high = min(values), max(values)
    if high - low < 1e-9:
        pad = max(abs(low) * 0.02, 0.01)
        low, high = low - pad, high + pad
    step = nice_step(high - low, 5)
    first, last = math.floor(low / step + 1e-9), math.ceil(high / step - 1e-9)
    ticks = [k * step for k in range(first, last + 1)]
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return ticks[0], ticks[-1], ticks, decimals


def x_axis(numbers: Sequence[int]) -> tuple[float, float, list[int]]:
    """(low, high, integer ticks): the run numbers with half a run of room either side."""
    low, high = min(numbers), max(numbers)
    step = max(1, round(nice_step(max(high - low, 1), 8)))
    pad = max(0.5, (high - low) * 0.03)
    ticks = list(range(math.ceil(low / step) * step, high + 1, step))
    return low - pad, high + pad, ticks


def _clean(points: Sequence[Point]) -> list[Point]:
    kept = []
    for number, value in points:
        finite = value is not None and not isinstance(value, bool) and math.isfinite(float(value))
        kept.append((int(number), float(value) if finite else None))
    return sorted(kept, key=lambda p: p[0])


def series_svg(series: Mapping[str, Sequence[Point]], *, title: str = "val_bpb over each participant's runs") -> str:
    """The plot as one <svg> element; participants keep the mapping's order (and so their colours)."""
    data = {str(name): _clean(points) for name, points in series.items()}
    scored = [value for points in data.values() for _, value in points if value is not None]
    numbers = [number for points in data.values() for number, _ in points]
    legend_rows = len(data) + 2
    height = max(TOP + PLOT_H + BOTTOM, TOP + legend_rows * LEGEND_ROW + 8)
    parts = [f"<svg xmlns='http://www.w3.org/2000/svg' class='plot' role='img' viewBox='0 0 {WIDTH} {height}' "
             f"width='{WIDTH}' height='{height}' style='max-width:100%;height:auto' aria-label='{escape(title)}'>",
             f"<title>{escape(title)}</title>",
             f"<rect x='0' y='0' width='{WIDTH}' height='{height}' fill='#fff'/>"]
    bottom, right = TOP + PLOT_H, LEFT + PLOT_W
    parts.append(f"<rect x='{LEFT}' y='{TOP}' width='{PLOT_W}' height='{PLOT_H}' fill='#fafafa' stroke='#999'/>")
    if not numbers:
        parts.append(f"<text x='{LEFT + PLOT_W / 2:.1f}' y='{TOP + PLOT_H / 2:.1f}' text-anchor='middle' {FONT}>"
                     "No finished runs yet.</text></svg>")
        return "".join(parts)

    x_low, x_high, x_ticks = x_axis(numbers)
    y_low, y_high, y_ticks, decimals = y_axis(scored) if scored else (0.0, 1.0, [], 0)
    room = (y_high - y_low) * 0.05  # points never sit on the frame; the crosses get the band at the bottom
    y_low, y_high = y_low - room, y_high + room

    def x_of(number: float) -> float:
        return LEFT + (number - x_low) / (x_high - x_low) * PLOT_W

    def y_of(value: float) -> float:
        return bottom - (value - y_low) / (y_high - y_low) * PLOT_H

    for tick in y_ticks:
        y = y_of(tick)
        parts.append(f"<line x1='{LEFT}' x2='{right}' y1='{y:.1f}' y2='{y:.1f}' stroke='#e4e4e4'/>"
                     f"<line x1='{LEFT - 5}' x2='{LEFT}' y1='{y:.1f}' y2='{y:.1f}' stroke='#666'/>"
                     f"<text x='{LEFT - 8}' y='{y + 4:.1f}' text-anchor='end' {FONT}>{tick:.{decimals}f}</text>")
    for tick in x_ticks:
        x = x_of(tick)
        parts.append(f"<line x1='{x:.1f}' x2='{x:.1f}' y1='{bottom}' y2='{bottom + 5}' stroke='#666'/>"
                     f"<text x='{x:.1f}' y='{bottom + 19}' text-anchor='middle' {FONT}>{tick}</text>")
    parts.append(f"<text x='{LEFT + PLOT_W / 2:.1f}' y='{bottom + 44}' text-anchor='middle' {FONT} "
                 "font-weight='bold'>run number (run-N, per participant)</text>"
                 f"<text transform='translate(18 {TOP + PLOT_H / 2:.1f}) rotate(-90)' text-anchor='middle' {FONT} "
                 "font-weight='bold'>val_bpb (service's score; lower is better)</text>")
    if not scored:
        parts.append(f"<text x='{LEFT + PLOT_W / 2:.1f}' y='{TOP + PLOT_H / 2:.1f}' text-anchor='middle' {FONT}>"
                     "No scored runs yet.</text>")

    legend_x = right + GAP
    any_failed = False
    crosses: dict[int, int] = {}  # run number -> crosses drawn there (stacked upwards, none hidden)
    for index, (name, points) in enumerate(data.items()):
        hue, label = colour(index), escape(name)
        good = [(number, value) for number, value in points if value is not None]
        parts.append(f"<g class='series' data-participant='{label}'>")
        if good:
            coords = " ".join(f"{x_of(n):.1f},{y_of(v):.1f}" for n, v in good)
            parts.append(f"<polyline class='series-line' data-participant='{label}' points='{coords}' fill='none' "
                         f"stroke='{hue}' stroke-width='2' stroke-linejoin='round'/>")
        for number, value in points:
            x = x_of(number)
            if value is None:
                any_failed = True
                y = bottom - 9 * crosses.get(number, 0)
                crosses[number] = crosses.get(number, 0) + 1
                parts.append(f"<path class='no-score' d='M{x - 4:.1f},{y - 4} l8,8 m0,-8 l-8,8' stroke='{hue}' "
                             f"stroke-width='2'><title>{label} run-{number}: no score</title></path>")
            else:
                parts.append(f"<circle cx='{x:.1f}' cy='{y_of(value):.1f}' r='3.5' fill='{hue}' stroke='#fff'>"
                             f"<title>{label} run-{number}: {value:.4f}</title></circle>")
        parts.append("</g>")
        y = TOP + 14 + index * LEGEND_ROW
        best = f"best {min(v for _, v in good):.4f}" if good else "no score yet"
        parts.append(f"<g class='legend-item'><line x1='{legend_x}' x2='{legend_x + 22}' y1='{y - 4}' y2='{y - 4}' "
                     f"stroke='{hue}' stroke-width='3'/><circle cx='{legend_x + 11}' cy='{y - 4}' r='3.5' "
                     f"fill='{hue}'/><text x='{legend_x + 30}' y='{y}' {FONT}>{escape(short(name))} "
                     f"<tspan fill='#777'>{best}</tspan><title>{label}</title></text></g>")
    if any_failed:
        y = TOP + 14 + len(data) * LEGEND_ROW + 6
        parts.append(f"<path d='M{legend_x + 7},{y - 8} l8,8 m0,-8 l-8,8' stroke='#555' stroke-width='2'/>"
                     f"<text x='{legend_x + 30}' y='{y}' {FONT}>on the x axis: failed, no score</text>")
    parts.append("</svg>")
    return "".join(parts)
