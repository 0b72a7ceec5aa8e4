"""Overlap: how many annotators judge each task. A change of the project's judgments per task
applies to open work at once (pages always; comparisons when the lead chose them too), and the
lead is told how many open tasks it touched."""

from __future__ import annotations

from django.db.models import Count, F

from .models import Project, Task, TaskKind, TaskStatus

PENDING = [TaskStatus.OPEN, TaskStatus.LEASED]


def required_for(*, project: Project, kind: str) -> int:
    """Judgments a new task of this kind needs."""
    if kind == TaskKind.COMPARE and not project.overlap_comparisons:
        return 1
    return project.judgments_per_task


def overlap_of(project: Project) -> tuple[int, bool]:
    return project.judgments_per_task, project.overlap_comparisons


def apply_overlap(*, project: Project) -> dict[str, int]:
    """Give open and leased tasks the judgments their kind now needs; close an open task that
    already has them (a lowered number). Returns how many tasks of each kind changed."""
    changed = {}
    for kind in (TaskKind.GRADE_PAGE, TaskKind.COMPARE):
        wanted = required_for(project=project, kind=kind)
        changed[kind] = (
            Task.objects.filter(project=project, kind=kind, status__in=PENDING)
            .exclude(judgments_required=wanted)
            .update(judgments_required=wanted)
        )
    complete = (
        Task.objects.filter(project=project, status=TaskStatus.OPEN)
        .annotate(judged=Count("judgments"))
        .filter(judged__gte=F("judgments_required"))
        .values_list("pk", flat=True)
    )
    # A closed comparison's answers reach its search through the recovery sweep (within a minute).
    Task.objects.filter(pk__in=list(complete)).update(status=TaskStatus.DONE)
    return changed


def describe_open_work(*, project: Project) -> str:
    """What the current overlap means for open work, in a sentence for the lead."""
    counts = dict(
        Task.objects.filter(project=project, status__in=PENDING)
        .values("kind")
        .annotate(n=Count("pk"))
        .values_list("kind", "n")
    )
    pages = counts.get(TaskKind.GRADE_PAGE, 0)
    compares = counts.get(TaskKind.COMPARE, 0)
    k = project.judgments_per_task
    parts = [
        f"{pages} open page task{'s' if pages != 1 else ''} now need{'s' if pages == 1 else ''} {k} judgment{'s' if k != 1 else ''} each"
    ]
    if project.overlap_comparisons:
        parts.append(f"{compares} open comparison{'s' if compares != 1 else ''} too")
    else:
        parts.append(f"comparisons keep one answer each ({compares} open)")
    return "; ".join(parts) + ". Pages planned from now on follow the same setting."
