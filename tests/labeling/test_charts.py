"""The charts drawn by matplotlib: they plot exactly the numbers given, their text is text, and
they are safe to put inside a page (no script, no style sheet, no id another chart repeats)."""

from __future__ import annotations

import re
from concurrent.futures import ThreadPoolExecutor
from xml.etree import ElementTree

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from web import charts

NS = "{http://www.w3.org/2000/svg}"


def tree(svg: str) -> ElementTree.Element:
    return ElementTree.fromstring(svg)


def axis_map(svg: ElementTree.Element, axis: str, values: list[float]):
    """px -> data along one axis, from the positions of its tick marks and their known values."""
    coord = "y" if axis == "ytick" else "x"
    px = [float(g.find(f".//{NS}use").get(coord)) for g in svg.iter(f"{NS}g") if _is(g, axis)]
    assert len(px) == len(values)
    (p0, v0), (p1, v1) = (px[0], values[0]), (px[-1], values[-1])
    return lambda p: v0 + (p - p0) * (v1 - v0) / (p1 - p0)


def _is(element: ElementTree.Element, css_class: str) -> bool:
    return css_class in (element.get("class") or "").split()


def plotted_points(svg: ElementTree.Element, *, x_max: float, y_range: tuple[float, float]):
    """The data coordinates of every point marker, read back from the SVG's pixels."""
    lo, hi = y_range
    to_x = axis_map(svg, "xtick", [x_max * i / 4 for i in range(5)])
    to_y = axis_map(svg, "ytick", [lo + (hi - lo) * i / 4 for i in range(5)])
    return [
        (to_x(float(use.get("x"))), to_y(float(use.get("y"))), use.find(f"{NS}title").text)
        for use in svg.iter(f"{NS}use")
        if _is(use, "point")
    ]


def texts(svg: ElementTree.Element, css_class: str | None = None) -> list[str]:
    groups = [g for g in svg.iter(f"{NS}g") if css_class is None or _is(g, css_class)]
    return [t.text for g in groups for t in g.iter(f"{NS}text")]


QUALITY = [(0.6, 0.962, "v1"), (1.4, 0.971, "v2"), (2.25, 0.9655, "v3")]
BASELINES = [("round_robin", 0.975), ("vlm_zero_shot", 0.973), ("zscore_merge", 0.974)]


def test_the_quality_chart_plots_exactly_the_points_and_baselines_given():
    y_range = charts.fit_range(
        [y for _, y, _ in QUALITY] + [v for _, v in BASELINES], low=0, high=1
    )
    svg = tree(
        charts.line_chart(
            QUALITY, baselines=BASELINES, title="q", x_label="Cost", y_label="NDCG@10",
            y_range=y_range,
        )
    )  # fmt: skip
    points = plotted_points(svg, x_max=2.5, y_range=y_range)
    assert [label for _, _, label in points] == ["v1: 0.962 at 0.6", "v2: 0.971 at 1.4",
                                                 "v3: 0.966 at 2.25"]  # fmt: skip
    for (x, y, _), (want_x, want_y, _) in zip(points, QUALITY, strict=True):
        assert x == pytest.approx(want_x, abs=1e-6) and y == pytest.approx(want_y, abs=1e-7)
    to_y = axis_map(
        svg, "ytick", [y_range[0] + (y_range[1] - y_range[0]) * i / 4 for i in range(5)]
    )
    drawn = {}
    for group in svg.iter(f"{NS}g"):
        if _is(group, "baseline"):
            path = group.find(f"{NS}path").get("d").split()
            drawn[group.find(f"{NS}title").text] = (to_y(float(path[2])), to_y(float(path[5])))
    assert drawn.keys() == {f"{name}: {charts._fmt(value)}" for name, value in BASELINES}
    for name, value in BASELINES:
        assert drawn[f"{name}: {charts._fmt(value)}"] == pytest.approx((value, value), abs=1e-7)
    assert texts(svg, "baseline-label") == ["round_robin 0.975", "vlm_zero_shot 0.973",
                                            "zscore_merge 0.974"]  # fmt: skip
    assert texts(svg, "point-label") == ["v3", "v2", "v1"]  # newest first


def test_the_simulation_chart_plots_every_series_point_and_spread():
    series = [
        charts.Series("iso_anchor", [(20.0, 0.7), (10.0, 0.65)], spread=[(20.0, 0.68, 0.72)]),
        charts.Series("random", [(10.0, 0.5), (20.0, 0.6)], is_dashed=True),
    ]
    svg = tree(
        charts.lines_chart(
            series, references=[("full annotation", 0.71)], title="t", x_label="Cost",
            y_label="NDCG@10", x_unit="%", x_max=100.0, y_range=(0.45, 0.75),
        )
    )  # fmt: skip
    points = plotted_points(svg, x_max=100.0, y_range=(0.45, 0.75))
    want = [(10.0, 0.65), (20.0, 0.7), (10.0, 0.5), (20.0, 0.6)]  # each series sorted by cost
    assert [(x, y) for x, y, _ in points] == [pytest.approx(p, abs=1e-6) for p in want]
    assert points[0][2] == "iso_anchor: 0.65 at 10%"
    assert texts(svg, "legend") == ["iso_anchor", "random", "full annotation 0.71"]
    assert sum(_is(g, "spread") for g in svg.iter(f"{NS}g")) == 1
    assert sum(_is(g, "reference") for g in svg.iter(f"{NS}g")) == 1


