"""The lead's dashboard: budget and savings, agreement (Krippendorff's alpha), SVG charts, review."""

from __future__ import annotations

import re
from decimal import Decimal
from xml.etree import ElementTree

import pytest
from django.urls import reverse

from active_selection.models import SimulationReport
from labeling.models import Adjudication
from labeling.selectors import human_grades
from ranking.models import RerankerVersion
from web import charts, dashboard

from .lead_factories import small_project

# Krippendorff (2011), "Computing Krippendorff's Alpha-Reliability", section C: 4 coders, 12 units,
# values 1..5 with missing data. Published: nominal 0.743, ordinal 0.815, interval 0.849.
TEXTBOOK = [
    [1, 1, 1], [2, 2, 3, 2], [3, 3, 3, 3], [3, 3, 3, 3], [2, 2, 2, 2], [1, 2, 3, 4],
    [4, 4, 4, 4], [1, 1, 2, 1], [2, 2, 2, 2], [5, 5, 5], [1, 1], [3],
]  # fmt: skip


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # make_user sets real passwords; PBKDF2's cost (~0.5 s each) is not what these tests check.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.mark.parametrize(
    ("level", "expected"), [("nominal", 0.743), ("ordinal", 0.815), ("interval", 0.849)]
)
def test_krippendorff_alpha_matches_the_textbook_example(level, expected):
    assert dashboard.krippendorff_alpha(TEXTBOOK, level=level) == pytest.approx(expected, abs=5e-4)


def test_krippendorff_alpha_is_one_for_perfect_agreement_and_undefined_without_variation():
    assert dashboard.krippendorff_alpha([[0, 0], [2, 2], [4, 4]]) == pytest.approx(1.0)
    assert dashboard.krippendorff_alpha([[1, 1], [1, 1]]) is None
    assert dashboard.krippendorff_alpha([[1], [2]]) is None  # nothing pairable


def test_krippendorff_alpha_of_two_coders_by_hand():
    # Units (0,0), (1,1), (0,1): coincidences o00=2, o11=2, o01=o10=1; n0=n1=3, n=6.
    # Nominal: D_o = 2/6, D_e = 2*3*3/(6*5) = 0.6 → alpha = 1 - (1/3)/0.6 = 4/9.
    assert dashboard.krippendorff_alpha([[0, 0], [1, 1], [0, 1]], level="nominal") == pytest.approx(
        4 / 9
    )


def test_percent_agreement_counts_agreeing_pairs():
    assert dashboard.percent_agreement([["a", "a", "b"], ["x", "x"]]) == pytest.approx(2 / 4)
    assert dashboard.percent_agreement([["a"]]) is None


@pytest.fixture
def small(project, make_user):
    return small_project(project, make_user)


def test_dashboard_numbers_on_a_small_project(project, small):
    summary = dashboard.dashboard_summary(project=project)
    assert summary["budget"]["spent"] == Decimal("1.40")
    assert summary["spend_by_kind"]["grade_page"]["cost"] == Decimal("1.20")
    assert summary["spend_by_kind"]["compare"]["cost"] == Decimal("0.20")
    assert summary["spend_by_kind"]["compare"]["judgments"] == 4
    savings = summary["savings"]
    # No version measured on gold: nothing to compare the 1.40 spent with, and no saving claimed.
    assert savings["state"] == "no_quality" and savings["estimate"] is None
    assert savings["train_items"] == 8 and savings["full_cost"] == Decimal("0.80")


def _version(project, ndcg: float):
    return RerankerVersion.objects.create(
        project=project, number=1, status="active", cost_spent=Decimal("1.4"), gold_ndcg10=ndcg,
        metrics={"measured_on": "gold"},
    )  # fmt: skip


def _report(project, per_seed: dict[int, list[float]]):
    """A done simulation whose full annotation scored per_seed[seed] at budgets 0.1/0.5/1.0."""
    budgets = (0.1, 0.5, 1.0)
    rows = [
        {
            "strategy": "full",
            "budget": b,
            "single_modal": True,
            "cost_fraction": b,
            "ndcg10_mean": sum(v[i] for v in per_seed.values()) / len(per_seed),
            "per_seed": [{"seed": seed, "ndcg10": v[i]} for seed, v in per_seed.items()],
        }  # fmt: skip
        for i, b in enumerate(budgets)
    ]
    return SimulationReport.objects.create(
        project=project, status="done", results={"results": rows}, runs_done=1, runs_total=1
    )


