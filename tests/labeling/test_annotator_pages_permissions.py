"""Every page and endpoint around judging (guidelines, history, revisions, skips, review) by role.

Roles: lead, annotator, scientist (members of project "p"), other_lead (lead of another project)
and anonymous. Non-members get 404 (a project's existence does not leak), members with the wrong
role 403 with the reason, anonymous users the login page (HTML) or 401 (API).
"""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse
from rest_framework.test import APIClient

from labeling.models import Judgment, Project, Role, TaskSkip

from .task_factories import make_page_task, page_item_ids

pytestmark = pytest.mark.django_db

ROLES = ["lead", "annotator", "scientist", "other_lead", "anonymous"]

# (url name, method, data, {member role: expected status}) for HTML pages of project "p".
HTML = [
    ("guidelines", "get", None, {"lead": 200, "annotator": 200, "scientist": 200}),
    ("guidelines", "post", {"instructions": "Be kind."}, {"lead": 302, "annotator": 403, "scientist": 403}),
    ("my-judgments", "get", None, {"lead": 200, "annotator": 200, "scientist": 403}),
    ("lead-review", "get", None, {"lead": 200, "annotator": 403, "scientist": 403}),
    ("lead-review", "post", {"item": "1", "grade": "1"}, {"lead": 302, "annotator": 403, "scientist": 403}),
]  # fmt: skip
# Reaching into the annotator's own judgment and skipped task: only the annotator may.
OWN_API = [
    ("api-judgment", "judgment", "get", None, {"lead": 404, "annotator": 200, "scientist": 404}),
    ("api-judgment-revise", "judgment", "post", "revision", {"lead": 404, "annotator": 201, "scientist": 404}),
    ("api-task-unskip", "skipped", "post", {}, {"lead": 404, "annotator": 200, "scientist": 404}),
]  # fmt: skip


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def users(project, make_user):
    other = Project.objects.create(slug="other", name="Other project")
    return {
        "lead": make_user("lead", role=Role.LEAD, project=project),
        "annotator": make_user("ann", role=Role.ANNOTATOR, project=project),
        "scientist": make_user("sci", role=Role.SCIENTIST, project=project),
        "other_lead": make_user("olead", role=Role.LEAD, project=other),
    }


def expected(role: str, table: dict[str, int], *, api: bool) -> int:
    if role == "other_lead":
        return 404
    if role == "anonymous":
        return 401 if api else 302
    return table[role]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("name", "method", "data", "table"), HTML, ids=[f"{m} {n}" for n, m, _, _ in HTML]
)
def test_html_pages_by_role(client, users, role, name, method, data, table):
    if role != "anonymous":
        client.force_login(users[role])
    url = reverse(name, args=["p"])
    response = client.post(url, data) if method == "post" else client.get(url)
    assert response.status_code == expected(role, table, api=False)
    if role == "anonymous":
        assert response["Location"].startswith(reverse("login"))


@pytest.fixture
def owned(project, users):
    """A judgment of the annotator's and a task the annotator skipped."""
    task = make_page_task(project, items=2)
    judgment = Judgment.objects.create(
        task=task, project=project, annotator=users["annotator"], kind="grade_page", cost=0
    )
    skipped = make_page_task(project, items=2)
    TaskSkip.objects.create(task=skipped, annotator=users["annotator"])
    revision = {
        "client_uuid": str(uuid.uuid4()),
        "grades": {str(i): 3 for i in page_item_ids(task)},
    }
    return {"judgment": judgment.pk, "skipped": skipped.pk, "revision": revision}


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("name", "subject", "method", "data", "table"),
    OWN_API,
    ids=[f"{m} {n}" for n, _, m, _, _ in OWN_API],
)
def test_own_answers_and_skips_by_role(users, owned, role, name, subject, method, data, table):
    client = APIClient()
    if role != "anonymous":
        client.force_authenticate(users[role])
    url = reverse(name, args=[owned[subject]])
    body = owned[data] if isinstance(data, str) else data
    response = client.post(url, body, format="json") if method == "post" else client.get(url)
    want = 401 if role == "anonymous" else 404 if role == "other_lead" else table[role]
    assert response.status_code == want, response.content
    if want >= 400:
        assert set(response.json()) == {"message", "extra"} and response.json()["message"]


@pytest.mark.parametrize("role", ROLES)
def test_taking_back_a_skip_from_the_page_by_role(client, users, owned, role):
    if role != "anonymous":
        client.force_login(users[role])
    response = client.post(reverse("unskip", args=["p", owned["skipped"]]))
    want = {"lead": 302, "annotator": 302, "scientist": 403, "other_lead": 404, "anonymous": 302}
    assert response.status_code == want[role]
    # Only the annotator's own skip is taken back; the lead's redirect carries "not skipped".
    assert TaskSkip.objects.exists() == (role != "annotator")
