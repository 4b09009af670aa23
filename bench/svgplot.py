"""A small SVG line chart written as plain text: panels stacked vertically, each with cumulative counts over time
(step lines) and straight reference lines (a quota: burst + rate x t)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from xml.sax.saxutils import escape

WIDTH, PANEL_HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 70, 200, 34, 44
COLOURS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b")
QUOTA_COLOUR = "#d62728"


@dataclass
class Panel:
    title: str
    x_label: str = "seconds since ansible-playbook started"
    y_label: str = "count"
    series: list[tuple[str, list[tuple[float, float]]]] = field(default_factory=list)
    # (label, x where it starts, y at that x, slope per second, last x)
    lines: list[tuple[str, float, float, float, float]] = field(default_factory=list)
    marks: list[tuple[str, float]] = field(default_factory=list)  # (label, x): vertical dotted lines


def _ticks(top: float, count: int = 5) -> list[float]:
    if top <= 0:
        return [0.0]
    raw = top / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    return [i * step for i in range(int(top / step) + 1)]


def _decimate(points: list[tuple[float, float]], most: int = 400) -> list[tuple[float, float]]:
    if len(points) <= most:
        return points
    stride = len(points) / most
    kept = [points[int(i * stride)] for i in range(most)]
    return [*kept, points[-1]]


def _fmt(value: float) -> str:
    return f"{value:g}" if value < 10000 else f"{value:,.0f}"


def render(panels: list[Panel], title: str) -> str:
    height = 40 + PANEL_HEIGHT * len(panels)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{WIDTH}" height="{height}" '
        f'viewBox="0 0 {WIDTH} {height}" font-family="sans-serif" font-size="11">',
        f'<rect width="{WIDTH}" height="{height}" fill="white"/>',
        f'<text x="{WIDTH / 2}" y="22" text-anchor="middle" font-size="15">{escape(title)}</text>',
    ]
    for number, panel in enumerate(panels):
        out += _panel(panel, 40 + number * PANEL_HEIGHT)
    out.append("</svg>")
    return "\n".join(out) + "\n"


def _panel(panel: Panel, top: float) -> list[str]:
    x0, y0 = LEFT, top + TOP
    plot_w, plot_h = WIDTH - LEFT - RIGHT, PANEL_HEIGHT - TOP - BOTTOM
    xs = [x for _l, pts in panel.series for x, _y in pts] + [line[4] for line in panel.lines]
    xs += [x for _l, x in panel.marks]
    ys = [y for _l, pts in panel.series for _x, y in pts] + [line[2] for line in panel.lines]
    x_max = max(xs, default=1.0) * 1.03 or 1.0
    y_max = max(ys, default=1.0) * 1.08 or 1.0

    def sx(x: float) -> float:
        return round(x0 + plot_w * x / x_max, 1)

    def sy(y: float) -> float:
        return round(y0 + plot_h * (1 - min(y, y_max) / y_max), 1)

    out = [
        f'<text x="{x0}" y="{top + 20}" font-size="13" font-weight="bold">{escape(panel.title)}</text>',
        f'<rect x="{x0}" y="{y0}" width="{plot_w}" height="{plot_h}" fill="none" stroke="#444"/>',
    ]
    for tick in _ticks(x_max / 1.03):
        out.append(f'<line x1="{sx(tick)}" y1="{y0 + plot_h}" x2="{sx(tick)}" y2="{y0 + plot_h + 4}" stroke="#444"/>')
        out.append(f'<text x="{sx(tick)}" y="{y0 + plot_h + 16}" text-anchor="middle">{_fmt(tick)}</text>')
    for tick in _ticks(y_max / 1.08):
        out.append(f'<line x1="{x0}" y1="{sy(tick)}" x2="{x0 + plot_w}" y2="{sy(tick)}" stroke="#eee"/>')
        out.append(f'<text x="{x0 - 6}" y="{sy(tick) + 4}" text-anchor="end">{_fmt(tick)}</text>')
    out.append(
        f'<text x="{x0 + plot_w / 2}" y="{y0 + plot_h + 32}" text-anchor="middle">{escape(panel.x_label)}</text>'
    )
    out.append(
        f'<text x="{x0 - 52}" y="{y0 + plot_h / 2}" text-anchor="middle" '
        f'transform="rotate(-90 {x0 - 52} {y0 + plot_h / 2})">{escape(panel.y_label)}</text>'
    )
    legend_y = y0 + 6
    for label, x in panel.marks:
        out.append(
            f'<line x1="{sx(x)}" y1="{y0}" x2="{sx(x)}" y2="{y0 + plot_h}" stroke="#999" stroke-dasharray="2,3"/>'
        )
        out.append(f'<text x="{sx(x) + 3}" y="{y0 + plot_h - 6}" fill="#666">{escape(label)}</text>')
    for label, start_x, start_y, slope, last_x in panel.lines:
        end_x, end_y = last_x, start_y + slope * (last_x - start_x)
        if end_y > y_max and slope:  # stop the line at the top of the plot
            end_x, end_y = start_x + (y_max - start_y) / slope, y_max
        out.append(
            f'<line x1="{sx(start_x)}" y1="{sy(start_y)}" x2="{sx(end_x)}" y2="{sy(end_y)}" '
            f'stroke="{QUOTA_COLOUR}" stroke-width="1.5" stroke-dasharray="6,4"/>'
        )
        out += _legend(x0 + plot_w + 10, legend_y, label, QUOTA_COLOUR, dashed=True)
        legend_y += 30
    for number, (label, points) in enumerate(panel.series):
        colour = COLOURS[number % len(COLOURS)]
        if points:
            steps = []
            previous = 0.0
            for x, y in _decimate(points):
                steps += [f"{sx(x)},{sy(previous)}", f"{sx(x)},{sy(y)}"]
                previous = y
            out.append(f'<polyline fill="none" stroke="{colour}" stroke-width="1.6" points="{" ".join(steps)}"/>')
        out += _legend(x0 + plot_w + 10, legend_y, label, colour)
        legend_y += 30
    return out


def _legend(x: float, y: float, label: str, colour: str, dashed: bool = False) -> list[str]:
    dash = ' stroke-dasharray="6,4"' if dashed else ""
    lines = label.split("\n")
    out = [f'<line x1="{x}" y1="{y + 4}" x2="{x + 18}" y2="{y + 4}" stroke="{colour}" stroke-width="2"{dash}/>']
    for number, text in enumerate(lines):
        out.append(f'<text x="{x + 22}" y="{y + 8 + 12 * number}">{escape(text)}</text>')
    return out
