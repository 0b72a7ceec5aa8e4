"""The lead's charts, drawn by matplotlib's SVG backend: pure functions from numbers to inline SVG.

Only matplotlib's object-oriented API (`Figure` + `FigureCanvasSVG`), never pyplot's global state,
so charts render safely in gunicorn's threads. Text stays text (`svg.fonttype: none`) and every
label that could collide is placed by measuring it first: baselines in a right-hand column kept
`LABEL_GAP` apart, lines in a legend, point labels only where they fit. The SVG is cleaned for
inline use: no script, no stylesheet, no document-wide ids, a `role="img"` with its title.
"""

from __future__ import annotations

import functools
import hashlib
import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from xml.etree import ElementTree

import matplotlib
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.font_manager import FontProperties
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle
from matplotlib.textpath import TextToPath
from matplotlib.ticker import FixedLocator, FuncFormatter

# Both keys are read only by the SVG backend; set once here, never per call (rcParams is global).
matplotlib.rcParams["svg.fonttype"] = "none"  # <text> elements: selectable, findable by tests
matplotlib.rcParams["svg.hashsalt"] = "pagewise"  # the same chart gives the same SVG

PALETTE = ["#2563eb", "#f59e0b", "#16a34a", "#dc2626", "#7c3aed", "#0891b2"]
GREY, AXIS, INK = "#6b7280", "#9ca3af", "#111827"
FONT_SIZE = 11  # px: the SVG's viewBox is in pixels (72 dpi, so 1 pt = 1 px)
LABEL_GAP = 15  # px between the baselines of two stacked labels (11px text and its line box)

_SVG = "http://www.w3.org/2000/svg"
_XLINK = "http://www.w3.org/1999/xlink"
ElementTree.register_namespace("", _SVG)
ElementTree.register_namespace("xlink", _XLINK)
_TEXT_PATH = TextToPath()
# matplotlib's own group ids (figure_1, patch_3, ytick_2, ...): the tick and legend groups
# become classes (tests and CSS find them), the rest are dropped so pages have no duplicate ids.
_MPL_ID = re.compile(r"^(?:[A-Za-z]+\.)?([A-Za-z]+\d?[A-Za-z]*)_\d+$")
_KEPT_CLASSES = {"xtick", "ytick", "legend"}


@dataclass(frozen=True)
class Segment:
    label: str
    value: float
    color: str


@dataclass(frozen=True)
class Series:
    """One line of a multi-line chart: its name (in the legend) and its (x, y) points."""

    label: str
    points: Sequence[tuple[float, float]]
    color: str | None = None
    is_dashed: bool = False
    # (x, low, high): the spread of each point (e.g. min and max over seeds), drawn as a bar.
    spread: Sequence[tuple[float, float, float]] = ()


def _fmt(value: float) -> str:
    """A short number for labels: 12.5, 1,250, 0.731."""
    if value == 0:
        return "0"
    if abs(value) >= 100:
        return f"{value:,.0f}"
    if abs(value) >= 1:
        return f"{value:,.2f}".rstrip("0").rstrip(".")
    return f"{value:.3f}".rstrip("0").rstrip(".")


def _plain(text: str) -> str:
    """Text as written: a `$` never starts matplotlib's mathtext."""
    return text.replace("$", r"\$")


@functools.lru_cache(maxsize=4096)
def text_width(text: str, size: float = FONT_SIZE) -> float:
    """The width in px of `text` in the charts' font (DejaVu Sans, the browser's too here)."""
    width, _, _ = _TEXT_PATH.get_text_width_height_descent(
        text, FontProperties(size=size), ismath=False
    )
    return width


# --- axes that fit the data ------------------------------------------------------------------


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


_nice_max = _nice_step  # the smallest round number at or above a value


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


# --- drawing and cleaning ----------------------------------------------------------------------


