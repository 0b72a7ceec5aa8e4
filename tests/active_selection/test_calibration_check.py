"""The calibration check: comparisons between gold items of two modalities measure how far one
modality's grades run above the other's, shown on the settings page and stored."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest
from django.urls import reverse

from active_selection import calibration_check
from active_selection.models import CalibrationCheck
from labeling.models import CompareOutcome, Item, Judgment, Query, Task, TaskStatus

pytestmark = pytest.mark.django_db


def gold_world(project, *, queries: int = 2) -> None:
    for q in range(queries):
        query = Query.objects.create(
            project=project, external_id=f"g{q}", text=f"gold {q}", split="gold"
        )
        for modality in ("text", "image"):
            for grade in range(5):
                Item.objects.create(
                    project=project, query=query, external_id=f"{q}-{modality}-{grade}",
                    modality=modality, title=f"{modality} {grade}", gold_grade=grade,
                )  # fmt: skip


def answer(task: Task, annotator, *, image_offset: int) -> None:
    """Comparisons are answered on the true grades: an image's is its gold grade minus the
    offset its graders add; clipped at 0."""
    text, image = task.anchor.gold_grade, max(task.other.gold_grade - image_offset, 0)
    outcome = (
        CompareOutcome.EQUAL if text == image
        else CompareOutcome.ANCHOR_BETTER if text > image else CompareOutcome.OTHER_BETTER
    )  # fmt: skip
    Judgment.objects.create(
        task=task, project=task.project, annotator=annotator, client_uuid=uuid.uuid4(),
        kind="compare", outcome=outcome, cost=task.project.compare_cost,
    )  # fmt: skip
    Task.objects.filter(pk=task.pk).update(status=TaskStatus.DONE)


@pytest.fixture
def lead_client(client, project, make_user):
    client.force_login(make_user("boss", role="lead", project=project))
    return client


def test_image_grades_one_too_high_are_measured_and_shown(project, make_user, lead_client):
    gold_world(project)
    project.budget = Decimal("100")
    project.save()
    url = reverse("lead-calibration", args=[project.slug])
    lead_client.post(url, {"action": "plan"})
    tasks = list(Task.objects.filter(dedupe_key__startswith="calibration:"))
    assert len(tasks) == calibration_check.PER_MODALITY
    assert all(t.anchor.modality == "text" and t.other.modality == "image" for t in tasks)
    assert len({(t.anchor.gold_grade, t.other.gold_grade) for t in tasks}) == len(tasks)
    assert calibration_check.plan_calibration(project=project) == 0, "planned once"
    ann = make_user("ann", role="annotator", project=project)
    for task in tasks:
        answer(task, ann, image_offset=1)
    lead_client.post(url, {"action": "measure"})

    check = CalibrationCheck.objects.get(project=project)
    image = check.estimates["image"]
    assert check.reference_modality == "text" and check.comparisons == len(tasks)
    assert 0.5 <= image["offset"] <= 1.5 and image["low"] > 0, image
    html = lead_client.get(reverse("lead-settings", args=[project.slug])).content.decode()
    assert f"image grades run {image['offset']:+.1f} ± " in html and "above text" in html


def test_no_offset_is_invented_when_grades_agree(project, make_user):
    gold_world(project)
    project.budget = Decimal("100")
    project.save()
    calibration_check.plan_calibration(project=project)
    ann = make_user("ann", role="annotator", project=project)
    for task in Task.objects.filter(dedupe_key__startswith="calibration:"):
        answer(task, ann, image_offset=0)
    image = calibration_check.measure_calibration(project=project).estimates["image"]
    assert image["low"] <= 0 <= image["high"] and image["correction"] == 0


def test_without_gold_the_card_says_there_is_nothing_to_measure(project, lead_client):
    html = lead_client.get(reverse("lead-settings", args=[project.slug])).content.decode()
    assert "No gold query has graded text items" in html
    response = lead_client.post(
        reverse("lead-calibration", args=[project.slug]), {"action": "plan"}
    )
    assert response.status_code == 302 and not Task.objects.exists()
    assert calibration_check.measure_calibration(project=project) is None
    bad = lead_client.post(reverse("lead-calibration", args=[project.slug]), {"action": "x"})
    assert bad.status_code == 302
