"""The inline SVG scatter plot of an agreement check: each video's metric score (x) against its human rating (y).

Pure and self-contained: no script, no external assets, every piece of text escaped (and control or bidi
characters shown as escapes), so the markup can be embedded in the HTML report as it is."""

from __future__ import annotations

import html
import math
from collections.abc import Iterable, Mapping
from typing import Any

from ..safetext import printable

WIDTH, HEIGHT = 360, 260
_LEFT, _RIGHT, _TOP, _BOTTOM = 52, 12, 26, 42  # plot margins: tick labels left and below, legend above
_POINT, _OUTLIER, _AXIS, _MUTED = "#0969da", "#cf222e", "#d0d7de", "#57606a"


def _text(value: Any) -> str:
    """Text for an SVG element or attribute: control and bidi characters made visible, then XML-escaped;
    characters XML cannot hold at all (lone surrogates, U+FFFE/U+FFFF) shown as escapes too."""
    shown = printable(str(value))
    shown = "".join(f"\\u{ord(c):04x}" if 0xD800 <= ord(c) <= 0xDFFF or ord(c) in (0xFFFE, 0xFFFF) else c
                    for c in shown)
    return html.escape(shown, quote=True)


def _finite(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _range(values: list[float]) -> tuple[float, float]:
    """The axis range: the data with a little room; a single value (or identical ones) gets a span around it."""
    low, high = min(values), max(values)
    span = (high - low) or max(abs(high), 1.0) * 0.5
    return low - span * 0.08, high + span * 0.08


def _ticks(low: float, high: float, count: int = 5) -> list[float]:
    """About `count` round tick values (steps of 1, 2 or 5 times a power of ten) inside [low, high]."""
    raw = (high - low) / count
    power = 10 ** math.floor(math.log10(raw))
    step = next(m * power for m in (1, 2, 5, 10) if m * power >= raw)
    first = math.ceil(low / step)
    return [round(i * step, 12) for i in range(first, math.floor(high / step) + 1)]


def _number(value: float) -> str:
    return f"{value:.4g}"


def scatter_svg(points: Iterable[Mapping[str, Any]], x_label: str, y_label: str) -> str:
    """Score (x) against rating (y), one circle per video with its name, score and rating as a hover title;
    outliers drawn as red rings and named in a legend. Points whose score or rating is not a finite number
    are left out and counted in a note."""
    plotted: list[tuple[float, float, Mapping[str, Any]]] = []
    left_out = 0
    for point in points:
        x, y = _finite(point.get("score")), _finite(point.get("rating"))
        if x is None or y is None:
            left_out += 1
        else:
            plotted.append((x, y, point))
    right, bottom = WIDTH - _RIGHT, HEIGHT - _BOTTOM
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" class="scatter" width="{WIDTH}" height="{HEIGHT}" '
             f'viewBox="0 0 {WIDTH} {HEIGHT}" role="img" font-family="sans-serif" font-size="10">',
             f"<title>{_text(x_label)} against {_text(y_label)}, one point per video</title>",
             f'<rect x="{_LEFT}" y="{_TOP}" width="{right - _LEFT}" height="{bottom - _TOP}" fill="none" '
             f'stroke="{_AXIS}"/>']
    if plotted:
        x_low, x_high = _range([x for x, _, _ in plotted])
        y_low, y_high = _range([y for _, y, _ in plotted])

        def px(v: float) -> float:
            return round(_LEFT + (right - _LEFT) * (v - x_low) / (x_high - x_low), 1)

        def py(v: float) -> float:
            return round(bottom - (bottom - _TOP) * (v - y_low) / (y_high - y_low), 1)

        parts.append('<g class="ticks" fill="#57606a">')
        for tick in _ticks(x_low, x_high):
            parts.append(f'<line x1="{px(tick)}" x2="{px(tick)}" y1="{bottom}" y2="{bottom + 4}" '
                         f'stroke="{_MUTED}"/><text x="{px(tick)}" y="{bottom + 15}" '
                         f'text-anchor="middle">{_number(tick)}</text>')
        for tick in _ticks(y_low, y_high):
            parts.append(f'<line x1="{_LEFT - 4}" x2="{_LEFT}" y1="{py(tick)}" y2="{py(tick)}" '
                         f'stroke="{_MUTED}"/><text x="{_LEFT - 6}" y="{round(py(tick) + 3.5, 1)}" '
                         f'text-anchor="end">{_number(tick)}</text>')
        parts.append("</g>")
        parts.append('<g class="points">')
        for x, y, point in sorted(plotted, key=lambda p: bool(p[2].get("outlier"))):  # outliers drawn on top
            outlier = bool(point.get("outlier"))
            style = (f'r="5" fill="#ffffff" fill-opacity="0" stroke="{_OUTLIER}" stroke-width="2" class="outlier"'
                     if outlier else f'r="4" fill="{_POINT}" fill-opacity="0.7" class="point"')
            title = (f"{_text(point.get('video', '?'))}: score {_number(x)}, rating {_number(y)}"
                     + (" (outlier)" if outlier else ""))
            parts.append(f'<circle cx="{px(x)}" cy="{py(y)}" {style}><title>{title}</title></circle>')
        parts.append("</g>")
    else:
        parts.append(f'<text x="{(WIDTH + _LEFT) // 2}" y="{HEIGHT // 2}" text-anchor="middle" '
                     f'fill="{_MUTED}">no points to plot</text>')
    parts.append(f'<text x="{(right + _LEFT) // 2}" y="{HEIGHT - 8}" text-anchor="middle" '
                 f'fill="#1f2328">{_text(x_label)}</text>')
    parts.append(f'<text x="12" y="{(bottom + _TOP) // 2}" text-anchor="middle" fill="#1f2328" '
                 f'transform="rotate(-90 12 {(bottom + _TOP) // 2})">{_text(y_label)}</text>')
    outliers = [point for _, _, point in plotted if point.get("outlier")]
    notes = []
    if outliers:
        names = ", ".join(str(point.get("video", "?")) for point in outliers[:3])
        more = f" and {len(outliers) - 3} more" if len(outliers) > 3 else ""
        notes.append(f"outlier: {names}{more}")
    if left_out:
        notes.append(f"{left_out} not plotted (not a finite number)")
    if notes:
        legend = "; ".join(notes)
        if len(legend) > 60:
            legend = legend[:59] + "…"
        marker = (f'<circle cx="{_LEFT + 4}" cy="12" r="4" fill="none" stroke="{_OUTLIER}" stroke-width="2"/>'
                  if outliers else "")
        parts.append(f'<g class="legend">{marker}<text x="{_LEFT + (14 if outliers else 0)}" y="15" '
                     f'fill="{_MUTED}">{_text(legend)}<title>{_text("; ".join(notes))}</title></text></g>')
    parts.append("</svg>")
    return "".join(parts)