class _Canvas:
    """A figure sized in px, plus what the SVG cleaner adds to the artists tagged here: a class
    and a tooltip (`<title>`) per artist, or one per marker of a line of points."""

    def __init__(self, width: float, height: float, *, right: float = 0) -> None:
        self.width, self.height = width, height
        self.right = right  # px right of the plot kept for labels or a legend
        self.figure = Figure(figsize=(width / 72, height / 72), dpi=72)
        self.tags: dict[str, tuple[str, str | list[str]]] = {}

    def tag(self, artist, css_class: str, title: str | list[str] = "") -> None:
        gid = f"pw-{len(self.tags)}"
        artist.set_gid(gid)
        self.tags[gid] = (css_class, title)

    def axes(self, *, left: float, right: float, top: float, bottom: float):
        """Axes whose plot area sits at these px margins; grey frame and ticks, no top/right."""
        w, h = self.width, self.height
        ax = self.figure.add_axes(
            (left / w, bottom / h, (w - left - right) / w, (h - top - bottom) / h)
        )
        ax.set_facecolor("none")
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        for side in ("left", "bottom"):
            ax.spines[side].set_color(AXIS)
        ax.tick_params(labelsize=FONT_SIZE, colors=GREY, length=3)
        return ax

    def text(self, x: float, y: float, text: str, **kwargs):
        """Text at (x, y) px from the top left (y is the text's baseline)."""
        return self.figure.text(
            x / self.width, 1 - y / self.height, _plain(text), fontsize=FONT_SIZE,
            va="baseline", **kwargs,
        )  # fmt: skip

    def svg(self, *, title: str, css_class: str) -> str:
        self.figure.patch.set_visible(False)
        out = io.StringIO()
        FigureCanvasSVG(self.figure).print_svg(
            out, metadata={"Date": None, "Creator": None, "Format": None, "Type": None}
        )
        return _clean(out.getvalue(), tags=self.tags, title=title, css_class=css_class)


def _q(tag: str, ns: str = _SVG) -> str:
    return f"{{{ns}}}{tag}"


def _with_title(element: ElementTree.Element, title: str) -> None:
    node = ElementTree.Element(_q("title"))
    node.text = title
    element.insert(0, node)


def _clean(svg: str, *, tags: dict, title: str, css_class: str) -> str:
    """matplotlib's SVG made fit to sit inside a page (see the module's docstring)."""
    root = ElementTree.fromstring(svg)
    digest = hashlib.sha1(svg.encode()).hexdigest()[:8]
    parent_of = {child: parent for parent in root.iter() for child in parent}
    defined: dict[str, str] = {}
    for element in list(root.iter()):
        tag = element.tag.rsplit("}", 1)[-1]
        if tag in ("script", "foreignObject", "style", "metadata"):
            parent_of[element].remove(element)
            continue
        for name in [a for a in element.attrib if a.lower().startswith("on")]:
            del element.attrib[name]
        gid = element.get("id")
        if gid is None:
            continue
        if gid in tags:
            del element.attrib["id"]
            klass, tip = tags[gid]
            element.set("class", klass)
            if isinstance(tip, list):  # one per marker, in the order given
                for use, text in zip(element.iter(_q("use")), tip, strict=False):
                    use.set("class", klass)
                    _with_title(use, text)
                element.set("class", f"{klass}s")
            elif tip:
                _with_title(element, tip)
        elif (match := _MPL_ID.match(gid)) and tag == "g":
            del element.attrib["id"]
            if match.group(1) in _KEPT_CLASSES:
                element.set("class", match.group(1))
        else:  # a definition (marker, clip path): unique to this chart in the page
            defined[gid] = f"c{digest}-{gid}"
            element.set("id", defined[gid])
    href = _q("href", _XLINK)
    for element in root.iter():
        link = element.get(href)
        if link is not None:
            if not link.startswith("#") or link[1:] not in defined:
                del element.attrib[href]
            else:
                element.set(href, "#" + defined[link[1:]])
        clip = element.get("clip-path")
        if clip is not None:
            inner = clip.removeprefix("url(#").removesuffix(")")
            element.set("clip-path", f"url(#{defined[inner]})" if inner in defined else "none")
    for element in root.iter():  # matplotlib's indentation, and definitions left empty
        if element.tail is not None and not element.tail.strip():
            element.tail = None
        if element.tag != _q("text") and element.text is not None and not element.text.strip():
            element.text = None
        for empty in [d for d in element.findall(_q("defs")) if len(d) == 0]:
            element.remove(empty)
    view = root.get("viewBox")
    root.attrib.clear()
    root.attrib.update(
        {
            "class": f"chart {css_class}",
            "viewBox": view,
            "width": "100%",
            "role": "img",
            "aria-label": title,
            "stroke-linejoin": "round",
            "stroke-linecap": "butt",
        }
    )
    _with_title(root, title)
    return ElementTree.tostring(root, encoding="unicode")


def _fixed_ticks(axis, values: Sequence[float], formatter: Callable[[float], str]) -> None:
    axis.set_major_locator(FixedLocator(list(values)))
    axis.set_major_formatter(FuncFormatter(lambda value, _: _plain(formatter(value))))


