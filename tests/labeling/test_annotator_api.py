"""The annotator's REST API and HTML pages: claim, submit, skip; roles; one error shape."""

from __future__ import annotations

import uuid

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from labeling.models import (
    CompareOutcome,
    ItemGrade,
    Judgment,
    Role,
    Task,
    TaskSkip,
    TaskStatus,
)

from .task_factories import make_compare_task, make_page_task, page_item_ids

pytestmark = pytest.mark.django_db


@pytest.fixture
def annotator(project, make_user):
    return make_user("ann", role=Role.ANNOTATOR, project=project)


def api_as(user) -> APIClient:
    client = APIClient()
    if user is not None:
        client.force_authenticate(user)
    return client


def next_task(client, slug: str = "p"):
    return client.post(f"/api/projects/{slug}/tasks/next/", format="json")


def submit(client, task_id, body):
    return client.post(f"/api/tasks/{task_id}/submit/", body, format="json")


def grades_body(task, grade: int = 2, client_uuid=None) -> dict:
    return {
        "client_uuid": str(client_uuid or uuid.uuid4()),
        "grades": {str(item_id): grade for item_id in page_item_ids(task)},
        "duration_ms": 3100,
    }


def assert_error_shape(response, status: int) -> dict:
    assert response.status_code == status, response.content
    body = response.json()
    assert set(body) == {"message", "extra"} and isinstance(body["message"], str)
    assert "fields" in body["extra"]
    return body


# --- claiming -------------------------------------------------------------------------------


def test_next_returns_the_page_with_its_query_items_in_page_order(project, annotator):
    task = make_page_task(project, items=3, reason="Top band of text and image")
    client = api_as(annotator)

    response = next_task(client)

    assert response.status_code == 200
    body = response.json()
    payload = body["task"]
    assert payload["id"] == task.pk and payload["kind"] == "grade_page"
    assert payload["reason"] == ""  # why a task was chosen is for leads
    assert payload["query"] == {"id": task.page.query.external_id, "text": "tabby cat"}
    assert [item["id"] for item in payload["items"]] == page_item_ids(task)
    assert [item["position"] for item in payload["items"]] == [0, 1, 2]
    assert set(payload["items"][0]) == {
        "id",
        "position",
        "modality",
        "title",
        "snippet",
        "text",
        "source_url",
        "image_url",
    }
    assert payload["sides"] is None
    assert payload["submit_url"] == f"/api/tasks/{task.pk}/submit/"
    assert body["project"]["grade_names"][0] == "Not relevant" and body["project"]["max_grade"] == 4
    assert body["progress"]["tasks_remaining"] == 1


def test_next_gives_the_same_task_again_on_reload(project, annotator):
    make_page_task(project)
    make_page_task(project)
    client = api_as(annotator)

    assert next_task(client).json()["task"]["id"] == next_task(client).json()["task"]["id"]


def test_next_without_work_says_so_helpfully(project, annotator):
    body = next_task(api_as(annotator)).json()

    assert body["task"] is None
    assert "No tasks right now" in body["message"] and "check back soon" in body["message"]


def test_compare_payload_hides_the_anchor_and_the_choice_is_stored_from_its_side(
    project, annotator
):
    task = make_compare_task(project)
    client = api_as(annotator)

    payload = next_task(client).json()["task"]
    assert payload["kind"] == "compare"
    assert "anchor" not in str(payload) and "other" not in str(payload)
    left, right = (item["id"] for item in payload["items"])
    assert {left, right} == {task.anchor_id, task.other_id}

    body = {"client_uuid": str(uuid.uuid4()), "choice": "left", "sides": payload["sides"]}
    response = submit(client, task.pk, body)

    assert response.status_code == 201
    expected = (
        CompareOutcome.ANCHOR_BETTER if left == task.anchor_id else CompareOutcome.OTHER_BETTER
    )
    assert Judgment.objects.get().outcome == expected
    # Told from the anchor's side, the outcome would say which side the anchor was.
    assert response.json()["outcome"] is None


