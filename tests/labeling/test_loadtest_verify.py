"""loadtest reconciles by client_uuid: a submit stored but whose answer was cut is no mismatch."""

from __future__ import annotations

import os
import uuid

import pytest

from labeling.assignment import claim_next_task, submit_judgment
from web.management.commands.loadtest import Command, cpu_figures

from .task_factories import make_page_task, page_item_ids


@pytest.mark.django_db
@pytest.mark.parametrize("answered", [True, False])
def test_a_stored_submit_whose_answer_was_cut_is_reconciled(project, make_user, answered):
    annotator = make_user("ann", role="annotator", project=project)
    task = make_page_task(project, items=3)
    claim_next_task(annotator=annotator, project=project)
    client_uuid = str(uuid.uuid4())
    submit_judgment(
        task=task, annotator=annotator, client_uuid=client_uuid,
        grades={i: 1 for i in page_item_ids(task)},
    )  # fmt: skip
    row = (client_uuid, task.pk, 3)
    results = {
        "acked": [row] if answered else [], "unanswered": [] if answered else [row],
        "next_ms": [], "submit_ms": [], "errors": 0 if answered else 1, "abandoned": 0,
        "retried": 0,
    }  # fmt: skip
    figures = Command().verify(project, [annotator], results, elapsed=1.0)
    assert (figures["budget_mismatch"], figures["lost_judgments"]) == (0, 0)
    assert figures["stored_without_answer"] == (0 if answered else 1)


@pytest.mark.django_db
def test_a_cut_submit_that_was_never_stored_is_not_counted(project, make_user):
    results = {
        "acked": [], "unanswered": [(str(uuid.uuid4()), 1, 3)], "next_ms": [], "submit_ms": [],
        "errors": 1, "abandoned": 0, "retried": 0,
    }  # fmt: skip
    figures = Command().verify(project, [], results, elapsed=1.0)
    assert (figures["budget_mismatch"], figures["stored_without_answer"]) == (0, 0)


@pytest.mark.django_db
def test_a_reused_project_checks_this_runs_judgments_against_this_runs_answers(project, make_user):
    earlier = make_user("earlier", role="annotator", project=project)
    now = make_user("now", role="annotator", project=project)
    for annotator in (earlier, now):
        task = make_page_task(project, items=2)
        claim_next_task(annotator=annotator, project=project)
        client_uuid = str(uuid.uuid4())
        submit_judgment(
            task=task, annotator=annotator, client_uuid=client_uuid,
            grades={i: 1 for i in page_item_ids(task)},
        )  # fmt: skip
    results = {
        "acked": [(client_uuid, task.pk, 2)], "unanswered": [], "next_ms": [], "submit_ms": [],
        "errors": 0, "abandoned": 0, "retried": 0,
    }  # fmt: skip
    figures = Command().verify(project, [now], results, elapsed=1.0)
    assert (figures["judgments"], figures["budget_mismatch"], figures["lost_judgments"]) == (
        1,
        0,
        0,
    )
    # Told of nothing, this run's stored judgment is a cost nobody acknowledged: a mismatch.
    results["acked"] = []
    assert Command().verify(project, [now], results, elapsed=1.0)["budget_mismatch"] == 1


def test_the_run_cost_is_the_machine_cpu_between_the_two_readings_per_judgment(monkeypatch):
    monkeypatch.setattr(os, "sysconf", lambda name: 100)  # 100 ticks a second: 10 ms a tick
    before = {"busy": 1_000, "steal": 10, "total": 5_000}
    after = {"busy": 1_600, "steal": 50, "total": 5_800}  # 600 ticks busy of 800, 40 stolen

    figures = cpu_figures(before, after, judgments=300)

    assert figures == {"cpu_ms_per_judgment": 20.0, "busy_percent": 75.0, "steal_percent": 5.0}
    assert cpu_figures(None, after, judgments=300) == {}
    assert cpu_figures(before, after, judgments=0)["cpu_ms_per_judgment"] is None
