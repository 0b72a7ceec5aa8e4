"""Money is exact on every database: spend, reservations, budgets and spend by label type equal
the Decimal sum of the judgments' costs, never a float's neighbour (SQLite sums REALs)."""

from __future__ import annotations

from decimal import Decimal

import pytest
from django.db import connection
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from labeling.assignment import annotator_progress
from labeling.models import Judgment, Project, Task, TaskKind
from labeling.money import exact_sum
from labeling.selectors import budget_status
from web.dashboard import spend_by_kind

from .task_factories import make_compare_task, make_page_task

# Costs with Judgment.cost's 4 decimal places, from a tenth of a cent to the column's largest.
COSTS = st.decimals(
    min_value=Decimal("0.0001"), max_value=Decimal("999999.9999"), places=4, allow_nan=False
)
JUDGMENTS = st.lists(
    st.tuples(st.sampled_from([TaskKind.GRADE_PAGE, TaskKind.COMPARE]), COSTS), max_size=40
)


def _check_exact_sums(make_user, kinds_and_costs):
    project = Project.objects.create(
        slug=f"m{Project.objects.count()}", name="Money", modalities=["text", "image"],
        budget=Decimal("9999999999.99"),
    )  # fmt: skip
    annotator = make_user(f"ann{project.pk}", role="annotator", project=project)
    page_task, compare_task = make_page_task(project), make_compare_task(project)
    # One task per judgment (an annotator judges a task once), copies of the two templates.
    tasks = Task.objects.bulk_create(
        [
            Task(
                project=project,
                kind=kind,
                anchor_id=compare_task.anchor_id,
                other_id=compare_task.other_id,
            )  # fmt: skip
            if kind == TaskKind.COMPARE
            else Task(project=project, kind=kind, page_id=page_task.page_id)
            for kind, _ in kinds_and_costs
        ]
    )
    Judgment.objects.bulk_create(
        [
            Judgment(task=task, project=project, annotator=annotator, kind=kind, cost=cost)
            for task, (kind, cost) in zip(tasks, kinds_and_costs, strict=True)
        ]
    )
    expected = sum((cost for _, cost in kinds_and_costs), Decimal("0"))
    status = budget_status(project=project)
    assert status["spent"] == expected and isinstance(status["spent"], Decimal)
    assert status["left"] == project.budget - expected - status["reserved"]
    assert annotator_progress(annotator=annotator, project=project).spend == expected
    by_kind = spend_by_kind(project=project)
    for kind in (TaskKind.GRADE_PAGE, TaskKind.COMPARE):
        want = sum((c for k, c in kinds_and_costs if k == kind), Decimal("0"))
        assert by_kind[kind]["cost"] == want
    # str() equality too: 209.4 must not come back as 209.399999999999 nor as a float.
    assert str(Judgment.objects.filter(project=project).aggregate(s=exact_sum("cost"))["s"]) == str(
        expected.quantize(Decimal("0.0001"))
    )


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(kinds_and_costs=JUDGMENTS)
@pytest.mark.django_db
def test_any_sequence_of_judgments_sums_to_the_exact_decimal(make_user, kinds_and_costs):
    _check_exact_sums(make_user, kinds_and_costs)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
@given(kinds_and_costs=JUDGMENTS)
@pytest.mark.postgres
@pytest.mark.django_db
def test_any_sequence_of_judgments_sums_to_the_exact_decimal_on_postgresql(
    make_user, kinds_and_costs
):
    assert connection.vendor == "postgresql"
    _check_exact_sums(make_user, kinds_and_costs)


@pytest.mark.django_db
def test_the_loadtest_case_349_judgments_at_060_is_20940(make_user):
    # Measured on SQLite before the fix: the spent budget read 209.399999999999.
    _check_exact_sums(make_user, [(TaskKind.GRADE_PAGE, Decimal("0.60"))] * 349)