def _frozen(value):
    """Arguments as a cache key: lists become tuples, a Series one with tuple fields."""
    if isinstance(value, list | tuple):
        return tuple(_frozen(v) for v in value)
    if isinstance(value, Series):
        return Series(
            value.label, _frozen(value.points), value.color, value.is_dashed, _frozen(value.spread)
        )
    return value


def _same_input_same_svg(draw: Callable[..., str]) -> Callable[..., str]:
    """Keep the last charts drawn, keyed by every argument: a dashboard viewed again with the same
    numbers costs nothing, and any changed number (a new version, a judgment's cost) draws anew.
    `draw.uncached` is the drawing itself."""
    cached = functools.lru_cache(maxsize=256)(draw)

    @functools.wraps(draw)
    def wrapper(*args, **kwargs):
        return cached(*_frozen(args), **{k: _frozen(v) for k, v in kwargs.items()})

    wrapper.uncached = draw
    return wrapper


# --- the charts --------------------------------------------------------------------------------


@_same_input_same_svg
def stacked_bar(segments: Sequence[Segment], *, title: str, unit: str = "") -> str:
    """One horizontal bar split into segments (e.g. budget spent / reserved / left), with a
    legend below it that wraps onto as many rows as its entries need."""
    width, bar_h, row_h = 600, 24, 18
    labels = [f"{s.label}: {_fmt(s.value)} {unit}".strip() for s in segments]
    rows: list[list[int]] = [[]]
    x = 0.0
    for i, label in enumerate(labels):
        entry = 16 + text_width(label) + 24
        if rows[-1] and x + entry > width:
            rows.append([])
            x = 0.0
        rows[-1].append(i)
        x += entry
    height = bar_h + 8 + row_h * len(rows)
    canvas = _Canvas(width, height)
    ax = canvas.axes(left=0, right=0, top=0, bottom=height - bar_h)
    ax.set_axis_off()
    total = sum(max(s.value, 0) for s in segments)
    ax.set_xlim(0, total or 1)
    ax.set_ylim(0, 1)
    ax.barh(0.5, total or 1, height=1, color="#e5e7eb")
    left = 0.0
    for segment in segments:
        value = max(segment.value, 0)
        if value > 0:
            bars = ax.barh(0.5, value, left=left, height=1, color=segment.color)
            canvas.tag(bars[0], "segment", f"{segment.label}: {_fmt(segment.value)} {unit}")
        left += value
    for r, row in enumerate(rows):
        y = bar_h + 8 + r * row_h
        x = 0.0
        for i in row:
            canvas.figure.patches.append(
                Rectangle(
                    (x / width, 1 - (y + 12) / height), 12 / width, 12 / height,
                    color=segments[i].color, transform=canvas.figure.transFigure,
                )
            )  # fmt: skip
            canvas.text(x + 16, y + 10, labels[i], color=INK)
            x += 16 + text_width(labels[i]) + 24
    return canvas.svg(title=title, css_class="chart-stacked")


@_same_input_same_svg
def bar_chart(bars: Sequence[tuple[str, float]], *, title: str, unit: str = "") -> str:
    """Horizontal bars, one per label (e.g. spend on grades vs. comparisons), each with its value
    at its end; the margins are the measured widths of the labels."""
    row_h = 34
    names = [label for label, _ in bars]
    values = [f"{_fmt(value)} {unit}".strip() for _, value in bars]
    label_w = max((text_width(n) for n in names), default=0) + 12
    value_w = max((text_width(v) for v in values), default=0) + 12
    width = max(340.0, label_w + value_w + 120)
    height = max(len(bars), 1) * row_h + 8
    canvas = _Canvas(width, height)
    ax = canvas.axes(left=label_w, right=value_w, top=4, bottom=4)
    ax.set_axis_off()
    top = max((v for _, v in bars), default=0) or 1
    ax.set_xlim(0, top)
    ax.set_ylim(max(len(bars), 1), 0)  # row i spans [i, i + 1], first on top; 24px bars
    for i, (label, value) in enumerate(bars):
        drawn = ax.barh(
            i + 12 / row_h, max(value, 0), height=24 / row_h, color=PALETTE[i % len(PALETTE)]
        )
        canvas.tag(drawn[0], "chart-bar", f"{label}: {values[i]}")
        y = 4 + i * row_h + 17
        canvas.text(label_w - 8, y, label, ha="right", color=INK)
        canvas.text(label_w + max(value, 0) / top * (width - label_w - value_w) + 6, y, values[i])
    return canvas.svg(title=title, css_class="chart-bars")