def test_the_budget_and_spend_charts_say_each_value():
    budget = tree(
        charts.stacked_bar(
            [charts.Segment("Spent", 12.5, "#2563eb"), charts.Segment("Left", 87.5, "#d1d5db")],
            title="Budget", unit="EUR",
        )
    )  # fmt: skip
    assert [t.text for t in budget.iter(f"{NS}text")] == ["Spent: 12.5 EUR", "Left: 87.5 EUR"]
    assert [g.find(f"{NS}title").text for g in budget.iter(f"{NS}g") if _is(g, "segment")] == [
        "Spent: 12.5 EUR", "Left: 87.5 EUR"
    ]  # fmt: skip
    spend = tree(charts.bar_chart([("Grades", 10.4), ("Comparisons", 2.1)], title="S", unit="EUR"))
    assert [t.text for t in spend.iter(f"{NS}text")] == [
        "Grades", "10.4 EUR", "Comparisons", "2.1 EUR"
    ]  # fmt: skip
    widths = [
        float(re.search(r"L ([\d.]+) ", g.find(f"{NS}path").get("d")).group(1))
        - float(re.search(r"M ([\d.]+) ", g.find(f"{NS}path").get("d")).group(1))
        for g in spend.iter(f"{NS}g")
        if _is(g, "chart-bar")
    ]
    assert widths[1] / widths[0] == pytest.approx(2.1 / 10.4, rel=1e-5)


def test_text_is_escaped_never_math_and_the_svg_is_safe_inline():
    svg = charts.bar_chart(
        [("<script>alert(1)</script>", 1.0), ("costs $5 and $6", 2.0)], title='A "title" & more'
    )
    root = tree(svg)
    assert root.get("role") == "img" and root.get("aria-label") == 'A "title" & more'
    assert root.find(f"{NS}title").text == 'A "title" & more'
    assert "<script" not in svg and "<style" not in svg and " on" not in svg.lower()
    assert "costs $5 and $6" in [t.text for t in root.iter(f"{NS}text")]  # not mathtext
    other = charts.line_chart([(1.0, 0.5, "v1")], title="q", x_label="x", y_label="y")
    ids = [e.get("id") for s in (svg, other) for e in tree(s).iter() if e.get("id")]
    assert len(ids) == len(set(ids)), "two charts on one page share no id"
    for s in (svg, other):
        for ref in re.findall(r'(?:href="#|url\(#)([^")]+)', s):
            assert f'id="{ref}"' in s


def test_the_same_numbers_give_the_same_svg_and_a_changed_number_a_new_one():
    first = charts.line_chart([(1.0, 0.5, "v1")], title="q", x_label="x", y_label="y")
    assert charts.line_chart([(1.0, 0.5, "v1")], title="q", x_label="x", y_label="y") == first
    assert charts.line_chart.uncached([(1.0, 0.5, "v1")], title="q", x_label="x", y_label="y") == (
        first
    )
    changed = charts.line_chart([(1.0, 0.51, "v1")], title="q", x_label="x", y_label="y")
    assert changed != first and "v1: 0.51 at 1" in changed


@settings(max_examples=15, deadline=None)
@given(
    st.lists(
        st.tuples(st.floats(0.01, 50), st.floats(0, 1)),
        min_size=1,
        max_size=12,
        unique_by=lambda p: p[0],
    ),
    st.lists(st.floats(0, 1), max_size=6),
)
def test_any_versions_and_baselines_are_plotted_as_given_and_their_labels_never_collide(
    versions, baseline_values
):
    points = [(x, y, f"v{i}") for i, (x, y) in enumerate(versions, start=1)]
    baselines = [(f"baseline_{i}", v) for i, v in enumerate(baseline_values)]
    y_range = charts.fit_range([y for _, y in versions] + baseline_values, low=0.0, high=1.0)
    svg = tree(
        charts.line_chart.uncached(
            points, baselines=baselines, title="q", x_label="x", y_label="y", y_range=y_range
        )
    )
    x_max = charts._nice_max(max(x for x, _ in versions))
    read = plotted_points(svg, x_max=x_max, y_range=y_range)
    for (x, y, _), (want_x, want_y, _) in zip(read, sorted(points), strict=True):
        assert x == pytest.approx(want_x, abs=1e-5 * x_max) and y == pytest.approx(want_y, abs=1e-6)
    ys = sorted(
        float(t.get("y"))
        for g in svg.iter(f"{NS}g")
        if _is(g, "baseline-label")
        for t in g.iter(f"{NS}text")
    )
    assert all(b - a >= charts.LABEL_GAP - 0.01 for a, b in zip(ys, ys[1:], strict=False))


def test_charts_drawn_in_parallel_threads_are_those_drawn_alone():
    # gunicorn serves pages from threads: nothing global (pyplot's state) may leak between charts.
    def draw(k: int) -> str:
        points = [(1.0 + k, 0.5 + k / 100, "v1"), (2.0 + k, 0.6, "v2")]
        return charts.line_chart.uncached(
            points, baselines=BASELINES, title=f"q{k}", x_label="x", y_label="y"
        )

    alone = [draw(k) for k in range(8)]
    with ThreadPoolExecutor(max_workers=4) as pool:
        assert list(pool.map(draw, range(8))) == alone
