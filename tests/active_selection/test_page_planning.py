"""Page planning on the database: what create_page_tasks stores is exactly what the strategy plans,
whatever the path the rows take (COPY on PostgreSQL, multi-row INSERTs on SQLite, in batches)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection

from active_selection import services
from active_selection.strategies import PAGE_PRIORITY, plan_pages
from labeling.models import CandidatePage, Item, PageSlot, Project, Query, Split, Task, TaskKind


def make_queries(project: Project, queries: int, *, start: int = 0) -> list[Query]:
    """Queries of 5 text and 3 image items, two of them unscored, with ranks not in id order."""
    made = []
    for q in range(start, start + queries):
        query = Query.objects.create(project=project, external_id=f"q{q}", text=f"query {q}")
        for modality, ranks in (("text", [3, 1, None, 2, None]), ("image", [2, 1, 3])):
            for i, rank in enumerate(ranks):
                Item.objects.create(
                    project=project, query=query, external_id=f"{q}-{modality}-{'zyxwv'[i]}",
                    modality=modality, upstream_rank=rank,
                )  # fmt: skip
        made.append(query)
    return made


def stored_plan(project: Project) -> list[tuple]:
    """Each grade_page task in id order: its page's query and items in slot order, and its fields."""
    tasks = Task.objects.filter(project=project, kind=TaskKind.GRADE_PAGE).order_by("pk")
    slots: dict[int, list[int]] = {}
    for page_id, item_id in PageSlot.objects.filter(page__project=project).values_list(
        "page_id", "item_id"
    ):  # PageSlot's ordering: page, then position
        slots.setdefault(page_id, []).append(item_id)
    return [
        (t.page.query_id, slots[t.page_id], t.reason, t.priority, t.judgments_required,
         t.dedupe_key, t.status)
        for t in tasks.select_related("page")
    ]  # fmt: skip


def test_training_queries_list_ranked_items_in_rank_order_then_unscored_by_external_id(project):
    query = make_queries(project, 1)[0]
    gold_query = Query.objects.create(project=project, external_id="t", split=Split.GOLD)
    Item.objects.create(project=project, query=gold_query, external_id="t1", modality="text")
    pk = dict(Item.objects.filter(query=query).values_list("external_id", "pk"))

    [planned] = services.training_queries(project=project)

    assert planned.query_id == query.pk
    assert planned.by_modality == {
        "text": [pk["0-text-y"], pk["0-text-w"], pk["0-text-z"], pk["0-text-v"], pk["0-text-x"]],
        "image": [pk["0-image-y"], pk["0-image-z"], pk["0-image-x"]],
    }


@pytest.mark.parametrize("strategy", ["full", "top_p", "iso_anchor", "random"])
def test_stored_pages_slots_and_tasks_are_the_strategy_s_plan(project, monkeypatch, strategy):
    project.strategy, project.page_size, project.top_band = strategy, 3, 2
    project.budget, project.judgments_per_task = Decimal("1000"), 2
    project.save()
    make_queries(project, 4)
    monkeypatch.setattr(services, "PLAN_BATCH", 3)  # pages are stored over several rounds
    planned = plan_pages(
        strategy, services.training_queries(project=project), top_band=2, page_size=3,
        max_items=10**9,
    )  # fmt: skip

    assert services.create_page_tasks(project=project) == len(planned) > 3

    assert stored_plan(project) == [
        (plan.query_id, plan.item_ids, plan.reason, PAGE_PRIORITY, 2,
         f"page:{plan.query_id}:{plan.key}", "open")
        for plan in planned
    ]  # fmt: skip
    page_ids = list(Task.objects.filter(project=project).order_by("pk").values_list("page_id"))
    assert page_ids == sorted(page_ids), "pages are numbered in plan order, like their tasks"
    assert set(CandidatePage.objects.values_list("project_id", flat=True)) == {project.pk}


def test_planning_again_stores_only_the_new_queries_pages(project):
    project.strategy, project.page_size = "full", 4
    project.save()
    make_queries(project, 2)
    first = services.create_page_tasks(project=project)
    before = stored_plan(project)
    new_query = make_queries(project, 1, start=2)[0]

    assert services.create_page_tasks(project=project) == 2  # 8 items, pages of 4
    after = stored_plan(project)
    assert after[:first] == before
    assert {row[0] for row in after[first:]} == {new_query.pk}


def test_new_pages_never_take_the_id_of_a_deleted_page(project):
    project.strategy = "full"
    project.save()
    make_queries(project, 2)
    services.create_page_tasks(project=project)
    highest = CandidatePage.objects.order_by("-pk").first().pk
    Task.objects.filter(project=project).delete()
    CandidatePage.objects.filter(project=project).delete()

    services.create_page_tasks(project=project)

    assert CandidatePage.objects.order_by("pk").first().pk > highest


@pytest.mark.postgres
def test_reserved_ids_are_the_ones_drawn_when_they_are_not_consecutive(db):
    """As when other sessions draw from the sequence at the same time: every third id is ours."""
    with connection.cursor() as cursor:
        cursor.execute("ALTER TABLE labeling_candidatepage ALTER COLUMN id SET INCREMENT BY 3")
        cursor.execute("SELECT nextval(pg_get_serial_sequence('labeling_candidatepage', 'id'))")
        last = cursor.fetchone()[0]

    assert services._reserve_ids(CandidatePage, 4) == [last + 3, last + 6, last + 9, last + 12]