def test_savings_compare_the_quality_now_with_full_annotations_estimated_cost(
    client, project, make_user, small
):
    project.grade_cost = Decimal("1.00")  # grading the 8 train items: 8.00; spent 1.40
    project.save()
    _version(project, 0.70)
    result = dashboard.savings(project=project, spent=Decimal("1.40"))
    assert result["state"] == "no_simulation" and result["quality"] == 0.70

    # Seed 0 reaches 0.70 halfway from 0.1 (0.60) to 0.5 (0.80): at 0.3; seed 1 at 0.5 exactly.
    _report(project, {0: [0.60, 0.80, 0.90], 1: [0.50, 0.70, 0.90]})
    result = dashboard.savings(project=project, spent=Decimal("1.40"))
    estimate = result["estimate"]
    assert result["state"] == "estimated" and result["report"]["seeds"] == 2
    assert estimate["low"] == pytest.approx(0.3) and estimate["high"] == pytest.approx(0.5)
    assert estimate["fraction"] == pytest.approx(0.4)
    assert (estimate["cost_low"], estimate["cost"], estimate["cost_high"]) == (
        Decimal("2.40"), Decimal("3.20"), Decimal("4.00"),
    )  # fmt: skip
    assert (estimate["saved_low"], estimate["saved"], estimate["saved_high"]) == (
        Decimal("1.00"), Decimal("1.80"), Decimal("2.60"),
    )  # fmt: skip
    client.force_login(make_user("boss", role="lead", project=project))
    html = client.get(reverse("lead-dashboard", args=[project.slug])).content.decode()
    assert "Estimate, not a measurement" in html and "at 40% of its cost (30–50% over" in html
    assert "Estimated saving: 1.80 USD (from 1.00 to 2.60" in html


def test_savings_claim_nothing_when_full_annotation_never_reached_the_quality(project, small):
    _version(project, 0.95)
    _report(project, {0: [0.60, 0.80, 0.90]})
    result = dashboard.savings(project=project, spent=Decimal("1.40"))
    assert result["state"] == "not_reached" and result["estimate"] is None
    assert result["report"]["best"] == 0.90


def test_savings_before_any_judgment_say_there_is_nothing_to_compare(client, project, make_user):
    from labeling.models import Item, Query

    query = Query.objects.create(project=project, external_id="q", text="q")
    Item.objects.create(project=project, query=query, external_id="i", modality="text", title="t")
    client.force_login(make_user("boss", role="lead", project=project))
    html = client.get(reverse("lead-dashboard", args=[project.slug])).content.decode()
    assert "Nothing to compare yet" in html
    assert "100" not in html.split('id="savings"')[1].split("</section>")[0]
    assert "saved" not in html.split('id="savings"')[1].split("</section>")[0]


def test_agreement_on_repeated_tasks_only(project, small):
    result = dashboard.agreement(project=project)
    # Only q1 was graded twice: units (3,3) (2,1) (0,0) (1,1); q2 (judged once) is left out.
    expected = dashboard.krippendorff_alpha([[3, 3], [2, 1], [0, 0], [1, 1]], level="ordinal")
    assert result["level"] == "ordinal"
    assert result["grade_units"] == 4
    assert result["grade_alpha"] == pytest.approx(expected)
    assert 0 < expected < 1
    assert result["compare_tasks"] == 2
    assert result["compare_agreement"] == pytest.approx(0.5)
    per = {row["annotator"]: row for row in result["per_annotator"]}
    assert per["ann1"]["graded_units"] == 4 and per["ann2"]["compare_pairs"] == 2


def test_throughput_per_annotator(project, small):
    rows = {row["annotator"]: row for row in dashboard.throughput(project=project)}
    assert rows["ann1"]["judgments"] == 4  # 2 grades + 2 comparisons
    assert rows["ann1"]["median_seconds"] == pytest.approx(7.5)  # 10, 20, 5, 5 s
    assert rows["ann1"]["per_hour"] == pytest.approx(2.0)  # 4 judgments over 2 h


