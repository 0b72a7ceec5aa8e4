"""Reads of active selection for the lead: why no task can be offered although budget is left."""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from django.db.models import Exists, OuterRef

from labeling.assignment import claimable_tasks, unclaimable_tasks
from labeling.models import (
    CandidatePage,
    Membership,
    Project,
    Query,
    Role,
    Split,
    Strategy,
    Task,
    TaskKind,
    TaskStatus,
)
from labeling.selectors import budget_status

from .models import AnchorSearch
from .services import ungraded_training_items

# The lead's ways out, by name (the dashboard posts one back).
ANSWER_AGAIN = "answer_again"
GRADE_REST = "grade_rest"


def _money(value: Decimal, currency: str) -> str:
    return f"{Decimal(value).quantize(Decimal('0.01'))} {currency}"


def why_no_task(*, project: Project) -> dict[str, Any] | None:
    """None while some annotator can be offered a task; else what stops the work, in plain words,
    and the action that resolves it if the lead can take one here:
    {"kind", "message", "action" (None, ANSWER_AGAIN or GRADE_REST), "action_label"}."""
    annotators = Membership.objects.filter(project=project, role=Role.ANNOTATOR).select_related(
        "user"
    )
    if any(claimable_tasks(annotator=m.user, project=project).exists() for m in annotators):
        return None
    leased = Task.objects.filter(project=project, status=TaskStatus.LEASED).exclude(
        pk__in=unclaimable_tasks(project=project).values("pk")
    )
    if leased.exists():
        return None  # someone is judging: the next tasks follow from their answer
    status = budget_status(project=project)
    left, cur = status["left"], project.currency

    def answer(kind: str, message: str, action: str | None = None, label: str = "") -> dict:
        return {"kind": kind, "message": message, "action": action, "action_label": label}

    if not annotators:
        return answer("no_annotators", "The project has no annotators: add one in Members.")
    stuck = unclaimable_tasks(project=project)
    if stuck.exists():
        compares = stuck.filter(kind=TaskKind.COMPARE).count()
        pages = stuck.count() - compares
        what = " and ".join(
            part
            for part in (
                f"{compares} comparison{'s' if compares != 1 else ''}" if compares else "",
                f"{pages} page{'s' if pages != 1 else ''}" if pages else "",
            )
            if part
        )
        waits = "waits" if stuck.count() == 1 else "wait"
        return answer(
            "blocked",
            f"{what} {waits} for an annotator who has not answered or skipped "
            f"{'it' if stuck.count() == 1 else 'them'} (a re-asked comparison goes to someone "
            f"who has not answered it, and the project's {len(annotators)} annotator"
            f"{'s have' if len(annotators) != 1 else ' has'}): add an annotator, or let the same "
            "annotators answer again.",
            ANSWER_AGAIN,
            "Let the same annotators answer again",
        )
    cheapest = min(project.grade_cost, project.compare_cost)
    if left < cheapest:
        return answer(
            "budget_spent",
            f"The budget is spent ({_money(left, cur)} left, less than one label): raise it in "
            "Settings to ask for more.",
        )
    waiting = AnchorSearch.objects.filter(project=project, status=AnchorSearch.Status.OPEN)
    unplanned = Query.objects.filter(project=project, split=Split.TRAIN).exclude(
        Exists(CandidatePage.objects.filter(query_id=OuterRef("pk")))
    )
    if waiting.exists() or (unplanned.exists() and left >= project.grade_cost):
        return answer(
            "sweep",
            "Work is waiting to be planned (a lost message or a raised budget): the recovery "
            "sweep plans it within a minute.",
        )
    ungraded = ungraded_training_items(project=project).count()
    if not ungraded:
        return answer(
            "all_graded",
            f"Every training item has a grade: the {_money(left, cur)} left has nothing to buy "
            "(import more queries to spend it).",
        )
    rest_cost = project.grade_cost * project.judgments_per_task * ungraded
    if project.strategy == Strategy.ISO_ANCHOR:
        done = "Every top band is graded and every anchor search is done: iso_anchor has nothing more to ask."
    elif project.strategy == Strategy.TOP_P:
        done = "top_p grades only the top band of each query, and every one is graded."
    else:
        done = f"{project.strategy} has planned everything the budget paid for when it planned."
    return answer(
        "nothing_to_ask",
        f"{done} {_money(left, cur)} is left; {ungraded} training item"
        f"{'s' if ungraded != 1 else ''} have no grade (grading all of them "
        f"costs {_money(rest_cost, cur)}). Spend the rest on their grades, or lower the budget.",
        GRADE_REST,
        "Spend the rest on grades",
    )
