"""A lead reads the dashboard with its charts and a data scientist downloads qrels, in Chromium.

Drives Debian's Chromium (never a downloaded browser) through Playwright against the live server
with the demo project. Screenshots go to test-artifacts/screenshots/.
"""

from __future__ import annotations

import io
from decimal import Decimal
from pathlib import Path

import pytest
from django.contrib.auth import get_user_model
from django.core.management import call_command

from active_selection.models import SimulationReport
from labeling.models import (
    CandidatePage,
    CompareOutcome,
    ItemGrade,
    Judgment,
    PageSlot,
    Project,
    Strategy,
    Task,
    TaskKind,
    TaskStatus,
)
from ranking.models import RerankerVersion
from tests.labeling.lead_factories import simulation_results

from .chromium import SCREENSHOTS, overlapping_chart_texts
from .chromium import log_in as chromium_log_in

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def page_task(project: Project, query) -> Task:
    page = CandidatePage.objects.create(project=project, query=query)
    items = list(query.items.order_by("modality", "upstream_rank")[:4])
    PageSlot.objects.bulk_create(
        [PageSlot(page=page, position=i, item=item) for i, item in enumerate(items)]
    )
    return Task.objects.create(
        project=project, kind=TaskKind.GRADE_PAGE, page=page, status=TaskStatus.DONE,
        judgments_required=2,
    )  # fmt: skip


def judge_page(task: Task, annotator, grades: list[int]) -> None:
    items = [slot.item for slot in task.page.slots.order_by("position")]
    judgment = Judgment.objects.create(
        task=task, project=task.project, annotator=annotator, kind=TaskKind.GRADE_PAGE,
        cost=task.project.grade_cost * len(items), duration_ms=12_000,
    )  # fmt: skip
    ItemGrade.objects.bulk_create(
        [ItemGrade(judgment=judgment, item=i, grade=g) for i, g in zip(items, grades, strict=False)]
    )


@pytest.fixture
def demo_with_history():
    """The demo, two pages graded by both annotators, one comparison, two reranker versions."""
    call_command("load_demo", stdout=io.StringIO())
    project = Project.objects.get(slug="demo")
    users = get_user_model().objects.in_bulk(["annotator1", "annotator2"], field_name="username")
    one, two = users["annotator1"], users["annotator2"]
    queries = list(project.queries.filter(split="train").order_by("external_id")[:2])
    first, second = page_task(project, queries[0]), page_task(project, queries[1])
    judge_page(first, one, [3, 2, 1, 0])
    judge_page(first, two, [3, 1, 1, 0])
    judge_page(second, one, [4, 2, 0, 0])
    judge_page(second, two, [4, 2, 0, 1])
    items = list(queries[0].items.order_by("pk")[:2])
    compare = Task.objects.create(
        project=project, kind=TaskKind.COMPARE, anchor=items[0], other=items[1],
        status=TaskStatus.DONE, judgments_required=2,
    )  # fmt: skip
    for annotator in (one, two):
        Judgment.objects.create(
            task=compare, project=project, annotator=annotator, kind=TaskKind.COMPARE,
            outcome=CompareOutcome.ANCHOR_BETTER, cost=project.compare_cost, duration_ms=4_000,
        )  # fmt: skip
    RerankerVersion.objects.create(
        project=project, number=1, status="retired", cost_spent=Decimal("1.2"), gold_ndcg10=0.58
    )
    RerankerVersion.objects.create(
        project=project, number=2, status="active", cost_spent=Decimal("3.3"), gold_ndcg10=0.71,
        metrics={"measured_on": "gold", "baselines": {"zscore_merge": 0.52, "round_robin": 0.47}},
    )  # fmt: skip
    return project, first


def log_in(browser, live_server, username: str, password: str):
    return chromium_log_in(
        browser, live_server, username, password, height=1000, accept_downloads=True
    )


