"""Server-rendered SVG charts for the lead dashboard: pure functions from numbers to SVG strings.

No Django, no JavaScript, nothing fetched from another site; every text is escaped. Colours come
from CSS classes (`chart-*`) with inline fallbacks, so the charts also read when saved alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from html import escape

PALETTE = ["#2563eb", "#f59e0b", "#16a34a", "#dc2626", "#7c3aed", "#0891b2"]


@dataclass(frozen=True)
class Segment:
    label: str
    value: float
    color: str


def _fmt(value: float) -> str:
    """A short number for labels: 12.5, 1,250, 0.731."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _open(width: int, height: int, title: str, css_class: str) -> str:
    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" class="chart {escape(css_class)}" '
        f'viewBox="0 0 {width} {height}" width="100%" role="img" aria-label="{escape(title)}" '
        f'font-family="system-ui, sans-serif" font-size="12">'
        f"<title>{escape(title)}</title>"
    )


def stacked_bar(segments: Sequence[Segment], *, title: str, unit: str = "") -> str:
    """One horizontal bar split into segments (e.g. budget spent / reserved / left), with a legend."""
    width, height, bar_h = 600, 64, 24
    total = sum(max(s.value, 0) for s in segments)
    parts = [_open(width, height, title, "chart-stacked")]
    parts.append(f'<rect x="0" y="0" width="{width}" height="{bar_h}" rx="4" fill="#e5e7eb"/>')
    x = 0.0
    for segment in segments:
        value = max(segment.value, 0)
        w = (value / total * width) if total else 0
        if w > 0:
            parts.append(
                f'<rect class="segment" x="{x:.1f}" y="0" width="{w:.1f}" height="{bar_h}" '
                f'fill="{escape(segment.color)}"><title>{escape(segment.label)}: '
                f"{escape(_fmt(segment.value))} {escape(unit)}</title></rect>"
            )
        x += w
    lx = 0
    for segment in segments:
        label = f"{segment.label}: {_fmt(segment.value)} {unit}".strip()
        parts.append(
            f'<rect x="{lx}" y="{bar_h + 16}" width="12" height="12" fill="{escape(segment.color)}"/>'
            f'<text x="{lx + 16}" y="{bar_h + 26}">{escape(label)}</text>'
        )
        lx += 16 + 7 * len(label) + 24
    parts.append("</svg>")
    return "".join(parts)


def bar_chart(bars: Sequence[tuple[str, float]], *, title: str, unit: str = "") -> str:
    """Horizontal bars, one per label (e.g. spend on grades vs. comparisons)."""
    row_h, label_w, width = 34, 96, 340
    height = max(len(bars), 1) * row_h + 8
    top = max((v for _, v in bars), default=0) or 1
    parts = [_open(width, height, title, "chart-bars")]
    for i, (label, value) in enumerate(bars):
        y = 4 + i * row_h
        w = max(value, 0) / top * (width - label_w - 80)
        parts.append(
            f'<text x="{label_w - 8}" y="{y + 17}" text-anchor="end">{escape(label)}</text>'
            f'<rect class="chart-bar" x="{label_w}" y="{y}" width="{w:.1f}" height="24" rx="3" '
            f'fill="{PALETTE[i % len(PALETTE)]}"><title>{escape(label)}: {escape(_fmt(value))} '
            f"{escape(unit)}</title></rect>"
            f'<text x="{label_w + w + 6:.1f}" y="{y + 17}">{escape(_fmt(value))} {escape(unit)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


def line_chart(
    points: Sequence[tuple[float, float, str]],
    *,
    baselines: Sequence[tuple[str, float]] = (),
    title: str,
    x_label: str,
    y_label: str,
    y_range: tuple[float, float] | None = None,
) -> str:
    """A line with labelled points (x, y, label) and dashed horizontal reference lines."""
    width, height = 640, 320
    left, right, top, bottom = 56, 150, 16, 44
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [p[0] for p in points] or [0.0]
    ys = [p[1] for p in points] + [b[1] for b in baselines]
    x_max = _nice_max(max(xs))
    y_min, y_max = y_range if y_range else (0.0, _nice_max(max(ys, default=1.0)))
    span = (y_max - y_min) or 1.0

    def sx(x: float) -> float:
        return left + (x / x_max) * plot_w

    def sy(y: float) -> float:
        return top + plot_h - (min(max(y, y_min), y_max) - y_min) / span * plot_h

    parts = [_open(width, height, title, "chart-line")]
    for i in range(5):  # grid and ticks
        yv = y_min + span * i / 4
        xv = x_max * i / 4
        parts.append(
            f'<line x1="{left}" x2="{left + plot_w}" y1="{sy(yv):.1f}" y2="{sy(yv):.1f}" '
            f'stroke="#e5e7eb"/><text x="{left - 6}" y="{sy(yv) + 4:.1f}" text-anchor="end" '
            f'fill="#6b7280">{escape(_fmt(yv))}</text>'
            f'<text x="{sx(xv):.1f}" y="{top + plot_h + 16}" text-anchor="middle" '
            f'fill="#6b7280">{escape(_fmt(xv))}</text>'
        )
    parts.append(
        f'<line x1="{left}" x2="{left}" y1="{top}" y2="{top + plot_h}" stroke="#9ca3af"/>'
        f'<line x1="{left}" x2="{left + plot_w}" y1="{top + plot_h}" y2="{top + plot_h}" '
        f'stroke="#9ca3af"/>'
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" text-anchor="middle">'
        f"{escape(x_label)}</text>"
        f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
        f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">{escape(y_label)}</text>'
    )
    for i, (name, value) in enumerate(baselines):
        color = PALETTE[(i + 1) % len(PALETTE)]
        y = sy(value)
        parts.append(
            f'<line class="baseline" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{color}" stroke-dasharray="6 4"><title>{escape(name)}: '
            f"{escape(_fmt(value))}</title></line>"
            f'<text x="{left + plot_w + 6}" y="{y + 4:.1f}" fill="{color}">'
            f"{escape(name)} {escape(_fmt(value))}</text>"
        )
    ordered = sorted(points)
    if len(ordered) > 1:
        path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y, _ in ordered)
        parts.append(
            f'<polyline class="series" points="{path}" fill="none" stroke="{PALETTE[0]}" '
            f'stroke-width="2"/>'
        )
    for x, y, label in ordered:
        parts.append(
            f'<circle class="point" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="4.5" fill="{PALETTE[0]}">'
            f"<title>{escape(label)}: {escape(_fmt(y))} at {escape(_fmt(x))}</title></circle>"
            f'<text x="{sx(x) + 6:.1f}" y="{sy(y) - 8:.1f}" font-size="11">{escape(label)}</text>'
        )
    parts.append("</svg>")
    return "".join(parts)