def test_annotator_compare_task_is_blind_while_a_lead_sees_why(project, annotator, make_user):
    task = make_compare_task(project)
    Task.objects.filter(pk=task.pk).update(
        reason="Search probe against anchor 'Long exposure' (grade 3)", judgments_required=2
    )
    lead = make_user("lea", role=Role.LEAD, project=project)

    seen = next_task(api_as(annotator)).json()["task"]
    text = str(seen).lower()
    assert seen["reason"] == ""
    for leak in ("anchor", "grade", "search", "probe", "long exposure"):
        assert leak not in text
    judged = submit(
        api_as(annotator), task.pk,
        {"client_uuid": str(uuid.uuid4()), "choice": "equal", "sides": seen["sides"]},
    )  # fmt: skip
    assert judged.json()["outcome"] is None
    mine = api_as(annotator).get("/api/projects/p/judgments/").json()["results"]
    assert [row["outcome"] for row in mine] == [None]

    as_lead = next_task(api_as(lead)).json()["task"]
    assert as_lead["id"] == task.pk and "anchor 'Long exposure' (grade 3)" in as_lead["reason"]
    listed = api_as(lead).get("/api/projects/p/judgments/").json()["results"]
    assert [row["outcome"] for row in listed] == ["equal"]
    dashboard = api_as(lead).get("/api/projects/p/dashboard/").json()
    assert dashboard["open_tasks"]["shown"][0]["reason"].startswith("Search probe against")
    assert api_as(annotator).get("/api/projects/p/dashboard/").status_code == 403


def test_compare_sides_are_dealt_at_random(project, annotator):
    task = make_compare_task(project)
    client = api_as(annotator)
    lefts = set()
    for _ in range(40):  # the same lease: each call deals the sides again
        lefts.add(next_task(client).json()["task"]["items"][0]["id"])
    # Both orders appear (a fixed order fails this with certainty; chance: 2 in 2^40).
    assert lefts == {task.anchor_id, task.other_id}


# --- submitting -----------------------------------------------------------------------------


def test_judgment_submitted_twice_with_the_same_uuid_is_stored_once(project, annotator):
    task = make_page_task(project, items=3)
    client = api_as(annotator)
    next_task(client)
    body = grades_body(task, grade=3)

    first = submit(client, task.pk, body)
    replay = submit(client, task.pk, body)

    assert (first.status_code, replay.status_code) == (201, 200)
    assert first.json() == replay.json()
    assert first.json()["grades"] == {str(i): 3 for i in page_item_ids(task)}
    assert Judgment.objects.count() == 1 and ItemGrade.objects.count() == 3


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"grades": {}},
        {"client_uuid": "not-a-uuid", "grades": {"1": 1}},
        {"client_uuid": str(uuid.uuid4())},
        {"client_uuid": str(uuid.uuid4()), "grades": [1, 2]},
        {"client_uuid": str(uuid.uuid4()), "grades": {"1": "high"}},
        {"client_uuid": str(uuid.uuid4()), "grades": {"1": 10**30}},
        {"client_uuid": str(uuid.uuid4()), "grades": {"1": 1}, "choice": "left", "sides": "x"},
        {"client_uuid": str(uuid.uuid4()), "choice": "left"},
        {"client_uuid": str(uuid.uuid4()), "choice": "up", "sides": "x"},
        {"client_uuid": str(uuid.uuid4()), "grades": {"1": 1}, "duration_ms": -5},
        {"client_uuid": str(uuid.uuid4()), "grades": {"1": 1}, "duration_ms": 10**12},
    ],
    ids=[
        "empty",
        "no uuid",
        "bad uuid",
        "no answer",
        "grades list",
        "grade text",
        "huge grade",
        "grades and choice",
        "choice without sides",
        "bad choice",
        "negative duration",
        "huge duration",
    ],  # fmt: skip
)
def test_bad_bodies_get_400_in_the_one_error_shape(project, annotator, body):
    task = make_page_task(project)
    client = api_as(annotator)
    next_task(client)

    assert_error_shape(submit(client, task.pk, body), 400)
    assert Judgment.objects.count() == 0


def test_grades_that_do_not_cover_the_page_get_400_naming_the_items(project, annotator):
    task = make_page_task(project, items=3)
    client = api_as(annotator)
    next_task(client)
    first, second, third = page_item_ids(task)
    body = {"client_uuid": str(uuid.uuid4()), "grades": {str(first): 1, str(second): 9, "77777": 1}}

    fields = assert_error_shape(submit(client, task.pk, body), 400)["extra"]["fields"]

    assert set(fields["grades"]) == {str(second), str(third), "77777"}


def test_body_that_is_not_json_gets_400(project, annotator):
    task = make_page_task(project)
    client = api_as(annotator)
    next_task(client)

    response = client.post(
        f"/api/tasks/{task.pk}/submit/", "{not json", content_type="application/json"
    )

    assert_error_shape(response, 400)


def test_forged_sides_token_gets_400(project, annotator):
    task = make_compare_task(project)
    client = api_as(annotator)
    next_task(client)

    response = submit(
        client, task.pk, {"client_uuid": str(uuid.uuid4()), "choice": "right", "sides": "abc:def"}
    )

    assert assert_error_shape(response, 400)["extra"]["fields"] == {"sides": ["invalid"]}