def test_lead_sees_dashboard_charts_and_scientist_downloads_qrels(
    live_server, chromium, demo_with_history
):
    project, first = demo_with_history

    context, page, errors = log_in(chromium, live_server, "lead", "pagewise-lead")
    page.goto(f"{live_server.url}/projects/demo/dashboard/")
    assert page.locator("svg.chart").count() == 3  # budget, spend, quality
    assert page.locator("#quality svg use.point").count() == 2
    assert page.locator("#quality svg g.baseline").count() == 2
    assert page.locator("#budget svg g.segment").count() >= 1
    assert overlapping_chart_texts(page) == []
    assert "Krippendorff" in page.text_content("#agreement")
    assert page.locator("#annotators tbody tr").count() == 2
    page.screenshot(path=SCREENSHOTS / "lead-dashboard.png", full_page=True)
    page.goto(f"{live_server.url}/projects/demo/review/")
    assert page.locator('.review-entry[data-kind="grades"]').count() == 2
    page.screenshot(path=SCREENSHOTS / "lead-review.png", full_page=True)
    page.goto(f"{live_server.url}/projects/demo/settings/")
    assert "Simulate before spending" in page.text_content("#simulate")
    assert page.locator("#simulate button", has_text="Run simulation").count() == 1
    assert errors == []
    context.close()

    context, page, errors = log_in(chromium, live_server, "scientist", "pagewise-scientist")
    page.goto(f"{live_server.url}/projects/demo/exports/")
    page.screenshot(path=SCREENSHOTS / "scientist-exports.png", full_page=True)
    with page.expect_download() as info:
        page.click('a[data-format="qrels"]')
    download = info.value
    assert download.suggested_filename.startswith("demo-qrels-")
    assert download.suggested_filename.endswith("Z.txt")
    lines = Path(download.path()).read_text().splitlines()
    rows = [line.split() for line in lines]
    assert rows and all(len(row) == 4 and row[1] == "0" for row in rows)
    slots = list(first.page.slots.order_by("position").values_list("item__external_id", flat=True))
    labels = {(qid, docid): int(grade) for qid, _, docid, grade in rows}
    qid = first.page.query.external_id
    assert labels[(qid, slots[0])] == 3 and labels[(qid, slots[1])] == 1  # lower median of 2, 1
    gold = project.items.filter(query__split="gold", gold_grade__isnull=False).count()
    assert len(rows) == 8 + gold
    assert errors == []
    context.close()


def test_lead_watches_a_simulation_move_then_applies_what_it_recommends(live_server, chromium):
    call_command("load_demo", stdout=io.StringIO())
    project = Project.objects.get(slug="demo")
    Project.objects.filter(pk=project.pk).update(strategy=Strategy.RANDOM)
    report = SimulationReport.objects.create(
        project=project, status=SimulationReport.Status.RUNNING, runs_done=3, runs_total=24
    )
    context, page, errors = log_in(chromium, live_server, "lead", "pagewise-lead")
    page.goto(f"{live_server.url}/projects/demo/settings/")
    bar = page.locator("#simulate [role=progressbar]")
    assert bar.get_attribute("aria-valuenow") == "3"
    assert page.text_content("#simulate-count") == "3 of 24"

    # The worker stores its progress; the card polls for it and moves the bar without a reload.
    SimulationReport.objects.filter(pk=report.pk).update(runs_done=12)
    page.wait_for_function(
        "document.querySelector('#simulate [role=progressbar]').getAttribute('aria-valuenow') === '12'"
    )
    assert page.text_content("#simulate-count") == "12 of 24"
    assert bar.locator("span").evaluate("span => span.style.width") == "50%"

    # When it ends, the card reloads itself with the curve and the recommendation.
    SimulationReport.objects.filter(pk=report.pk).update(
        status=SimulationReport.Status.DONE, runs_done=24,
        recommended_strategy=Strategy.ISO_ANCHOR, results=simulation_results(),
    )  # fmt: skip
    page.wait_for_selector("#simulate-chart svg", timeout=20_000)
    assert page.locator("#simulate-chart svg g.series").count() == 4
    assert overlapping_chart_texts(page, "#simulate-chart svg") == []
    page.locator("#simulate-chart").screenshot(path=SCREENSHOTS / "simulation-chart.png")
    assert "20%" in page.text_content("#simulate-verdict")
    page.screenshot(path=SCREENSHOTS / "lead-simulation.png", full_page=True)
    assert "paired difference" in page.text_content("#simulate-verdict")
    assert "range over seeds" in page.text_content("#simulate-table")
    apply = page.locator("#simulate button", has_text="Apply")
    apply.click()
    # Apply asks first and says what will change; nothing changes before the lead confirms.
    page.wait_for_selector("#simulate-confirm")
    assert "The strategy changes from Grade random items to Iso-label anchor search." in (
        page.text_content("#simulate-confirm")
    )
    project.refresh_from_db()
    assert project.strategy == Strategy.RANDOM
    page.screenshot(path=SCREENSHOTS / "lead-simulation-confirm.png", full_page=True)
    page.locator("#simulate-confirm button", has_text="Yes, use").click()
    page.wait_for_load_state()
    page.wait_for_selector("#simulate")
    project.refresh_from_db()
    assert project.strategy == Strategy.ISO_ANCHOR
    assert page.locator("#simulate button", has_text="Apply").count() == 0
    assert errors == []
    context.close()