def test_charts_are_svg_with_escaped_text():
    svg = charts.bar_chart([("<grades>", 1.2), ("Comparisons", 0.2)], title="Spend & more")
    tree = ElementTree.fromstring(svg)  # well-formed XML
    assert tree.tag.endswith("svg")
    assert "&lt;grades&gt;" in svg and "<grades>" not in svg
    line = charts.line_chart(
        [(1.0, 0.5, "v1"), (2.0, 0.7, "v2")], baselines=[("zscore", 0.6)],
        title="q", x_label="cost", y_label="ndcg", y_range=(0, 1),
    )  # fmt: skip
    tree = ElementTree.fromstring(line)
    ns = "{http://www.w3.org/2000/svg}"
    assert len(tree.findall(f".//{ns}use[@class='point']")) == 2
    assert tree.find(f".//{ns}g[@class='series']/{ns}path") is not None
    assert "stroke-dasharray" in tree.find(f".//{ns}g[@class='baseline']/{ns}path").get("style")


def test_a_line_whose_points_a_later_line_repeats_is_drawn_wider_so_both_show():
    shared = [(0.1, 0.5), (0.3, 0.8)]
    svg = charts.lines_chart(
        [
            charts.Series("iso_anchor", [*shared, (0.45, 0.79)]),
            charts.Series("top_p", shared),
            charts.Series("random", [(0.1, 0.4), (0.3, 0.6)]),
        ],
        title="t", x_label="cost", y_label="ndcg",
    )  # fmt: skip
    ns = "{http://www.w3.org/2000/svg}"
    widths = [
        float(re.search(r"stroke-width: ([\d.]+)", line.get("style")).group(1))
        for line in ElementTree.fromstring(svg).findall(f".//{ns}g[@class='series']/{ns}path")
    ]
    assert widths[0] > widths[1] == widths[2]


def test_dashboard_page_shows_charts_and_empty_states(client, project, small, make_user):
    lead = make_user("boss", role="lead", project=project)
    client.force_login(lead)
    url = reverse("lead-dashboard", args=[project.slug])
    html = client.get(url).content.decode()
    assert html.count("<svg") == 2  # budget and spend; no version yet
    assert "No reranker version yet — it trains after 50 new labels" in html
    RerankerVersion.objects.create(
        project=project, number=1, status="retired", cost_spent=Decimal("0.5"), gold_ndcg10=0.61
    )
    RerankerVersion.objects.create(
        project=project, number=2, status="active", cost_spent=Decimal("1.4"), gold_ndcg10=0.72,
        metrics={"baselines": {"zscore_merge": 0.55, "round_robin": 0.5}, "measured_on": "gold"},
    )  # fmt: skip
    html = client.get(url).content.decode()
    assert html.count("<svg") == 3
    assert html.count('class="point"') == 2 and html.count('class="baseline"') == 2
    assert "zscore_merge" in html
    data = client.get(reverse("api-dashboard", args=[project.slug])).json()
    assert Decimal(data["budget"]["spent"]) == Decimal("1.40")
    assert Decimal(data["savings"]["full_cost"]) == Decimal("0.80")
    assert data["quality"]["baselines"] == {"zscore_merge": 0.55, "round_robin": 0.5}


def test_lead_adjudication_overrides_the_median_in_training_labels(
    client, project, small, make_user
):
    lead = make_user("boss", role="lead", project=project)
    client.force_login(lead)
    disputed = small["items1"][1]  # graded 2 and 1 → lower median 1
    assert human_grades(query_ids=[disputed.query_id])[disputed.pk] == 1
    page = client.get(reverse("lead-review", args=[project.slug])).content.decode()
    assert disputed.external_id in page or disputed.title in page
    response = client.post(
        reverse("lead-review", args=[project.slug]), {"item": disputed.pk, "grade": 2}
    )
    assert response.status_code == 302
    assert Adjudication.objects.get(item=disputed).grade == 2
    assert human_grades(query_ids=[disputed.query_id])[disputed.pk] == 2
    bad = client.post(
        reverse("lead-review", args=[project.slug]), {"item": disputed.pk, "grade": 9}
    )
    assert bad.status_code == 302 and Adjudication.objects.get(item=disputed).grade == 2
    junk = client.post(reverse("lead-review", args=[project.slug]), {"item": "x", "grade": ""})
    assert junk.status_code == 302


