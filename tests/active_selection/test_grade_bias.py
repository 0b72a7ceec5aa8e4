"""Grading bias per modality: the simulated annotators, the calibration comparisons that measure
it, and the correction of the training grades (active_selection.calibration in the loop)."""

from __future__ import annotations

import json
import re
import uuid
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from active_selection import services
from active_selection.simulator import SimulatedAnnotator
from labeling.models import (
    CompareOutcome,
    Item,
    ItemGrade,
    Judgment,
    Query,
    Task,
    TaskKind,
    TaskStatus,
)
from ranking.ml.synthetic import biased_grade
from ranking.services import grade_calibration, grade_corrections

from .test_services import TRUE_IMAGE, TRUE_TEXT

TINY = [
    "--queries", "20", "--heldout-queries", "5", "--modalities", "2",
    "--items-per-modality", "6", "--seeds", "1", "--epochs", "2",
]  # fmt: skip


def test_biased_grade_rounds_a_fractional_bias_in_proportion_and_clips():
    assert biased_grade(2, 1.0, max_grade=4, draw=0.99) == 3
    assert biased_grade(4, 1.0, max_grade=4, draw=0.0) == 4, "clipped at the top"
    assert biased_grade(0, -1.0, max_grade=4, draw=0.0) == 0, "clipped at the bottom"
    assert [biased_grade(1, 0.5, max_grade=4, draw=d) for d in (0.2, 0.7)] == [2, 1]


def test_simulated_annotator_grades_a_biased_modality_higher_and_compares_on_the_truth():
    truth = {i: i % 3 for i in range(600)}
    modality = {i: "image" if i % 2 else "text" for i in truth}
    biased = SimulatedAnnotator(
        truth, 4, grade_noise=0.0, compare_noise=0.0, modality=modality, grade_bias={"image": 1.0}
    )
    assert all(biased.grade(i) == truth[i] + (modality[i] == "image") for i in truth)
    assert biased.compare(1, 4) == CompareOutcome.EQUAL, "an image and a text item of grade 1"
    # Without a bias the annotator draws exactly as it did before the option existed.
    plain = SimulatedAnnotator(truth, 4, seed=3)
    again = SimulatedAnnotator(truth, 4, seed=3, modality=modality, grade_bias={})
    assert [plain.grade(i) for i in truth] == [again.grade(i) for i in truth]


def _world(project, queries: int) -> dict[int, int]:
    truth = {}
    for q in range(queries):
        query = Query.objects.create(project=project, external_id=f"q{q}", text=f"query {q}")
        for modality, grades in (("text", TRUE_TEXT), ("image", TRUE_IMAGE)):
            for rank, grade in enumerate(grades, start=1):
                item = Item.objects.create(
                    project=project, query=query, external_id=f"{q}-{modality}-{rank}",
                    modality=modality, upstream_score=100.0 - rank, upstream_rank=rank,
                )  # fmt: skip
                truth[item.pk] = grade
    return truth


def _answer(task: Task, annotator, truth: dict[int, int], bias: dict[str, int]) -> Judgment:
    if task.kind == TaskKind.GRADE_PAGE:
        items = list(
            task.page.slots.select_related("item").values_list("item_id", "item__modality")
        )
        judgment = Judgment.objects.create(
            task=task, project=task.project, annotator=annotator, client_uuid=uuid.uuid4(),
            kind=TaskKind.GRADE_PAGE, cost=task.project.grade_cost * len(items),
        )  # fmt: skip
        ItemGrade.objects.bulk_create(
            [
                ItemGrade(judgment=judgment, item_id=i, grade=min(truth[i] + bias.get(m, 0), 4))
                for i, m in items
            ]
        )
    else:
        a, b = truth[task.anchor_id], truth[task.other_id]
        outcome = (
            CompareOutcome.EQUAL if a == b
            else CompareOutcome.ANCHOR_BETTER if a > b else CompareOutcome.OTHER_BETTER
        )  # fmt: skip
        judgment = Judgment.objects.create(
            task=task, project=task.project, annotator=annotator, client_uuid=uuid.uuid4(),
            kind=TaskKind.COMPARE, outcome=outcome, cost=task.project.compare_cost,
        )  # fmt: skip
    Task.objects.filter(pk=task.pk).update(status=TaskStatus.DONE)
    return judgment


@pytest.mark.parametrize("bias,correction", [(1, {"image": 1}), (0, {})])
def test_top_p_cal_measures_the_image_grades_offset_and_corrects_it_for_training(
    project, make_user, bias, correction
):
    truth = _world(project, queries=6)
    project.strategy, project.top_band, project.page_size = "top_p_cal", 3, 6
    project.budget = Decimal("10.00")  # 0.10 a grade, 0.05 a comparison: 1.00 for calibration
    project.save()
    annotator = make_user("ann1")
    services.create_page_tasks(project=project)
    while (
        task := Task.objects.filter(project=project, status=TaskStatus.OPEN)
        .order_by("-priority", "pk")
        .first()
    ):
        judgment = _answer(task, annotator, truth, {"image": bias})
        services.handle_judgment(judgment_id=judgment.pk)
    calibration = Task.objects.filter(dedupe_key__startswith=services.CALIBRATION_KEY)
    assert 0 < calibration.count() <= 20, "within the 10% kept for calibration"
    assert not calibration.exclude(anchor__modality="text").exists(), "text is the reference"
    estimate = grade_calibration(project=project)["image"]
    assert estimate.n == calibration.count()
    assert grade_corrections(project=project) == correction
    project.strategy = "top_p"
    assert grade_corrections(project=project) == {}, "top_p trains on the grades as given"


@pytest.mark.parametrize(
    "value,message",
    [
        ("video=1", "no modality 'video' in this world (text, image)"),
        ("image=9", "--grade-bias of image must be in [-4, 4] grades, not 9"),
        ("image=much", "--grade-bias takes MODALITY=GRADES[,...] or one number"),
    ],
)
def test_a_grade_bias_the_world_cannot_have_is_refused_with_a_reason(db, tmp_path, value, message):
    with pytest.raises(CommandError, match=re.escape(message)):
        call_command("simulate", *TINY, "--grade-bias", value, "--out", str(tmp_path / "r.json"))


def test_one_number_biases_the_image_modality_and_is_recorded(db, tmp_path):
    out = tmp_path / "r.json"
    call_command(
        "simulate", *TINY, "--grade-bias", "1", "--strategies", "top_p_cal",
        "--budgets", "0.2", "--out", str(out),
    )  # fmt: skip
    results = json.loads(out.read_text())
    assert results["world"]["grade_bias"] == [["image", 1.0]]
    (row,) = results["results"]
    assert row["judgments"]["compare"] > 0
    assert set(row["per_seed"][0]["calibration"]) == {"image"}
