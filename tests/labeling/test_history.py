"""An annotator's history: current answers, revisions that supersede (append-only), skips taken
back; labels read the latest answer."""

from __future__ import annotations

import uuid

import pytest
from rest_framework.test import APIClient

from labeling.models import ItemGrade, Judgment, Role, Task, TaskSkip, TaskStatus
from labeling.selectors import human_grades

from .task_factories import make_compare_task, make_page_task, page_item_ids

pytestmark = pytest.mark.django_db


@pytest.fixture
def annotator(project, make_user):
    return make_user("ann", role=Role.ANNOTATOR, project=project)


def api(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def claim_and_grade(client, task, grade: int) -> dict:
    body = client.post("/api/projects/p/tasks/next/", format="json").json()
    assert body["task"]["id"] == task.pk
    answer = {
        "client_uuid": str(uuid.uuid4()),
        "grades": {str(i): grade for i in page_item_ids(task)},
    }
    response = client.post(f"/api/tasks/{task.pk}/submit/", answer, format="json")
    assert response.status_code == 201
    return response.json()


def test_a_revision_supersedes_the_answer_and_labels_read_the_latest(project, annotator):
    client = api(annotator)
    task = make_page_task(project, items=3)
    first = claim_and_grade(client, task, 1)
    opened = client.get(f"/api/judgments/{first['id']}/").json()
    assert opened["task"]["id"] == task.pk and set(opened["answer"]["grades"].values()) == {1}
    revised = {"client_uuid": str(uuid.uuid4()), "grades": {str(i): 3 for i in page_item_ids(task)}}
    response = client.post(opened["task"]["submit_url"], revised, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["supersedes"] == first["id"] and body["cost"] == "0.0000"
    assert Judgment.objects.count() == 2, "append-only: the first answer is kept"
    assert ItemGrade.objects.filter(judgment_id=first["id"], grade=1).count() == 3
    assert set(human_grades(query_ids=[task.page.query_id]).values()) == {3}
    assert Task.objects.get(pk=task.pk).status == TaskStatus.DONE
    # A retry stores nothing twice; the same answer again stores nothing.
    assert client.post(opened["task"]["submit_url"], revised, format="json").status_code == 200
    again = {"client_uuid": str(uuid.uuid4()), "grades": {str(i): 3 for i in page_item_ids(task)}}
    assert (
        client.post(f"/api/judgments/{body['id']}/revise/", again, format="json").status_code == 200
    )
    assert Judgment.objects.count() == 2
    # The superseded answer cannot be revised any more: the latest one can.
    stale = client.post(
        opened["task"]["submit_url"], {**again, "client_uuid": str(uuid.uuid4())}, format="json"
    )
    assert stale.status_code == 409 and "revised already" in stale.json()["message"]
    assert client.get(f"/api/judgments/{first['id']}/").status_code == 409


def test_nobody_revises_or_opens_someone_elses_answer(project, annotator, make_user):
    other = make_user("ann2", role=Role.ANNOTATOR, project=project)
    task = make_page_task(project, items=2)
    first = claim_and_grade(api(annotator), task, 2)
    body = {"client_uuid": str(uuid.uuid4()), "grades": {str(i): 0 for i in page_item_ids(task)}}
    assert api(other).get(f"/api/judgments/{first['id']}/").status_code == 404
    assert (
        api(other).post(f"/api/judgments/{first['id']}/revise/", body, format="json").status_code
        == 404
    )
    assert api(annotator).get("/api/judgments/99999999999999999999/").status_code == 404
    assert Judgment.objects.count() == 1


def test_a_comparison_is_revised_with_a_choice_on_the_sides_it_is_shown(project, annotator):
    client = api(annotator)
    task = make_compare_task(project)
    shown = client.post("/api/projects/p/tasks/next/", format="json").json()["task"]
    answer = {"client_uuid": str(uuid.uuid4()), "choice": "left", "sides": shown["sides"]}
    first = client.post(f"/api/tasks/{task.pk}/submit/", answer, format="json").json()
    opened = client.get(f"/api/judgments/{first['id']}/").json()
    assert first["outcome"] is None, "blind: the outcome from the anchor's side is not shown"
    stored = Judgment.objects.get(pk=first["id"]).outcome
    left_id = opened["task"]["items"][0]["id"]
    left_won = (stored == "anchor_better") == (left_id == task.anchor_id)
    chosen_before = "left" if left_won else "right"
    assert opened["answer"] == {"choice": chosen_before}
    flip = "right" if chosen_before == "left" else "left"
    revised = client.post(
        opened["task"]["submit_url"],
        {"client_uuid": str(uuid.uuid4()), "choice": flip, "sides": opened["task"]["sides"]},
        format="json",
    ).json()
    assert {stored, Judgment.objects.get(pk=revised["id"]).outcome} == {
        "anchor_better",
        "other_better",
    }


def test_a_skip_is_listed_and_taken_back_so_the_task_comes_again(client, project, annotator):
    task = make_page_task(project, items=2)
    rest = api(annotator)
    claimed = rest.post("/api/projects/p/tasks/next/", format="json").json()["task"]
    rest.post(claimed["skip_url"], format="json")
    assert rest.post("/api/projects/p/tasks/next/", format="json").json()["task"] is None
    client.force_login(annotator)
    page = client.get("/projects/p/my-judgments/").content.decode()
    assert f"#{task.pk}" in page and "Take back" in page
    response = client.post(f"/projects/p/my-judgments/skips/{task.pk}/take-back/")
    assert response.status_code == 302 and not TaskSkip.objects.exists()
    assert rest.post("/api/projects/p/tasks/next/", format="json").json()["task"]["id"] == task.pk
    again = client.post(f"/projects/p/my-judgments/skips/{task.pk}/take-back/", follow=True)
    assert "You have not skipped this task." in again.content.decode()
    assert rest.post(f"/api/tasks/{task.pk}/unskip/", format="json").status_code == 404


def test_the_history_is_paginated_newest_first_with_revisions_shown_once(
    client, project, annotator
):
    rest = api(annotator)
    tasks = [make_page_task(project, items=2, priority=-i) for i in range(23)]
    answers = [claim_and_grade(rest, task, 1) for task in tasks]
    body = {
        "client_uuid": str(uuid.uuid4()),
        "grades": {str(i): 4 for i in page_item_ids(tasks[0])},
    }
    rest.post(f"/api/judgments/{answers[0]['id']}/revise/", body, format="json")
    client.force_login(annotator)
    first = client.get("/projects/p/my-judgments/").content.decode()
    assert "Page 1 of 2 · 23 judgments" in first and "revised 1×" in first
    second = client.get("/projects/p/my-judgments/?page=2").content.decode()
    assert second.count('class="card history-row"') == 3
    assert client.get("/projects/p/my-judgments/?page=abc").status_code == 200
    assert client.get("/projects/p/my-judgments/?page=99").status_code == 200