def test_settings_form_validates_with_clear_messages(client, project, make_user):
    lead = make_user("boss", role="lead", project=project)
    client.force_login(lead)
    url = reverse("lead-settings", args=[project.slug])
    form = {
        "grade_names": "Bad\nGood", "grade_cost": "0.2", "compare_cost": "0.1", "currency": "eur",
        "budget": "-5", "strategy": "top_p", "page_size": "4", "top_band": "9",
        "retrain_threshold": "10", "judgments_per_task": "2",
    }  # fmt: skip
    html = client.post(url, form).content.decode()
    assert "three-letter currency code" in html
    assert "greater than or equal to 0" in html
    project.refresh_from_db()
    assert project.currency == "USD"
    form.update(currency="EUR", budget="50")
    html = client.post(url, form).content.decode()
    assert "cannot be larger than the page size" in html
    form.update(top_band="2")
    assert client.post(url, form).status_code == 302
    project.refresh_from_db()
    assert project.grade_names == ["Bad", "Good"] and project.budget == Decimal("50")
    assert project.judgments_per_task == 2 and project.strategy == "top_p"
    assert project.budget_policy == "breadth_first", "a field the form did not send keeps its value"
    form.update(strategy="iso_anchor", budget_policy="deepest_first")
    html = client.post(url, form).content.decode()
    assert "is not a valid choice" in html
    form.update(budget_policy="per_query")
    assert client.post(url, form).status_code == 302
    project.refresh_from_db()
    assert (project.strategy, project.budget_policy) == ("iso_anchor", "per_query")


def test_settings_refuse_to_drop_grades_in_use(client, project, small, make_user):
    lead = make_user("boss", role="lead", project=project)
    client.force_login(lead)
    response = client.patch(
        reverse("api-settings", args=[project.slug]), {"grade_names": ["No", "Yes"]},
        content_type="application/json",
    )  # fmt: skip
    assert response.status_code == 400
    assert "grade_names" in response.json()["extra"]["fields"]


def test_members_page_adds_changes_and_removes(client, project, make_user):
    lead = make_user("boss", role="lead", project=project)
    make_user("newbie")
    client.force_login(lead)
    url = reverse("lead-members", args=[project.slug])
    client.post(url, {"action": "add", "username": "newbie", "role": "annotator"})
    assert project.memberships.get(user__username="newbie").role == "annotator"
    response = client.post(
        url, {"action": "add", "username": "ghost", "role": "annotator"}, follow=True
    )
    assert "No user named" in response.content.decode()
    client.post(url, {"action": "change", "username": "newbie", "role": "scientist"})
    assert project.memberships.get(user__username="newbie").role == "scientist"
    response = client.post(url, {"action": "remove", "username": "boss"}, follow=True)
    assert "at least one lead" in response.content.decode()
    client.post(url, {"action": "remove", "username": "newbie"})
    assert not project.memberships.filter(user__username="newbie").exists()


def test_import_page_queues_a_run_whose_page_lists_every_problem_and_past_runs(
    client, project, make_user, django_capture_on_commit_callbacks
):
    from django.core.files.uploadedfile import SimpleUploadedFile

    lead = make_user("boss", role="lead", project=project)
    client.force_login(lead)
    url = reverse("lead-import", args=[project.slug])
    bad = b'{"type": "query", "id": "q1"}\n{"type": "item"}\nnot json\n'
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"file": SimpleUploadedFile("bad.jsonl", bad)})
    assert response.status_code == 302
    html = client.get(response["Location"]).content.decode()
    assert "nothing was stored" in html and html.count('<tr><td class="num">') >= 3
    good = b'{"type": "query", "id": "q1", "text": "cats"}\n{"type": "item", "id": "d1", "query": "q1", "modality": "text", "title": "A cat"}\n'
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(url, {"file": SimpleUploadedFile("good.jsonl", good)})
    html = client.get(response["Location"]).content.decode()
    assert "1 queries, 1 items" in html and "good.jsonl" in html
    html = client.get(url).content.decode()
    assert "good.jsonl" in html and "succeeded" in html and "failed" in html
    assert client.post(url, {}).status_code == 400