def _place_point_labels(
    canvas: _Canvas, spots: Sequence[tuple[float, float, str]], *, box: tuple[float, ...]
) -> None:
    """Each label beside its point (px), above it or else below it, wherever it overlaps no label
    placed before; the newest points are labelled first, and a label with no room is left out
    (its point keeps its tooltip)."""
    left, top, right, bottom = box
    taken: list[tuple[float, float, float, float]] = []
    height = FONT_SIZE + 2
    for x, y, label in reversed(spots):
        width = text_width(label) * 1.1 + 2
        start = x + 6 if x + 6 + width <= right else x - 6 - width
        for baseline in (y - 8, y + 8 + FONT_SIZE):
            rect = (start, baseline - FONT_SIZE, start + width, baseline - FONT_SIZE + height)
            inside = rect[1] >= top and rect[3] <= bottom and rect[0] >= left
            if inside and all(
                rect[2] <= a or b <= rect[0] or rect[3] <= c or d <= rect[1] for a, c, b, d in taken
            ):
                taken.append((rect[0], rect[1], rect[2], rect[3]))
                canvas.tag(canvas.text(start, baseline, label, color=INK), "point-label")
                break


def _plot_frame(
    canvas: _Canvas, *, x_max: float, y_range: tuple[float, float], x_label: str, y_label: str
):
    """The plot area of a line chart: x from 0 to x_max, y over its range, five round ticks and
    grid lines on each axis, the axes' names just outside the (measured) tick labels."""
    y_min, y_max = y_range
    span = (y_max - y_min) or 1.0
    y_ticks = [y_min + span * i / 4 for i in range(5)]
    ticks_w = max(text_width(_fmt(v)) for v in y_ticks) + 6.5  # tick mark and its pad
    left = max(64.0, ticks_w + 6 + FONT_SIZE + 6)
    ax = canvas.axes(left=left, right=canvas.right, top=16, bottom=48)
    ax.set_xlim(0, x_max)
    ax.set_ylim(y_min, y_min + span)
    _fixed_ticks(ax.xaxis, [x_max * i / 4 for i in range(5)], _fmt)
    _fixed_ticks(ax.yaxis, y_ticks, _fmt)
    ax.grid(axis="y", color="#e5e7eb", linewidth=1)
    ax.set_axisbelow(True)
    ax.set_xlabel(_plain(x_label), fontsize=FONT_SIZE + 1, color=INK)
    ax.set_ylabel(_plain(y_label), fontsize=FONT_SIZE + 1, color=INK)
    # Placed, not found: matplotlib would otherwise lay every tick label out twice per render.
    plot_w, plot_h = canvas.width - left - canvas.right, canvas.height - 16 - 48
    ax.yaxis.set_label_coords(-(ticks_w + 6) / plot_w, 0.5)
    ax.xaxis.set_label_coords(0.5, -(6.5 + FONT_SIZE + 8) / plot_h)
    return ax


def _clamp(y: float, y_range: tuple[float, float]) -> float:
    return min(max(y, y_range[0]), y_range[1])


@_same_input_same_svg
def line_chart(
    points: Sequence[tuple[float, float, str]],
    *,
    baselines: Sequence[tuple[str, float]] = (),
    title: str,
    x_label: str,
    y_label: str,
    y_range: tuple[float, float] | None = None,
) -> str:
    """A line with labelled points (x, y, label) and dashed horizontal reference lines (baselines)
    whose labels stand in a column right of the plot, LABEL_GAP px apart at least."""
    ys = [p[1] for p in points] + [b[1] for b in baselines]
    y_range = y_range or (0.0, _nice_max(max(ys, default=1.0)))
    names = [f"{name} {_fmt(value)}" for name, value in baselines]
    right = max(150.0, max((text_width(n) for n in names), default=0) + 16)
    canvas = _Canvas(640 - 150 + right, 320, right=right)
    x_max = _nice_max(max([p[0] for p in points] or [0.0]))
    ax = _plot_frame(canvas, x_max=x_max, y_range=y_range, x_label=x_label, y_label=y_label)
    to_px = ax.transData.transform
    plot_right = canvas.width - right
    ax_left = to_px((0, 0))[0]

    def sy(value: float) -> float:
        return canvas.height - to_px((0, _clamp(value, y_range)))[1]

    label_ys = spread_labels([sy(value) + 4 for _, value in baselines], top=16 + 8, bottom=276)
    for i, (name, value) in enumerate(baselines):
        color = PALETTE[(i + 1) % len(PALETTE)]
        line = ax.axhline(_clamp(value, y_range), color=color, linewidth=1.5, dashes=(4, 2.7))
        canvas.tag(line, "baseline", f"{name}: {_fmt(value)}")
        label = canvas.text(plot_right + 6, label_ys[i], names[i], color=color)
        canvas.tag(label, "baseline-label")
    ordered = sorted(points)
    xs = [x for x, _, _ in ordered]
    ys = [_clamp(y, y_range) for _, y, _ in ordered]
    if len(ordered) > 1:
        canvas.tag(ax.plot(xs, ys, color=PALETTE[0], linewidth=2)[0], "series")
    marks = ax.plot(xs, ys, linestyle="none", marker="o", markersize=9, color=PALETTE[0])[0]
    marks.set_clip_on(False)
    canvas.tag(marks, "point", [f"{label}: {_fmt(y)} at {_fmt(x)}" for x, y, label in ordered])
    spots = [
        (to_px((x, y))[0], canvas.height - to_px((x, y))[1], label)
        for (x, _, label), y in zip(ordered, ys, strict=True)
    ]
    _place_point_labels(canvas, spots, box=(ax_left, 0, plot_right, canvas.height - 48))
    return canvas.svg(title=title, css_class="chart-line")


