"""The search loop on the database: pages, then comparisons, then pairs; every step idempotent."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from active_selection import services
from active_selection.models import (
    AnchorSearch,
    ImpliedGrade,
    PairSource,
    PreferencePair,
    ProbeTask,
)
from labeling.models import (
    CompareOutcome,
    Item,
    ItemGrade,
    Judgment,
    Project,
    Query,
    Task,
    TaskKind,
    TaskStatus,
)
from labeling.selectors import budget_status

TRUE_TEXT = [4, 3, 2, 1, 0, 0]  # upstream order agrees with truth within a modality
TRUE_IMAGE = [4, 3, 3, 2, 1, 1, 0, 0, 0, 0]


def make_world(project: Project, queries: int = 1) -> dict[int, int]:
    truth = {}
    for q in range(queries):
        query = Query.objects.create(project=project, external_id=f"q{q}", text=f"query {q}")
        for modality, grades, scale in (("text", TRUE_TEXT, 10.0), ("image", TRUE_IMAGE, 1.0)):
            for rank, grade in enumerate(grades, start=1):
                item = Item.objects.create(
                    project=project, query=query, external_id=f"{q}-{modality}-{rank}", modality=modality,
                    title=f"{modality} {rank}", upstream_score=scale * (100 - rank), upstream_rank=rank,
                )  # fmt: skip
                truth[item.pk] = grade
    return truth


@pytest.fixture
def world(project, make_user):
    project.top_band = 3
    project.page_size = 6
    project.budget = Decimal("100")
    project.save()
    truth = make_world(project)
    return project, truth, make_user("ann1"), make_user("ann2")


def judge(task: Task, annotator, *, truth: dict[int, int]) -> Judgment:
    task = Task.objects.get(pk=task.pk)
    if task.kind == TaskKind.GRADE_PAGE:
        items = list(task.page.slots.values_list("item_id", flat=True))
        judgment = Judgment.objects.create(
            task=task, project=task.project, annotator=annotator, client_uuid=uuid.uuid4(),
            kind=TaskKind.GRADE_PAGE, cost=task.project.grade_cost * len(items),
        )  # fmt: skip
        ItemGrade.objects.bulk_create(
            [ItemGrade(judgment=judgment, item_id=i, grade=truth[i]) for i in items]
        )
    else:
        a, b = truth[task.anchor_id], truth[task.other_id]
        outcome = (
            CompareOutcome.EQUAL
            if a == b
            else (CompareOutcome.ANCHOR_BETTER if a > b else CompareOutcome.OTHER_BETTER)
        )
        judgment = Judgment.objects.create(
            task=task, project=task.project, annotator=annotator, client_uuid=uuid.uuid4(),
            kind=TaskKind.COMPARE, outcome=outcome, cost=task.project.compare_cost,
        )  # fmt: skip
    Task.objects.filter(pk=task.pk).update(status=TaskStatus.DONE)
    return judgment


def test_page_tasks_hold_the_top_band_of_each_modality_interleaved(world):
    project, truth, *_ = world
    assert services.create_page_tasks(project=project) == 1
    task = Task.objects.get(kind=TaskKind.GRADE_PAGE)
    slots = list(task.page.slots.order_by("position").values_list("item__external_id", flat=True))
    assert slots == ["0-text-1", "0-image-1", "0-text-2", "0-image-2", "0-text-3", "0-image-3"]
    assert services.create_page_tasks(project=project) == 0, "planning twice creates nothing twice"


def test_no_page_task_is_created_that_the_budget_cannot_pay(project):
    make_world(project, queries=3)
    project.budget = Decimal("1.3")  # 0.10 per grade: two pages of 6 items fit, not three
    project.page_size = 6
    project.strategy = "top_p"  # keeps nothing back for calibration comparisons
    project.save()
    assert services.create_page_tasks(project=project) == 2


def _answer_everything(project: Project, annotator, truth: dict[int, int]) -> None:
    while task := Task.objects.filter(project=project, status=TaskStatus.OPEN).first():
        services.handle_judgment(judgment_id=judge(task, annotator, truth=truth).pk)


@pytest.mark.parametrize("policy,pages_first", [("breadth_first", 3), ("per_query", 1)])
def test_the_budget_policy_decides_what_pages_leave_to_the_searches(
    project, make_user, policy, pages_first
):
    truth = make_world(project, queries=4)
    # A page is 6 grades (0.60); a query's two searches (text into image's tail, image into
    # text's) are expected to cost 12 comparisons (0.60): per_query keeps half of the budget
    # back. Both policies keep 10% for calibration comparisons besides: 2.40 x 0.9 buys three
    # pages breadth first, 2.40 x 0.5 x 0.9 = 1.08 one page per query.
    project.page_size, project.budget, project.budget_policy = 6, Decimal("2.40"), policy
    project.save()
    assert services.create_page_tasks(project=project) == pages_first
    if policy == "per_query":
        assert services.page_allowance(project=project) is not None
        _answer_everything(project, make_user("ann1"), truth)
        # One page bought first: its query's two searches (text into image, image into text).
        assert AnchorSearch.objects.filter(status=AnchorSearch.Status.DONE).count() == 2
        assert services.page_allowance(project=project) is None, "settled: the rest buys pages"
        left = budget_status(project=project)["left"]
        assert services.create_page_tasks(project=project) == int(left // Decimal("0.60")) >= 1
    project.strategy = "top_p"
    project.budget_policy = "per_query"
    assert services.page_allowance(project=project) is None, "a policy of iso_anchor only"


def test_the_dashboard_says_what_the_per_query_policy_keeps_for_the_searches(
    client, project, make_user
):
    make_world(project, queries=4)
    project.budget = Decimal("2.40")
    project.save()
    client.force_login(make_user("boss", role="lead", project=project))
    url = reverse("lead-dashboard", args=[project.slug])
    assert 'id="budget-policy"' not in client.get(url).content.decode(), "breadth first keeps none"
    project.budget_policy = "per_query"
    project.save()
    html = client.get(url).content.decode()
    assert "pages leave about 1.20 USD (50%) of the budget to the anchor searches" in html


@pytest.mark.parametrize(
    "strategy,policy,kept", [("iso_anchor", "breadth_first", True),
                             ("top_p_cal", "per_query", True), ("top_p", "breadth_first", False)],
)  # fmt: skip
def test_the_dashboard_and_settings_say_what_calibration_keeps_whatever_the_policy(
    client, project, make_user, strategy, policy, kept
):
    make_world(project, queries=4)
    project.budget, project.strategy, project.budget_policy = Decimal("2.40"), strategy, policy
    project.save()
    client.force_login(make_user("boss", role="lead", project=project))
    html = client.get(reverse("lead-dashboard", args=[project.slug])).content.decode()
    said = (
        "keeps about 0.24 USD (10%) of the budget from its pages, whatever the budget policy, "
        "for comparisons that measure each modality's grading offset against text"
    )
    assert (said in html) is kept
    assert ('id="calibration-reserve"' in html) is kept
    help_text = client.get(reverse("lead-settings", args=[project.slug])).content.decode()
    assert (
        "Whatever the policy, “Iso-label anchor search” and “Grade the top band; calibrate "
        "modalities with a few comparisons” keep 10% of the budget from their pages" in help_text
    )


@pytest.mark.parametrize("strategy,expected_items", [("full", 16), ("top_p", 6), ("random", 16)])
def test_strategies_plan_their_pages(project, strategy, expected_items):
    make_world(project)
    project.strategy = strategy
    project.page_size = 6
    project.save()
    services.create_page_tasks(project=project)
    graded = sum(t.page.slots.count() for t in Task.objects.filter(kind=TaskKind.GRADE_PAGE))
    assert graded == expected_items


def test_graded_page_leads_to_searches_that_end_in_true_pairs(world):
    project, truth, ann1, ann2 = world
    services.create_page_tasks(project=project)
    page_task = Task.objects.get(kind=TaskKind.GRADE_PAGE)
    judgment = judge(page_task, ann1, truth=truth)
    services.handle_judgment(judgment_id=judgment.pk)
    services.handle_judgment(judgment_id=judgment.pk)  # delivered twice
    # text (the reference) into image's tail, and image into text's own tail
    searched = set(AnchorSearch.objects.values_list("reference_modality", "other_modality"))
    assert searched == {("text", "image"), ("image", "text")}
    assert ProbeTask.objects.count() == 2, "one probe per search"
    calibration = Task.objects.filter(dedupe_key__startswith=services.CALIBRATION_KEY)
    assert calibration.count() == 1, "and one calibration comparison"

    asked = 0
    while task := Task.objects.filter(kind=TaskKind.COMPARE, status=TaskStatus.OPEN).first():
        compare = judge(task, ann2, truth=truth)
        services.handle_judgment(judgment_id=compare.pk)
        services.handle_judgment(judgment_id=compare.pk)  # a second delivery changes nothing
        asked += not task.dedupe_key.startswith(services.CALIBRATION_KEY)
        assert asked < 30 and calibration.count() <= 10
    searches = list(AnchorSearch.objects.all())
    assert all(search.status == AnchorSearch.Status.DONE for search in searches)
    assert sum(s.probes_answered for s in searches) == asked == ProbeTask.objects.count()
    # Anchors are the lowest-ranked item of each grade; the searched tails are image ranks 4..10
    # (from the text anchors) and text ranks 4..6 (from the image anchors).
    implied = list(PreferencePair.objects.filter(source__in=[PairSource.IMPLIED, PairSource.HUMAN]))
    assert implied, "a finished search yields pairs"
    for pair in implied:
        assert truth[pair.better_id] > truth[pair.worse_id], pair
    for grade in ImpliedGrade.objects.all():
        assert grade.low <= truth[grade.item_id] <= grade.high
    upstream = PreferencePair.objects.filter(source=PairSource.UPSTREAM).count()
    assert upstream == len(TRUE_IMAGE) - 1 + len(TRUE_TEXT) - 1
    # Far fewer comparisons than pairs: the point of the search.
    assert asked < len(implied)


def test_sweep_recovers_follow_up_work_whose_message_was_lost(world):
    from active_selection.sweep import sweep_project

    project, truth, ann1, ann2 = world
    services.create_page_tasks(project=project)
    judge(Task.objects.get(kind=TaskKind.GRADE_PAGE), ann1, truth=truth)  # no follow-up ran
    assert sweep_project(project=project)["searches_started"] == 2
    probe_task = Task.objects.filter(kind=TaskKind.COMPARE).first()
    judge(probe_task, ann2, truth=truth)  # its follow-up is lost too
    assert sweep_project(project=project)["recorded"] == 1
    assert Task.objects.filter(kind=TaskKind.COMPARE).count() == 3, "the next probe was created"
    assert sweep_project(project=project) == {
        "recorded": 0,
        "searches_started": 0,
        "pages_planned": 0,
    }, "idempotent"


def test_sweep_plans_pages_for_queries_without_one_while_the_budget_pays(project):
    from active_selection.sweep import sweep_project

    make_world(project, queries=3)
    project.page_size = 6
    project.budget = Decimal("0.67")  # one page of 6 grades at 0.10, 10% kept for calibration
    project.save()
    assert sweep_project(project=project)["pages_planned"] == 1  # a lost planning message
    assert sweep_project(project=project)["pages_planned"] == 0, "the budget is reserved"
    Project.objects.filter(pk=project.pk).update(budget=Decimal("10"))
    project.refresh_from_db()
    assert sweep_project(project=project)["pages_planned"] == 2
    assert sweep_project(project=project)["pages_planned"] == 0, "every query has its page"


def test_an_import_plans_the_candidate_pages(project, django_capture_on_commit_callbacks):
    import io
    import json

    from labeling.imports import import_project_file

    project.page_size = 6
    project.save()
    records = [{"type": "query", "id": "q1", "text": "red bicycles", "split": "train"}] + [
        {"type": "item", "query": "q1", "id": f"{modality}{rank}", "modality": modality,
         "title": f"{modality} {rank}", "text": "about bicycles", "upstream_score": 10 - rank}
        for modality in ("text", "image") for rank in range(1, 6)
    ]  # fmt: skip
    body = "\n".join(json.dumps(r) for r in records).encode()
    with django_capture_on_commit_callbacks(execute=True):
        import_project_file(project=project, file=io.BytesIO(body), filename="q.jsonl")
    task = Task.objects.get(project=project, kind=TaskKind.GRADE_PAGE)
    assert task.page.slots.count() == 6  # the top band of 3 of each modality


def test_a_raised_budget_plans_the_pages_it_now_pays_for(
    project, django_capture_on_commit_callbacks
):
    from labeling.services import update_project_settings

    make_world(project, queries=3)
    project.page_size = 6
    project.budget = Decimal("0.6")
    project.save()
    assert services.create_page_tasks(project=project) == 0, "10% is kept for calibration"
    with django_capture_on_commit_callbacks(execute=True):
        update_project_settings(project=project, changes={"budget": Decimal("2.0")})
    assert Task.objects.filter(project=project, kind=TaskKind.GRADE_PAGE).count() == 3


def test_training_pages_carry_the_intersection_of_implied_grade_intervals(world):
    from ranking.services import implied_grade_intervals

    project, truth, *_ = world
    query = Query.objects.get()
    items = list(Item.objects.filter(query=query, modality="image").order_by("upstream_rank"))
    first = AnchorSearch.objects.create(
        project=project, query=query, reference_modality="text", other_modality="image", state={}
    )
    second = AnchorSearch.objects.create(
        project=project, query=query, reference_modality="video", other_modality="image", state={}
    )
    ImpliedGrade.objects.bulk_create([
        ImpliedGrade(project=project, search=first, item=items[0], low=1, high=4),
        ImpliedGrade(project=project, search=second, item=items[0], low=0, high=2),
        ImpliedGrade(project=project, search=first, item=items[1], low=3, high=4),
        ImpliedGrade(project=project, search=second, item=items[1], low=0, high=1),  # disagrees
        ImpliedGrade(project=project, search=first, item=items[2], low=0, high=0),
    ])  # fmt: skip
    assert implied_grade_intervals(query_ids=[query.pk]) == {
        items[0].pk: (1, 2),
        items[2].pk: (0, 0),
    }


def test_probes_of_searches_likely_to_find_relevant_items_are_asked_first(project, make_user):
    project.top_band, project.page_size, project.budget = 3, 6, Decimal("1000")
    project.save()
    truth = make_world(project, queries=2)
    ann1 = make_user("ann1")
    poor = Query.objects.get(external_id="q1")
    for item in Item.objects.filter(query=poor, modality="image"):
        truth[item.pk] = 0  # nothing relevant in this query's images
    services.create_page_tasks(project=project)
    for page_task in Task.objects.filter(kind=TaskKind.GRADE_PAGE):
        services.handle_judgment(judgment_id=judge(page_task, ann1, truth=truth).pk)
    searches = {s.query_id: s for s in AnchorSearch.objects.filter(other_modality="image")}
    assert searches[poor.pk].informativeness == 0
    rich = [s for q, s in searches.items() if q != poor.pk]
    assert rich and all(s.informativeness == 3 for s in rich)  # image ranks 1-3: grades 4, 3, 3
    first = Task.objects.filter(kind=TaskKind.COMPARE).order_by("-priority", "id").first()
    assert first.anchor.query_id != poor.pk, "the rich search's probe goes first"
    poor_probe = Task.objects.get(anchor__query=poor, other__modality="image", kind="compare")
    assert poor_probe.priority < first.priority


def test_search_priority_stays_between_searches_and_re_asks():
    from active_selection.strategies import REASK_PRIORITY, SEARCH_PRIORITY, search_priority

    assert search_priority(0) == SEARCH_PRIORITY
    assert search_priority(2) == SEARCH_PRIORITY + 2
    assert SEARCH_PRIORITY < search_priority(10**6) < REASK_PRIORITY
