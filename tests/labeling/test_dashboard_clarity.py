"""Dashboard clarity: the quality axis fits the data, baseline labels never overlap, a version
below a label-free baseline is called out, and scientists can read the dashboard."""

from __future__ import annotations

import math
import re
from decimal import Decimal
from xml.etree import ElementTree

import pytest
from django.urls import reverse
from hypothesis import given
from hypothesis import strategies as st

from ranking.models import RerankerVersion
from web import charts

NS = "{http://www.w3.org/2000/svg}"
scores = st.floats(min_value=0.0, max_value=1.0, allow_nan=False)


@given(st.lists(scores, min_size=1, max_size=12))
def test_the_fitted_range_holds_every_value_on_round_ticks_inside_zero_to_one(values):
    low, high = charts.fit_range(values, low=0.0, high=1.0)
    assert 0.0 <= low <= min(values) and max(values) <= high <= 1.0
    assert high > low
    step = (high - low) / 4
    mantissa = step / 10 ** math.floor(math.log10(step) + 1e-9)
    is_round = any(mantissa == pytest.approx(m, rel=1e-6) for m in (1, 2, 2.5, 5, 10))
    assert is_round or high == 1.0 or low == 0.0, (low, high)


def test_values_close_together_get_an_axis_that_shows_their_differences():
    assert charts.fit_range([0.96, 0.97, 0.99], low=0.0, high=1.0) == (0.92, 1.0)
    svg = charts.line_chart(
        [(1.0, 0.96, "v1"), (2.0, 0.99, "v2")], baselines=[], title="q", x_label="x",
        y_label="y", y_range=charts.fit_range([0.96, 0.99], low=0.0, high=1.0),
    )  # fmt: skip
    ticks = [
        text.text
        for group in ElementTree.fromstring(svg).iter(f"{NS}g")
        if group.get("class") == "ytick"
        for text in group.iter(f"{NS}text")
    ]
    assert ticks == ["0.92", "0.94", "0.96", "0.98", "1"]


@given(st.lists(st.floats(min_value=0, max_value=300, allow_nan=False), min_size=1, max_size=8))
def test_spread_labels_are_apart_and_inside_when_there_is_room(ys):
    placed = charts.spread_labels(ys, top=10, bottom=300)
    ordered = sorted(placed)
    assert all(b - a >= charts.LABEL_GAP - 1e-9 for a, b in zip(ordered, ordered[1:], strict=False))
    assert max(placed) <= 300 + 1e-9
    if len(ys) * charts.LABEL_GAP < 290:
        assert min(placed) >= 10 - charts.LABEL_GAP * len(ys)


def test_baseline_labels_with_nearly_equal_values_do_not_overlap():
    svg = charts.line_chart(
        [(1.0, 0.58, "v1")],
        baselines=[("zscore_merge", 0.521), ("round_robin", 0.52), ("vlm_zero_shot", 0.519)],
        title="q", x_label="x", y_label="y", y_range=(0.0, 1.0),
    )  # fmt: skip
    ys = sorted(
        float(text.get("y"))
        for group in ElementTree.fromstring(svg).iter(f"{NS}g")
        if group.get("class") == "baseline-label"
        for text in group.iter(f"{NS}text")
    )
    assert len(ys) == 3
    assert all(b - a >= charts.LABEL_GAP - 0.05 for a, b in zip(ys, ys[1:], strict=False))


@pytest.fixture
def versions(project):
    RerankerVersion.objects.create(
        project=project, number=1, status="active", cost_spent=Decimal("2"), gold_ndcg10=0.41,
        metrics={"measured_on": "gold", "baselines": {"round_robin": 0.47, "zscore_merge": 0.39}},
    )  # fmt: skip


def test_a_version_below_a_label_free_baseline_is_called_out(client, project, make_user, versions):
    client.force_login(make_user("boss", role="lead", project=project))
    html = client.get(reverse("lead-dashboard", args=[project.slug])).content.decode()
    note = re.search(r'id="below-baseline"[^>]*>(.*?)</p>', html, re.S).group(1)
    assert "v1" in note and "0.410" in note and "round_robin" in note and "0.470" in note
    assert "zscore_merge" not in note, "only the baselines it does not beat"


def test_no_note_when_the_version_beats_every_baseline(client, project, make_user):
    RerankerVersion.objects.create(
        project=project, number=1, status="active", cost_spent=Decimal("2"), gold_ndcg10=0.6,
        metrics={"measured_on": "gold", "baselines": {"round_robin": 0.47}},
    )  # fmt: skip
    client.force_login(make_user("boss", role="lead", project=project))
    html = client.get(reverse("lead-dashboard", args=[project.slug])).content.decode()
    assert 'id="below-baseline"' not in html


def test_a_scientist_reads_the_dashboard_and_its_api(client, project, make_user, versions):
    client.force_login(make_user("sci", role="scientist", project=project))
    response = client.get(reverse("lead-dashboard", args=[project.slug]))
    assert response.status_code == 200 and 'id="quality"' in response.content.decode()
    assert client.get(reverse("api-dashboard", args=[project.slug])).status_code == 200
    home = client.get(reverse("home")).content.decode()
    assert reverse("lead-dashboard", args=[project.slug]) in home