@_same_input_same_svg
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
    """Several lines (one per series) with the spread of each point, and dotted horizontal
    reference lines (e.g. NDCG@10 against cost, one line per strategy); a legend right of the plot
    names the lines and the references with their values."""
    xs = [x for s in series for x, _ in s.points] or [0.0]
    ys = [y for s in series for _, y in s.points] + [value for _, value in references]
    y_range = y_range or (0.0, _nice_max(max(ys, default=1.0)))
    entries = [s.label for s in series] + [f"{n} {_fmt(v)}" for n, v in references]
    right = max(150.0, max((text_width(e) for e in entries), default=0) + 64)
    canvas = _Canvas(640 - 150 + right, max(320.0, 16 + 48 + 20 * len(entries) + 8), right=right)
    ax = _plot_frame(
        canvas, x_max=x_max or _nice_max(max(xs)), y_range=y_range, x_label=x_label,
        y_label=y_label,
    )  # fmt: skip
    handles = []
    for name, value in references:
        line = ax.axhline(_clamp(value, y_range), color="#374151", linewidth=1, dashes=(2, 3))
        canvas.tag(line, "reference", f"{name}: {_fmt(value)}")
        handles.append((line, f"{name} {_fmt(value)}"))
    for i, drawn in enumerate(series):
        color = drawn.color or PALETTE[i % len(PALETTE)]
        dashes = (6, 3) if drawn.is_dashed else (None, None)
        ordered = sorted(drawn.points)
        # A series whose points a later one repeats (one strategy buying what another buys)
        # would be hidden under it: it is drawn wider, so both stay visible.
        under = sum(1 for later in series[i + 1 :] if set(later.points) & set(drawn.points))
        px, py = [x for x, _ in ordered], [_clamp(y, y_range) for _, y in ordered]
        if len(ordered) > 1:
            line = ax.plot(px, py, color=color, linewidth=2 + 2 * under, dashes=dashes)[0]
            canvas.tag(line, "series", drawn.label)
        for x, low, high in drawn.spread:
            bar = ax.plot(
                [x, x], [_clamp(low, y_range), _clamp(high, y_range)], color=color,
                linewidth=1.5, alpha=0.6,
            )[0]  # fmt: skip
            canvas.tag(bar, "spread", f"{drawn.label}: {_fmt(low)} to {_fmt(high)} at "
                       f"{_fmt(x)}{x_unit}")  # fmt: skip
        marks = ax.plot(
            px, py, linestyle="none", marker="o", markersize=7 + 3 * under, color=color
        )[0]
        marks.set_clip_on(False)
        canvas.tag(
            marks, "point", [f"{drawn.label}: {_fmt(y)} at {_fmt(x)}{x_unit}" for x, y in ordered]
        )
        handles.append((Line2D([], [], color=color, linewidth=3, dashes=dashes), drawn.label))
    handles = handles[len(references) :] + handles[: len(references)]  # lines first
    plot_w = ax.get_position().width * canvas.width
    legend = ax.legend(
        [h for h, _ in handles],
        [_plain(label) for _, label in handles],
        loc="upper left",
        bbox_to_anchor=(1.0 + 14 / plot_w, 1.0),
        borderaxespad=0,
        frameon=False,
        fontsize=FONT_SIZE,
        handlelength=1.8,
        labelspacing=0.6,
    )  # 14 px clear of the plot, where the last points' markers stand
    for text in legend.get_texts():
        text.set_color(INK)
    return canvas.svg(title=title, css_class="chart-lines")
