"""AnnotatorDay, kept by database triggers, against the judgments it counts (every kind of write)."""

from __future__ import annotations

import uuid
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.db.models import Count, Sum
from django.db.models.functions import TruncDate
from django.utils import timezone

from labeling import assignment
from labeling.models import AnnotatorDay, CompareOutcome, Judgment, Role, TaskKind

from .task_factories import make_compare_task, make_page_task, page_item_ids


def counted() -> dict:
    return {
        (d.project_id, d.annotator_id, d.day): (d.judgments, d.spend_units)
        for d in AnnotatorDay.objects.all()
        if d.judgments or d.spend_units
    }


def recounted() -> dict:
    """The same figures straight from the judgments."""
    rows = (
        Judgment.objects.annotate(day=TruncDate("created_at", tzinfo=UTC))
        .values("project_id", "annotator_id", "day")
        .annotate(n=Count("pk"), cost=Sum("cost"))
    )
    return {
        (r["project_id"], r["annotator_id"], r["day"]): (r["n"], int(r["cost"] * 10_000))
        for r in rows
    }


@pytest.mark.django_db
def test_days_follow_submits_revisions_bulk_writes_updates_and_deletes(project, make_user):
    ann = make_user("ann", role=Role.ANNOTATOR, project=project)
    bob = make_user("bob", role=Role.ANNOTATOR, project=project)
    pages = [make_page_task(project, items=2, judgments_required=2) for _ in range(3)]
    for annotator in (ann, bob):
        for _ in pages:
            task = assignment.claim_next_task(annotator=annotator, project=project)
            assignment.submit_judgment(
                task=task, annotator=annotator, client_uuid=uuid.uuid4(),
                grades=dict.fromkeys(page_item_ids(task), 1),
            )  # fmt: skip
    first = Judgment.objects.filter(annotator=ann).order_by("pk").first()
    assignment.revise_judgment(
        judgment=first, annotator=ann, client_uuid=uuid.uuid4(),
        grades=dict.fromkeys(page_item_ids(first.task), 3),
    )  # fmt: skip
    assert counted() == recounted()
    assert counted()[(project.pk, ann.pk, timezone.now().astimezone(UTC).date())][0] == 4

    # Written around the services: a bulk load, a backdated answer, a deleted one.
    compares = [make_compare_task(project) for _ in range(2)]
    Judgment.objects.bulk_create(
        [
            Judgment(task=t, project=project, annotator=bob, kind=TaskKind.COMPARE,
                     outcome=CompareOutcome.EQUAL, cost=Decimal("0.0725"))
            for t in compares
        ]
    )  # fmt: skip
    assert counted() == recounted()
    Judgment.objects.filter(task=compares[0]).update(
        created_at=timezone.now() - timedelta(days=3), cost=Decimal("1.5")
    )
    assert counted() == recounted()
    Judgment.objects.filter(task=compares[1])._raw_delete(Judgment.objects.db)
    assert counted() == recounted()


@pytest.mark.django_db
def test_progress_reads_the_days(project, make_user, django_assert_max_num_queries):
    ann = make_user("ann", role=Role.ANNOTATOR, project=project)
    for _ in range(3):
        make_page_task(project, items=2)
    task = assignment.claim_next_task(annotator=ann, project=project)
    assignment.submit_judgment(
        task=task, annotator=ann, client_uuid=uuid.uuid4(),
        grades=dict.fromkeys(page_item_ids(task), 1),
    )  # fmt: skip
    with django_assert_max_num_queries(4):  # days, two bounded counts, held
        progress = assignment.annotator_progress(annotator=ann, project=project)
    assert (progress.judgments_total, progress.judgments_today) == (1, 1)
    assert progress.spend == project.grade_cost * 2
    assert progress.tasks_remaining == 2
