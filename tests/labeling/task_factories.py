"""Builders of queries, items, candidate pages and tasks for the annotator-workflow tests."""

from __future__ import annotations

import itertools

from labeling.models import CandidatePage, Item, PageSlot, Project, Query, Task, TaskKind

_counter = itertools.count(1)


def make_query(project: Project, text: str = "tabby cat") -> Query:
    return Query.objects.create(project=project, external_id=f"q{next(_counter)}", text=text)


def make_item(project: Project, query: Query, *, modality: str = "text", title: str = "") -> Item:
    n = next(_counter)
    return Item.objects.create(
        project=project, query=query, external_id=f"i{n}", modality=modality,
        title=title or f"Result {n}", text=f"Text of result {n} about {query.text}.",
    )  # fmt: skip


def make_page_task(
    project: Project,
    *,
    items: int = 3,
    priority: int = 0,
    judgments_required: int = 1,
    query: Query | None = None,
    reason: str = "Top band of each modality",
) -> Task:
    query = query or make_query(project)
    page = CandidatePage.objects.create(project=project, query=query)
    PageSlot.objects.bulk_create(
        [PageSlot(page=page, position=i, item=make_item(project, query)) for i in range(items)]
    )
    return Task.objects.create(
        project=project, kind=TaskKind.GRADE_PAGE, page=page, priority=priority,
        judgments_required=judgments_required, reason=reason,
    )  # fmt: skip


def make_compare_task(
    project: Project, *, priority: int = 0, anchor: Item | None = None, other: Item | None = None
) -> Task:
    if anchor is None or other is None:
        query = make_query(project)
        anchor = anchor or make_item(project, query, modality="text")
        other = other or make_item(project, query, modality="image")
    return Task.objects.create(
        project=project, kind=TaskKind.COMPARE, anchor=anchor, other=other, priority=priority,
        reason="Binary search for the image boundary of grade 2",
    )  # fmt: skip


def page_item_ids(task: Task) -> list[int]:
    return list(task.page.slots.order_by("position").values_list("item_id", flat=True))
