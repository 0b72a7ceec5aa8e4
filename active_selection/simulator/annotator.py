"""Simulated annotators: they answer grade and compare tasks from the world's hidden truth with
configurable noise (and a grading bias per modality), and store their judgments as an annotator's.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass, field

from django.db import transaction

from labeling.models import CompareOutcome, ItemGrade, Judgment, Task, TaskKind, TaskStatus
from ranking.ml.synthetic import biased_grade


@dataclass
class SimulatedAnnotator:
    """Answers from the truth: a grade off by one with `grade_noise`, a comparison flipped with
    `compare_noise` (an `equal` answer then becomes a random strict one).

    `grade_bias` (modality name -> grades; `modality` maps item ids to their modality) shifts the
    absolute grades of that modality's items before the noise (ranking.ml.synthetic.biased_grade
    says why and cites the evidence); comparisons are answered on the true grades, unbiased. With
    no bias the annotator draws exactly as before, so worlds without one are unchanged.
    """

    truth: dict[int, int]
    max_grade: int
    grade_noise: float = 0.10
    compare_noise: float = 0.05
    seed: int = 0
    modality: dict[int, str] = field(default_factory=dict)
    grade_bias: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.rng = random.Random(self.seed)

    def grade(self, item_id: int) -> int:
        grade = self.truth[item_id]
        bias = self.grade_bias.get(self.modality.get(item_id, ""), 0.0)
        if bias:
            grade = biased_grade(grade, bias, max_grade=self.max_grade, draw=self.rng.random())
        if self.rng.random() < self.grade_noise:
            grade += (
                self.rng.choice([-1, 1])
                if 0 < grade < self.max_grade
                else (1 if grade == 0 else -1)
            )
        return grade

    def compare(self, anchor_id: int, other_id: int) -> str:
        a, b = self.truth[anchor_id], self.truth[other_id]
        outcome = (
            CompareOutcome.EQUAL
            if a == b
            else CompareOutcome.ANCHOR_BETTER
            if a > b
            else CompareOutcome.OTHER_BETTER
        )
        if self.rng.random() < self.compare_noise:
            others = [o for o in CompareOutcome.values if o != outcome]
            outcome = self.rng.choice(others)
        return outcome


def answer_task(*, task: Task, annotator_user, oracle: SimulatedAnnotator) -> Judgment:
    """Store the oracle's judgment of a task as an annotator would (the cost model included)."""
    project = task.project
    with transaction.atomic():
        if task.kind == TaskKind.GRADE_PAGE:
            items = list(task.page.slots.values_list("item_id", flat=True))
            judgment = Judgment.objects.create(
                task=task, project=project, annotator=annotator_user, client_uuid=uuid.uuid4(),
                kind=TaskKind.GRADE_PAGE, cost=project.grade_cost * len(items),
            )  # fmt: skip
            ItemGrade.objects.bulk_create(
                [ItemGrade(judgment=judgment, item_id=i, grade=oracle.grade(i)) for i in items]
            )
        else:
            judgment = Judgment.objects.create(
                task=task, project=project, annotator=annotator_user, client_uuid=uuid.uuid4(),
                kind=TaskKind.COMPARE, outcome=oracle.compare(task.anchor_id, task.other_id),
                cost=project.compare_cost,
            )  # fmt: skip
        Task.objects.filter(pk=task.pk).update(
            status=TaskStatus.DONE, assignee=None, lease_expires_at=None
        )
    return judgment
