"""Server-rendered SVG charts for the lead's pages: pure functions from numbers to SVG strings.

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


def fit_range(
    values: Sequence[float], *, low: float | None = None, high: float | None = None
) -> tuple[float, float]:
    """A y range that fits the values with a margin, on round ticks (the axis shows 5), within
    [low, high] when given: values between 0.96 and 0.99 get 0.95–1.00, not 0–1."""
    values = [v for v in values if v is not None and math.isfinite(v)]
    if not values:
        return (low if low is not None else 0.0, high if high is not None else 1.0)
    lo, hi = min(values), max(values)
    span = hi - lo
    pad = max(span * 0.15, abs(hi) * 0.02, 0.01)
    lo, hi = lo - pad, hi + pad
    step = _nice_step((hi - lo) / 4)
    start = math.floor(lo / step) * step
    while start + 4 * step < hi - 1e-12:  # four round steps must reach the top value
        step = _nice_step(step * 1.0001)
        start = math.floor(lo / step) * step
    lo, hi = start, start + 4 * step
    if high is not None and hi > high:  # shift, not squeeze, so the ticks stay round
        lo, hi = high - 4 * step, high
    if low is not None and lo < low:
        lo, hi = low, hi if high is None else min(max(hi, low + 4 * step), high)
    return (round(lo, 10), round(hi, 10))


def _nice_step(raw: float) -> float:
    if raw <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(raw))
    for step in (1, 2, 2.5, 5, 10):
        if raw <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


LABEL_GAP = 15  # px between the baselines of two stacked labels (11px text and its line box)


def spread_labels(ys: Sequence[float], *, top: float, bottom: float) -> list[float]:
    """Label positions near the wanted ys (in order given) that are LABEL_GAP apart at least,
    inside [top, bottom] when there is room: crowded labels are pushed apart, not drawn on top
    of each other."""
    order = sorted(range(len(ys)), key=lambda i: ys[i])
    placed = [ys[i] for i in order]
    for k in range(1, len(placed)):  # push down
        placed[k] = max(placed[k], placed[k - 1] + LABEL_GAP)
    if placed and placed[-1] > bottom:  # then pull the stack up from the bottom
        placed[-1] = bottom
        for k in range(len(placed) - 2, -1, -1):
            placed[k] = min(placed[k], placed[k + 1] - LABEL_GAP)
    result = [0.0] * len(ys)
    for k, i in enumerate(order):
        result[i] = placed[k]
    return result


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    magnitude = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * magnitude:
            return step * magnitude
    return 10 * magnitude


@dataclass(frozen=True)
class _Frame:
    """The plot area of a line chart and its scales: x from 0 to x_max, y clamped to its range."""

    x_max: float
    y_min: float
    y_max: float
    width: int = 640
    height: int = 320
    left: int = 56
    right: int = 150
    top: int = 16
    bottom: int = 44

    @property
    def plot_w(self) -> int:
        return self.width - self.left - self.right

    @property
    def plot_h(self) -> int:
        return self.height - self.top - self.bottom

    def sx(self, x: float) -> float:
        return self.left + (x / self.x_max) * self.plot_w

    def sy(self, y: float) -> float:
        span = (self.y_max - self.y_min) or 1.0
        clamped = min(max(y, self.y_min), self.y_max)
        return self.top + self.plot_h - (clamped - self.y_min) / span * self.plot_h

    def axes(self, *, x_label: str, y_label: str) -> str:
        """Grid lines with ticks, the two axes and their labels."""
        left, top, plot_w, plot_h, sx, sy = (
            self.left, self.top, self.plot_w, self.plot_h, self.sx, self.sy
        )  # fmt: skip
        span = (self.y_max - self.y_min) or 1.0
        parts = []
        for i in range(5):
            yv = self.y_min + span * i / 4
            xv = self.x_max * i / 4
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
            f'<text x="{left + plot_w / 2:.1f}" y="{self.height - 6}" text-anchor="middle">'
            f"{escape(x_label)}</text>"
            f'<text x="14" y="{top + plot_h / 2:.1f}" text-anchor="middle" '
            f'transform="rotate(-90 14 {top + plot_h / 2:.1f})">{escape(y_label)}</text>'
        )
        return "".join(parts)


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
    xs = [p[0] for p in points] or [0.0]
    ys = [p[1] for p in points] + [b[1] for b in baselines]
    y_min, y_max = y_range if y_range else (0.0, _nice_max(max(ys, default=1.0)))
    frame = _Frame(x_max=_nice_max(max(xs)), y_min=y_min, y_max=y_max)
    left, plot_w, sx, sy = frame.left, frame.plot_w, frame.sx, frame.sy

    parts = [_open(frame.width, frame.height, title, "chart-line")]
    parts.append(frame.axes(x_label=x_label, y_label=y_label))
    label_ys = spread_labels(
        [sy(value) + 4 for _, value in baselines],
        top=frame.top + 8, bottom=frame.top + frame.plot_h + 4,
    )  # fmt: skip
    for i, (name, value) in enumerate(baselines):
        color = PALETTE[(i + 1) % len(PALETTE)]
        y = sy(value)
        parts.append(
            f'<line class="baseline" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" y2="{y:.1f}" '
            f'stroke="{color}" stroke-dasharray="6 4"><title>{escape(name)}: '
            f"{escape(_fmt(value))}</title></line>"
            f'<text class="baseline-label" x="{left + plot_w + 6}" y="{label_ys[i]:.1f}" '
            f'font-size="11" fill="{color}">{escape(name)} {escape(_fmt(value))}</text>'
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


@dataclass(frozen=True)
class Series:
    """One line of a multi-line chart: its name (in the legend) and its (x, y) points."""

    label: str
    points: Sequence[tuple[float, float]]
    color: str | None = None
    is_dashed: bool = False
    # (x, low, high): the spread of each point (e.g. min and max over seeds), drawn as a bar.
    spread: Sequence[tuple[float, float, float]] = ()


def lines_chart(
    series: Sequence[Series],
    *,
    references: Sequence[tuple[str, float]] = (),
    title: str,
    x_label: str,
    y_label: str,
    x_unit: str = "",
    x_max: float | None = None,
    y_range: tuple[float, float] | None = None,
) -> str:
    """Several lines (one per series, legend on the right) and dotted horizontal reference lines
    labelled inside the plot (e.g. NDCG@10 against cost, one line per strategy)."""
    xs = [x for s in series for x, _ in s.points] or [0.0]
    ys = [y for s in series for _, y in s.points] + [value for _, value in references]
    y_min, y_max = y_range if y_range else (0.0, _nice_max(max(ys, default=1.0)))
    frame = _Frame(x_max=x_max or _nice_max(max(xs)), y_min=y_min, y_max=y_max)
    left, top, plot_w, sx, sy = frame.left, frame.top, frame.plot_w, frame.sx, frame.sy

    parts = [_open(frame.width, frame.height, title, "chart-lines")]
    parts.append(frame.axes(x_label=x_label, y_label=y_label))
    for name, value in references:
        y = sy(value)
        parts.append(
            f'<line class="reference" x1="{left}" x2="{left + plot_w}" y1="{y:.1f}" '
            f'y2="{y:.1f}" stroke="#374151" stroke-dasharray="2 3"><title>{escape(name)}: '
            f"{escape(_fmt(value))}</title></line>"
            f'<text x="{left + plot_w - 4}" y="{y - 5:.1f}" text-anchor="end" fill="#374151" '
            f'font-size="11">{escape(name)} {escape(_fmt(value))}</text>'
        )
    for i, line in enumerate(series):
        color = escape(line.color or PALETTE[i % len(PALETTE)])
        dash = ' stroke-dasharray="6 3"' if line.is_dashed else ""
        ordered = sorted(line.points)
        # A series whose points a later one repeats (one strategy buying what another buys)
        # would be hidden under it: it is drawn wider, so both stay visible.
        under = sum(1 for later in series[i + 1 :] if set(later.points) & set(line.points))
        if len(ordered) > 1:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in ordered)
            parts.append(
                f'<polyline class="series" points="{path}" fill="none" stroke="{color}" '
                f'stroke-width="{2 + 2 * under:g}"{dash}><title>{escape(line.label)}</title>'
                "</polyline>"
            )
        for x, low, high in line.spread:
            parts.append(
                f'<line class="spread" x1="{sx(x):.1f}" x2="{sx(x):.1f}" y1="{sy(low):.1f}" '
                f'y2="{sy(high):.1f}" stroke="{color}" stroke-width="1.5" opacity="0.6">'
                f"<title>{escape(line.label)}: {escape(_fmt(low))} to {escape(_fmt(high))} at "
                f"{escape(_fmt(x))}{escape(x_unit)}</title></line>"
            )
        for x, y in ordered:
            parts.append(
                f'<circle class="point" cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{3.5 + 1.5 * under:g}" '
                f'fill="{color}"><title>{escape(line.label)}: {escape(_fmt(y))} at '
                f"{escape(_fmt(x))}{escape(x_unit)}</title></circle>"
            )
        ly = top + 8 + i * 20
        lx = left + plot_w + 12
        parts.append(
            f'<g class="legend"><line x1="{lx}" x2="{lx + 18}" y1="{ly:.1f}" y2="{ly:.1f}" '
            f'stroke="{color}" stroke-width="3"{dash}/><text x="{lx + 24}" y="{ly + 4:.1f}">'
            f"{escape(line.label)}</text></g>"
        )
    parts.append("</svg>")
    return "".join(parts)