@pytest.mark.parametrize("task_id", ["abc", "0", "-1", "99999", str(10**30), "1.5"])
def test_bad_task_ids_get_404(project, annotator, task_id):
    make_page_task(project)
    client = api_as(annotator)

    assert_error_shape(submit(client, task_id, grades_body(Task.objects.get())), 404)
    assert_error_shape(client.post(f"/api/tasks/{task_id}/skip/"), 404)


def test_unknown_project_gets_404(annotator):
    assert_error_shape(next_task(api_as(annotator), slug="nope"), 404)


def test_task_leased_to_another_annotator_cannot_be_submitted(project, annotator, make_user):
    task = make_page_task(project)
    next_task(api_as(annotator))
    intruder = make_user("eve", role=Role.ANNOTATOR, project=project)

    response = submit(api_as(intruder), task.pk, grades_body(task))

    assert_error_shape(response, 409)
    assert Judgment.objects.count() == 0


def test_annotators_never_see_other_annotators_answers(project, annotator, make_user):
    task = make_page_task(project, judgments_required=2)
    client = api_as(annotator)
    next_task(client)
    submit(client, task.pk, grades_body(task, grade=4))
    colleague = make_user("bob", role=Role.ANNOTATOR, project=project)

    body = next_task(api_as(colleague)).json()

    assert body["task"]["id"] == task.pk
    assert set(body["task"]) == {
        "id", "kind", "reason", "lease_expires_at", "query", "items", "sides", "submit_url",
        "skip_url",
    }  # fmt: skip
    assert body["progress"]["judgments_total"] == 0
    # Nor can the colleague read the judgment by replaying its UUID.
    stolen = submit(api_as(colleague), task.pk, {**grades_body(task), "client_uuid": str(
        Judgment.objects.get().client_uuid)})  # fmt: skip
    assert "grades" not in assert_error_shape(stolen, 409)


# --- skipping -------------------------------------------------------------------------------


def test_skip_is_recorded_and_the_next_task_is_another(project, annotator):
    first = make_page_task(project, priority=2)
    second = make_page_task(project)
    client = api_as(annotator)
    next_task(client)

    response = client.post(f"/api/tasks/{first.pk}/skip/")

    assert response.status_code == 200 and response.json() == {"task": first.pk, "skipped": True}
    assert TaskSkip.objects.filter(task=first, annotator=annotator).exists()
    assert Task.objects.get(pk=first.pk).status == TaskStatus.OPEN
    assert next_task(client).json()["task"]["id"] == second.pk


# --- who may judge --------------------------------------------------------------------------


def test_scientist_cannot_claim_submit_or_skip(project, make_user, annotator):
    task = make_page_task(project)
    scientist = api_as(make_user("sci", role=Role.SCIENTIST, project=project))

    assert_error_shape(next_task(scientist), 403)
    assert_error_shape(submit(scientist, task.pk, grades_body(task)), 403)
    assert_error_shape(scientist.post(f"/api/tasks/{task.pk}/skip/"), 403)


def test_lead_may_judge(project, make_user):
    make_page_task(project)

    assert next_task(api_as(make_user("lea", role=Role.LEAD, project=project))).status_code == 200


def test_non_member_gets_404_for_the_project_and_its_tasks(project, make_user):
    task = make_page_task(project)
    outsider = api_as(make_user("out"))

    assert_error_shape(next_task(outsider), 404)
    assert_error_shape(submit(outsider, task.pk, grades_body(task)), 404)
    assert_error_shape(outsider.post(f"/api/tasks/{task.pk}/skip/"), 404)


def test_a_submit_is_refused_for_who_asks_before_what_they_send(project, make_user, annotator):
    # The task is read once, under its lock, with the caller's role: whoever may not judge it is
    # refused as such whatever the body holds, and only then is the body read.
    task = make_page_task(project)
    outsider = api_as(make_user("out"))
    scientist = api_as(make_user("sci", role=Role.SCIENTIST, project=project))
    member = api_as(annotator)
    next_task(member)
    malformed = {"data": b"{not json", "content_type": "application/json"}

    for client, status in ((outsider, 404), (scientist, 403), (member, 400)):
        assert_error_shape(client.post(f"/api/tasks/{task.pk}/submit/", **malformed), status)
        assert_error_shape(submit(client, task.pk, {"grades": "all good"}), status)
    # The member's refusals stored nothing and left the lease: the answer goes through.
    assert submit(member, task.pk, grades_body(task)).status_code == 201


def test_anonymous_gets_401(project):
    task = make_page_task(project)
    anonymous = api_as(None)

    assert_error_shape(next_task(anonymous), 401)
    assert_error_shape(submit(anonymous, task.pk, grades_body(task)), 401)
    assert Task.objects.get().status == TaskStatus.OPEN


