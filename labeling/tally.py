"""A project's running figures (ProjectTally): read in one statement, and the same figures counted
directly over the project's rows, the definition the database triggers keep the tally equal to."""

from __future__ import annotations

from decimal import Decimal

from django.db import connection, transaction
from django.db.models import BigIntegerField, Count, F, IntegerField, OuterRef, Subquery, Sum
from django.db.models.functions import Cast, Coalesce, Greatest

from .models import (
    Adjudication,
    Item,
    ItemGrade,
    Judgment,
    PageSlot,
    Project,
    ProjectTally,
    Split,
    TallyShard,
    Task,
    TaskKind,
    TaskStatus,
)
from .money import PLACES, exact_sum
from .prepared import ID, Prepared

FIGURES = (
    "spent_units",
    "compare_units",
    "grade_units",
    "pending_tasks",
    "items",
    "train_items",
    "graded_train_items",
)
PENDING = (TaskStatus.OPEN, TaskStatus.LEASED)


def tallied(name: str, *, project: str = "pk"):
    """The figure `name` of the project at OuterRef(project) as the triggers keep it: its tally row
    plus its shards (TallyShard, PostgreSQL), each an index read."""
    row = ProjectTally.objects.filter(project_id=OuterRef(project)).values(name)
    shards = (
        TallyShard.objects.filter(project_id=OuterRef(project))
        .order_by()
        .values("project_id")
        .annotate(total=Cast(Sum(name), BigIntegerField()))
        .values("total")
    )
    return Coalesce(Subquery(row), 0) + Coalesce(Subquery(shards), 0)


# Compiled once (labeling/prepared.py): its fourteen subqueries took 4.5 ms to build per call.
_TALLIED = Prepared(
    lambda project: (
        Project.objects.filter(pk=project)
        .annotate(**{f"tallied_{name}": tallied(name) for name in FIGURES})
        .values_list(*(f"tallied_{name}" for name in FIGURES))
    ),
    project=ID,
)


def tallied_figures(*, project: Project) -> dict[str, int]:
    """The project's figures as the triggers keep them, in one statement."""
    row = _TALLIED.first(project=project.pk)
    if row is None:
        raise Project.DoesNotExist(f"No project {project.pk}.")
    return dict(zip(FIGURES, row, strict=True))


def money(units: int) -> Decimal:
    """A sum of money kept in 10^-4 units (labeling.money) as a Decimal."""
    return Decimal(int(units)).scaleb(-PLACES)


def _count_of(queryset, key: str):
    counted = queryset.order_by().values(key).annotate(c=Count("*")).values("c")
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def counted_graded_items(*, project: Project, split: str) -> int:
    """Distinct items of the project's queries of `split` with a current grade (no revision
    supersedes its judgment) or an adjudication."""
    graded = ItemGrade.objects.filter(
        judgment__project=project,
        judgment__superseded_by__isnull=True,
        item__query__split=split,
    ).values("item_id")
    decided = Adjudication.objects.filter(item__project=project, item__query__split=split).values(
        "item_id"
    )
    return graded.union(decided).count()


def counted_figures(*, project: Project) -> dict[str, int]:
    """The figures of `tallied_figures`, aggregated over every row of the project (slow on a large
    project: for checks and tests)."""
    spent = Judgment.objects.filter(project=project).aggregate(s=exact_sum("cost"))["s"]
    pending = Task.objects.filter(project=project, status__in=PENDING)
    missing = Greatest(
        F("judgments_required")
        - _count_of(Judgment.objects.filter(task_id=OuterRef("pk")), "task_id"),
        0,
    )
    slots = _count_of(PageSlot.objects.filter(page_id=OuterRef("page_id")), "page_id")
    compare_units = pending.filter(kind=TaskKind.COMPARE).aggregate(n=Coalesce(Sum(missing), 0))
    grade_units = pending.exclude(kind=TaskKind.COMPARE).aggregate(
        n=Coalesce(Sum(missing * slots), 0)
    )
    items = Item.objects.filter(project=project)
    return {
        "spent_units": int(spent.scaleb(PLACES)),
        "compare_units": compare_units["n"],
        "grade_units": grade_units["n"],
        "pending_tasks": pending.count(),
        "items": items.count(),
        "train_items": items.filter(query__split=Split.TRAIN).count(),
        "graded_train_items": counted_graded_items(project=project, split=Split.TRAIN),
    }


def recount_tally(*, project: Project) -> dict[str, int]:
    """Rewrite the project's tally from `counted_figures` and return the figures it had.

    For a tally that drifted (a write with the triggers dropped, or two PostgreSQL transactions
    that each gave an item its first grade at once). Locks the tally row first, so writers that
    already moved it have committed before the count, and later ones add to the recount.
    """
    with transaction.atomic():
        if connection.vendor == "postgresql":
            # Writers add to the shards without touching the project's row: hold them off until
            # the recount commits (they wait; none of them holds what this needs).
            with connection.cursor() as cursor:
                cursor.execute(
                    f"LOCK TABLE {TallyShard._meta.db_table} IN SHARE ROW EXCLUSIVE MODE"
                )
        tally = ProjectTally.objects.select_for_update().filter(project_id=project.pk).first()
        before = tallied_figures(project=project) if tally else {}
        ProjectTally.objects.update_or_create(
            project_id=project.pk, defaults=counted_figures(project=project)
        )
        TallyShard.objects.filter(project_id=project.pk).delete()
    return before
