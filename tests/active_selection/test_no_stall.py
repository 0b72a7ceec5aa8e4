"""No stall while budget remains: the demo with two annotators answering at random, through the
real services and eager Celery, until no task is left; then the lead raises the budget."""

from __future__ import annotations

import random
import uuid
from decimal import Decimal

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse

from active_selection import sweep
from active_selection.models import AnchorSearch
from active_selection.selectors import why_no_task
from labeling import assignment
from labeling.demo import load_demo
from labeling.models import Project, Task, TaskKind, TaskStatus
from labeling.selectors import budget_status
from labeling.services import update_project_settings

pytestmark = pytest.mark.django_db(transaction=True)


def answer_until_no_task(project: Project, annotators, rng: random.Random, limit: int = 400):
    """Each annotator in turn takes the next task and answers it at random; stop when neither
    gets one. Returns the number of judgments."""
    judged = 0
    while judged < limit:
        progressed = False
        for annotator in annotators:
            task = assignment.claim_next_task(annotator=annotator, project=project)
            if task is None:
                continue
            if task.kind == TaskKind.GRADE_PAGE:
                items = task.page.slots.values_list("item_id", flat=True)
                answer = {
                    "grades": {i: rng.randint(0, project.max_grade) for i in items},
                    "outcome": None,
                }
            else:
                answer = {
                    "grades": None,
                    "outcome": rng.choice(["anchor_better", "other_better", "equal"]),
                }
            assignment.submit_judgment(
                task=task, annotator=annotator, client_uuid=uuid.uuid4(), **answer
            )
            judged += 1
            progressed = True
        if not progressed:
            return judged
    raise AssertionError(f"still handing out tasks after {limit} judgments")


@pytest.fixture
def demo():
    project, _ = load_demo()
    # No training inside this test: it is about what is asked, not what is learnt.
    Project.objects.filter(pk=project.pk).update(retrain_threshold=10**6)
    project.refresh_from_db()
    users = get_user_model().objects
    return project, [users.get(username="annotator1"), users.get(username="annotator2")]


def test_two_annotators_never_stall_while_the_budget_pays_for_work(demo, client):
    project, annotators = demo
    rng = random.Random(0)
    assert Task.objects.filter(project=project).exists(), "the import planned the pages"
    client.login(username="lead", password="pagewise-lead")

    answer_until_no_task(project, annotators, rng)
    # The demo's image lists end at its top band: only the reference modality's (text) tail is
    # left to search; it is searched from the image anchors, so the budget of 8.00 is spent.
    assert AnchorSearch.objects.filter(project=project, other_modality="text").exists()
    assert budget_status(project=project)["left"] < project.compare_cost

    update_project_settings(project=project, changes={"budget": Decimal("20.00")})
    sweep.sweep_project(project=project)
    answer_until_no_task(project, annotators, rng)
    # Random answers contradict each other; a tie between the two annotators leaves a re-ask
    # neither may answer: the dashboard says so and offers the way out.
    why = why_no_task(project=project)
    rounds = 0
    while why is not None and why["kind"] != "all_graded":
        assert why["kind"] in ("blocked", "nothing_to_ask"), why
        page = client.get(reverse("lead-dashboard", args=[project.slug])).content.decode()
        assert why["message"] in page.replace("&#x27;", "'") and why["action_label"] in page
        response = client.post(
            reverse("lead-dashboard-resolve", args=[project.slug]), {"action": why["action"]}
        )
        assert response.status_code == 302
        sweep.sweep_project(project=project)
        assert answer_until_no_task(project, annotators, rng) > 0, why
        why = why_no_task(project=project)
        rounds += 1
        assert rounds < 20
    assert rounds > 0, "the stall was reproduced and resolved"

    status = budget_status(project=project)
    assert status["left"] < project.grade_cost or why["kind"] == "all_graded", (status, why)
    assert not Task.objects.filter(project=project, status=TaskStatus.OPEN).exists()


@pytest.mark.django_db
def test_the_dashboard_says_why_no_task_is_offered_and_the_lead_can_resolve_it(
    project, make_user, client
):
    from active_selection import services

    from .test_services import judge, make_world

    truth = make_world(project)  # text 6 items, image 10; band 3
    project.strategy, project.page_size, project.budget = "top_p", 6, Decimal("5.00")
    project.save()
    client.force_login(make_user("boss", role="lead", project=project))
    url = reverse("lead-dashboard", args=[project.slug])
    services.create_page_tasks(project=project)
    assert why_no_task(project=project)["kind"] == "no_annotators"
    ann = make_user("ann", role="annotator", project=project)
    assert why_no_task(project=project) is None, "a page is waiting for the annotator"

    judge(Task.objects.get(kind=TaskKind.GRADE_PAGE), ann, truth=truth)
    why = why_no_task(project=project)
    assert why["kind"] == "nothing_to_ask" and why["action"] == "grade_rest"
    assert "top_p grades only the top band of each query" in why["message"]
    assert "4.40 USD is left; 10 training items have no grade" in why["message"]
    html = client.get(url).content.decode()
    assert 'id="why-no-task"' in html and "Spend the rest on grades" in html

    client.post(reverse("lead-dashboard-resolve", args=[project.slug]), {"action": "grade_rest"})
    rest = Task.objects.filter(kind=TaskKind.GRADE_PAGE, status=TaskStatus.OPEN)
    assert sum(t.page.slots.count() for t in rest) == 10 and why_no_task(project=project) is None
    for task in rest:
        judge(task, ann, truth=truth)
    assert why_no_task(project=project)["kind"] == "all_graded"

    Project.objects.filter(pk=project.pk).update(budget=Decimal("1.60"))
    project.refresh_from_db()
    assert why_no_task(project=project)["kind"] == "budget_spent"
    bad = client.post(reverse("lead-dashboard-resolve", args=[project.slug]), {"action": "x"})
    assert bad.status_code == 302  # a message on the dashboard, never a 500
    assert 'id="why-no-task"' in client.get(url).content.decode()