def test_token_authentication_works(project, annotator):
    task = make_page_task(project)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=annotator).key}")

    assert next_task(client).json()["task"]["id"] == task.pk
    assert submit(client, task.pk, grades_body(task)).status_code == 201


def token_client(user) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {Token.objects.create(user=user).key}")
    return client


def test_the_next_task_reads_its_project_with_the_token_and_refuses_as_before(
    project, annotator, make_user
):
    """The project and the caller's role in it are read by the token, sent with the token's own
    read (one round trip on PostgreSQL), and handed to the view only once the token passed."""
    task = make_page_task(project)
    client = token_client(annotator)
    with CaptureQueriesContext(connection) as queries:
        body = next_task(client).json()
    assert body["task"]["id"] == task.pk and body["project"]["slug"] == project.slug
    token_read, project_read, *rest = (q["sql"] for q in queries)
    assert "authtoken_token" in token_read and "labeling_project" not in token_read
    assert "labeling_project" in project_read and "authtoken_token" in project_read
    assert not any("labeling_membership" in sql for sql in rest)  # the role came with it

    assert_error_shape(next_task(token_client(make_user("outsider"))), 404)
    scientist = make_user("sci", role=Role.SCIENTIST, project=project)
    assert_error_shape(next_task(token_client(scientist)), 403)
    assert_error_shape(next_task(client, slug="no-such-project"), 404)
    admin = make_user("admin")
    admin.is_superuser = True
    admin.save()
    assert next_task(token_client(admin)).status_code == 200  # a superuser leads every project
    stranger = APIClient()
    stranger.credentials(HTTP_AUTHORIZATION="Token " + "0" * 40)
    refused = next_task(stranger)
    assert assert_error_shape(refused, 401)["message"] == "Invalid token."
    assert refused["WWW-Authenticate"] == "Token"
    annotator.is_active = False
    annotator.save()
    assert assert_error_shape(next_task(client), 401)["message"] == "User inactive or deleted."
    assert Task.objects.get(pk=task.pk).assignee_id == annotator.pk  # leased once, by the first


def test_session_authentication_needs_the_csrf_token(project, annotator):
    make_page_task(project)
    client = APIClient(enforce_csrf_checks=True)
    client.force_login(annotator)

    assert_error_shape(next_task(client), 403)
    assert Task.objects.get().status == TaskStatus.OPEN


def test_schema_documents_the_task_endpoints(annotator, client):
    client.force_login(annotator)
    schema = client.get("/api/schema/?format=json").json()

    assert "/api/projects/{slug}/tasks/next/" in schema["paths"]
    submit_op = schema["paths"]["/api/tasks/{task_id}/submit/"]["post"]
    assert set(submit_op["responses"]) >= {"200", "201"}
    assert "SubmitJudgment" in str(submit_op["requestBody"])
    assert "/api/tasks/{task_id}/skip/" in schema["paths"]
    assert {"NextTask", "TaskPayload", "SubmittedJudgment", "AnnotatorProgress"} <= set(
        schema["components"]["schemas"]
    )


# --- HTML -----------------------------------------------------------------------------------


def test_home_shows_progress_and_a_start_button_to_annotators(project, annotator, client):
    make_page_task(project)
    client.force_login(annotator)

    html = client.get("/").content.decode()

    assert 'href="/projects/p/annotate/"' in html and ">Start<" in html
    assert "1 left" in html


def test_home_shows_no_start_button_to_scientists(project, make_user, client):
    client.force_login(make_user("sci", role=Role.SCIENTIST, project=project))

    html = client.get("/").content.decode()

    assert "Test project" in html and ">Start<" not in html


def test_judging_page_shows_the_legend_keyboard_help_and_loads_the_script(
    project, annotator, client
):
    client.force_login(annotator)

    response = client.get("/projects/p/annotate/")

    html = response.content.decode()
    assert response.status_code == 200
    assert "Highly relevant" in html and 'id="keyboard-help"' in html
    assert "js/annotate.js" in html and 'id="annotate-config"' in html
    assert "csrfmiddlewaretoken" in html
    assert "http://" not in html.split("<body>")[0] and "https://" not in html  # nothing remote


@pytest.mark.parametrize(
    ("who", "status"), [("scientist", 403), ("outsider", 404), ("anonymous", 302)]
)
def test_judging_page_is_for_annotators_and_leads_only(project, make_user, client, who, status):
    if who == "scientist":
        client.force_login(make_user("sci", role=Role.SCIENTIST, project=project))
    elif who == "outsider":
        client.force_login(make_user("out"))

    assert client.get("/projects/p/annotate/").status_code == status


def test_judging_page_of_an_unknown_project_is_404(annotator, client):
    client.force_login(annotator)

    assert client.get("/projects/nope/annotate/").status_code == 404
