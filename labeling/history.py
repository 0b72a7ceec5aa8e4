"""What an annotator judged and skipped in a project, shown as it was judged (reads only).

A revised answer is shown once, as its latest revision; compare pairs are shown in a fixed order
that does not tell the anchor apart (compare tasks are blind), with the side the annotator chose.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.core.paginator import Page, Paginator
from django.db.models import Exists, OuterRef, QuerySet

from .errors import NotFound
from .models import (
    CompareOutcome,
    Item,
    ItemGrade,
    Judgment,
    PageSlot,
    Project,
    Task,
    TaskSkip,
    TaskStatus,
)

PER_PAGE = 20
_MAX_ID = 2**63 - 1


def current_judgments(*, annotator, project: Project) -> QuerySet[Judgment]:
    """The annotator's current answers in the project (revised ones replaced), newest first."""
    return (
        Judgment.objects.filter(project=project, annotator=annotator, superseded_by__isnull=True)
        .select_related("task__page__query", "task__anchor__query", "task__other", "guideline")
        .order_by("-created_at", "-pk")
    )


def own_judgment(*, annotator, judgment_id: int | str) -> Judgment:
    """The annotator's own judgment with this id; anyone else's is NotFound (nothing leaks)."""
    try:
        pk = int(judgment_id)
    except (TypeError, ValueError):
        raise NotFound(f"No judgment '{judgment_id}'.") from None
    judgment = (
        Judgment.objects.select_related("task__project", "task__page__query", "task__anchor")
        .filter(pk=pk, annotator_id=annotator.pk)
        .first()
        if 0 < pk <= _MAX_ID and annotator.is_authenticated
        else None
    )
    if judgment is None:
        raise NotFound(f"No judgment '{judgment_id}' of yours.")
    return judgment


@dataclass
class JudgedItem:
    item: Item
    position: int | None = None
    grade: int | None = None
    is_chosen: bool = False


@dataclass
class JudgmentRow:
    judgment: Judgment
    query_text: str
    items: list[JudgedItem] = field(default_factory=list)
    revisions: int = 0
    verdict: str = ""


def judgment_rows(*, judgments: list[Judgment], project: Project) -> list[JudgmentRow]:
    """The page (items in page order with the grades given) or the pair (with the choice)."""
    ids = [j.pk for j in judgments]
    grades: dict[int, dict[int, int]] = {}
    for judgment_id, item_id, grade in ItemGrade.objects.filter(judgment_id__in=ids).values_list(
        "judgment_id", "item_id", "grade"
    ):
        grades.setdefault(judgment_id, {})[item_id] = grade
    page_ids = {j.task.page_id for j in judgments if j.task.page_id}
    slots: dict[int, list[PageSlot]] = {}
    for slot in (
        PageSlot.objects.filter(page_id__in=page_ids).select_related("item").order_by("position")
    ):
        slots.setdefault(slot.page_id, []).append(slot)
    rows = []
    for judgment in judgments:
        task = judgment.task
        depth = _chain_length(judgment)
        if task.page_id:
            given = grades.get(judgment.pk, {})
            items = [
                JudgedItem(slot.item, slot.position, given.get(slot.item_id))
                for slot in slots.get(task.page_id, [])
            ]
            rows.append(JudgmentRow(judgment, task.page.query.text, items, depth))
            continue
        better = {
            CompareOutcome.ANCHOR_BETTER: task.anchor_id,
            CompareOutcome.OTHER_BETTER: task.other_id,
        }.get(judgment.outcome)
        pair = sorted([task.anchor, task.other], key=lambda item: item.pk)
        items = [JudgedItem(item, is_chosen=item.pk == better) for item in pair]
        verdict = (
            "You judged them equally relevant."
            if better is None
            else f"You chose “{next(i.item for i in items if i.is_chosen).title or 'untitled'}” as more relevant."
        )
        rows.append(JudgmentRow(judgment, task.anchor.query.text, items, depth, verdict))
    return rows


def _chain_length(judgment: Judgment) -> int:
    """How many times the annotator's answer to this task was revised (0: never)."""
    if judgment.supersedes_id is None:
        return 0
    return (
        Judgment.objects.filter(
            task_id=judgment.task_id, annotator_id=judgment.annotator_id
        ).count()
        - 1
    )


def history_page(*, annotator, project: Project, number: str | int | None) -> Page:
    """One page of the annotator's current answers; a bad page number gives the nearest page."""
    paginator = Paginator(current_judgments(annotator=annotator, project=project), PER_PAGE)
    page = paginator.get_page(number)
    page.rows = judgment_rows(judgments=list(page.object_list), project=project)
    return page


def skipped_tasks(*, annotator, project: Project, limit: int = 50) -> list[TaskSkip]:
    """The annotator's skips of tasks still open to judging (and not judged by them since)."""
    judged = Judgment.objects.filter(task_id=OuterRef("task_id"), annotator=annotator)
    return list(
        TaskSkip.objects.filter(task__project=project, annotator=annotator)
        .exclude(task__status__in=[TaskStatus.DONE, TaskStatus.CANCELLED])
        .exclude(Exists(judged))
        .select_related("task__page__query", "task__anchor__query")
        .order_by("-created_at")[:limit]
    )


def skipped_task_for(*, annotator, task_id: int | str) -> Task:
    """A task the annotator skipped; NotFound otherwise."""
    try:
        pk = int(task_id)
    except (TypeError, ValueError):
        raise NotFound(f"No task '{task_id}'.") from None
    skip = (
        TaskSkip.objects.filter(task_id=pk, annotator_id=annotator.pk)
        .select_related("task")
        .first()
        if 0 < pk <= _MAX_ID and annotator.is_authenticated
        else None
    )
    if skip is None:
        raise NotFound("You have not skipped this task.")
    return skip.task
