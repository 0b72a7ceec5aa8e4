"""Recovery sweep: redo follow-up work whose Celery message was lost (e.g. the broker was down when
a judgment committed). Every step it takes is idempotent, so running it often is harmless."""

from __future__ import annotations

from django.db.models import Exists, OuterRef

from labeling.models import (
    CandidatePage,
    Judgment,
    Project,
    Query,
    Split,
    Strategy,
    Task,
    TaskKind,
    TaskStatus,
)
from labeling.selectors import budget_status
from ranking.services import maybe_queue_retrain

from . import services
from .models import AnchorSearch, ProbeTask


def sweep_project(*, project: Project) -> dict[str, int]:
    """Record compare answers not yet in their search; start searches of fully graded queries;
    plan pages for training queries without one while the budget pays for a grade (a lost
    planning message, or budget the searches left unspent)."""
    unrecorded = ProbeTask.objects.filter(search__project=project, is_recorded=False).filter(
        Exists(Judgment.objects.filter(task_id=OuterRef("task_id")))
    )
    recorded = 0
    for probe in unrecorded.select_related("task"):
        # Each annotator's current answer: a revised answer is carried by its revision.
        for judgment in Judgment.objects.filter(task_id=probe.task_id, superseded_by__isnull=True):
            if judgment.supersedes_id is None:
                services.record_probe_answer(judgment=judgment)
            else:
                services.revise_probe_answer(judgment=judgment)
            recorded += 1
    # Revisions whose message was lost after the answer they revise was recorded (revising again
    # is a no-op for a revision the search has seen).
    for judgment in Judgment.objects.filter(
        project=project, kind=TaskKind.COMPARE, supersedes__isnull=False,
        superseded_by__isnull=True, task__probe__is_recorded=True,
    ):  # fmt: skip
        services.revise_probe_answer(judgment=judgment)
    started = 0
    if project.strategy == Strategy.ISO_ANCHOR:
        graded = (
            Task.objects.filter(project=project, kind=TaskKind.GRADE_PAGE, status=TaskStatus.DONE)
            .exclude(page__query__searches__isnull=False)
            .select_related("page__query")
        )
        for query in {task.page.query for task in graded}:
            started += len(services.start_searches(query=query))
    for search_id in AnchorSearch.objects.filter(
        project=project, status=AnchorSearch.Status.OPEN
    ).values_list("pk", flat=True):
        services.advance_search(search_id=search_id)
    planned = 0
    unplanned = Query.objects.filter(project=project, split=Split.TRAIN).exclude(
        Exists(CandidatePage.objects.filter(query_id=OuterRef("pk")))
    )
    if unplanned.exists() and budget_status(project=project)["left"] >= project.grade_cost:
        planned = services.create_page_tasks(project=project)
    maybe_queue_retrain(project=project)
    return {"recorded": recorded, "searches_started": started, "pages_planned": planned}
