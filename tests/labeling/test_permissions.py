"""Each role sees only what it may, on every lead / scientist page and API endpoint.

Roles: lead, annotator, scientist (members of project "p"), outsider (an annotator of another
project), and anonymous. Non-members get 404 so a project's existence does not leak; members
with the wrong role get 403; anonymous users are sent to the login page (HTML) or get 401 (API).
"""

from __future__ import annotations

import pytest
from django.urls import reverse
from rest_framework.authtoken.models import Token

from labeling.models import Judgment, Project

from .lead_factories import small_project

ROLES = ["lead", "annotator", "scientist", "outsider", "anonymous"]

# (url name, extra args, method, data, {role: expected status}); outsider → 404, anonymous → login.
HTML_READS = [
    ("lead-settings", [], {"lead": 200, "annotator": 403, "scientist": 403}),
    ("lead-simulation-status", [], {"lead": 200, "annotator": 403, "scientist": 403}),
    ("lead-members", [], {"lead": 200, "annotator": 403, "scientist": 403}),
    ("lead-import", [], {"lead": 200, "annotator": 403, "scientist": 403}),
    ("lead-dashboard", [], {"lead": 200, "annotator": 403, "scientist": 200}),
    ("lead-review", [], {"lead": 200, "annotator": 403, "scientist": 403}),
    ("exports", [], {"lead": 200, "annotator": 403, "scientist": 200}),
    ("export-download", ["qrels"], {"lead": 200, "annotator": 403, "scientist": 200}),
    ("export-download", ["judgments-csv"], {"lead": 200, "annotator": 403, "scientist": 200}),
]
HTML_WRITES = [
    ("lead-settings", {"currency": "EUR"}),
    ("lead-simulation-run", {}),
    ("lead-simulation-apply", {"report": "1"}),
    ("lead-members", {"action": "add", "username": "spare", "role": "annotator"}),
    ("lead-import", {}),
    ("lead-review", {"item": "1", "grade": "1"}),
    ("lead-dashboard-resolve", {"action": "answer_again"}),
    ("lead-calibration", {"action": "plan"}),
]
API = [
    ("api-members", [], "get", None, {"lead": 200, "annotator": 403, "scientist": 403}),
    ("api-members", [], "post", {"username": "spare", "role": "annotator"}, {"lead": 201, "annotator": 403, "scientist": 403}),
    ("api-member", ["ann2"], "patch", {"role": "scientist"}, {"lead": 200, "annotator": 403, "scientist": 403}),
    ("api-member", ["ann2"], "delete", None, {"lead": 204, "annotator": 403, "scientist": 403}),
    ("api-settings", [], "get", None, {"lead": 200, "annotator": 200, "scientist": 200}),
    ("api-settings", [], "patch", {"budget": "20.00"}, {"lead": 200, "annotator": 403, "scientist": 403}),
    ("api-judgments", [], "get", None, {"lead": 200, "annotator": 200, "scientist": 200}),
    ("api-export", ["qrels"], "get", None, {"lead": 200, "annotator": 403, "scientist": 200}),
    ("api-export", ["pairs"], "get", None, {"lead": 200, "annotator": 403, "scientist": 200}),
    ("api-export", ["qrels"], "post", {}, {"lead": 405, "annotator": 403, "scientist": 403}),
    ("api-versions", [], "get", None, {"lead": 200, "annotator": 200, "scientist": 200}),
    ("api-dashboard", [], "get", None, {"lead": 200, "annotator": 403, "scientist": 200}),
]  # fmt: skip


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    # make_user sets real passwords; PBKDF2's cost (~0.5 s each) is not what these tests check.
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(project, make_user):
    small = small_project(project, make_user)
    other = Project.objects.create(slug="other", name="Other project")
    users = {
        "lead": make_user("lead", role="lead", project=project),
        "annotator": small["ann1"],
        "scientist": make_user("sci", role="scientist", project=project),
        "outsider": make_user("outsider", role="annotator", project=other),
    }
    make_user("spare")
    return {"users": users, "small": small, "other": other}


def login(client, world, role):
    if role != "anonymous":
        client.force_login(world["users"][role])


def expected_for(role: str, table: dict[str, int], *, api: bool) -> int:
    if role == "outsider":
        return 404
    if role == "anonymous":
        return 401 if api else 302
    return table[role]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("name", "args", "table"), HTML_READS, ids=[f"{n}{a}" for n, a, _ in HTML_READS]
)
def test_html_pages_by_role(client, world, role, name, args, table):
    login(client, world, role)
    response = client.get(reverse(name, args=["p", *args]))
    assert response.status_code == expected_for(role, table, api=False)
    if role == "anonymous":
        assert response["Location"].startswith(reverse("login"))


@pytest.mark.parametrize("role", ["annotator", "scientist", "outsider", "anonymous"])
@pytest.mark.parametrize(("name", "data"), HTML_WRITES, ids=[n for n, _ in HTML_WRITES])
def test_html_writes_are_for_leads_only(client, world, role, name, data):
    login(client, world, role)
    response = client.post(reverse(name, args=["p"]), data)
    expected = {"annotator": 403, "scientist": 403, "outsider": 404, "anonymous": 302}[role]
    assert response.status_code == expected
    assert not world["small"]["ann1"].memberships.filter(project__slug="other").exists()


@pytest.mark.parametrize(("name", "data"), HTML_WRITES, ids=[n for n, _ in HTML_WRITES])
def test_html_writes_by_the_lead_are_accepted_or_explained(client, world, name, data):
    login(client, world, "lead")
    response = client.post(reverse(name, args=["p"]), data)
    assert response.status_code in (200, 302, 400)  # never 403 / 404 / 500


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize(
    ("name", "args", "method", "data", "table"),
    API,
    ids=[f"{m.upper()} {n}{a}" for n, a, m, _, _ in API],
)
def test_api_by_role(client, world, role, name, args, method, data, table):
    login(client, world, role)
    call = getattr(client, method)
    kwargs = {"content_type": "application/json"} if data is not None else {}
    response = (
        call(reverse(name, args=["p", *args]), data, **kwargs)
        if data is not None
        else call(reverse(name, args=["p", *args]))
    )
    assert response.status_code == expected_for(role, table, api=True)
    if response.status_code in (401, 403, 404):
        body = response.json()
        assert set(body) == {"message", "extra"} and "fields" in body["extra"]


def test_annotators_see_only_their_own_judgments(client, world):
    login(client, world, "annotator")
    data = client.get(reverse("api-judgments", args=["p"])).json()
    assert (
        data["count"] == Judgment.objects.filter(annotator=world["users"]["annotator"]).count() == 4
    )
    assert {row["annotator"] for row in data["results"]} == {"ann1"}
    client.force_login(world["users"]["scientist"])
    data = client.get(reverse("api-judgments", args=["p"]) + "?kind=compare").json()
    assert data["count"] == 4 and {row["kind"] for row in data["results"]} == {"compare"}


def test_token_authentication_streams_an_export(client, world):
    token = Token.objects.create(user=world["users"]["scientist"])
    response = client.get(
        reverse("api-export", args=["p", "qrels"]), HTTP_AUTHORIZATION=f"Token {token.key}"
    )
    assert response.status_code == 200
    assert b"q1 0 q1-d0 3" in b"".join(response.streaming_content)


def test_the_last_lead_cannot_be_demoted_or_removed(client, world):
    login(client, world, "lead")
    response = client.patch(
        reverse("api-member", args=["p", "lead"]),
        {"role": "annotator"},
        content_type="application/json",
    )
    assert response.status_code == 409
    assert client.delete(reverse("api-member", args=["p", "lead"])).status_code == 409
    response = client.post(
        reverse("api-members", args=["p"]),
        {"username": "nobody", "role": "lead"},
        content_type="application/json",
    )
    assert response.status_code == 400 and "username" in response.json()["extra"]["fields"]


def test_superuser_is_a_lead_everywhere(client, world, django_user_model):
    admin = django_user_model.objects.create_superuser("root", password="pw-root-123")
    client.force_login(admin)
    assert client.get(reverse("lead-dashboard", args=["other"])).status_code == 200


def test_schema_documents_every_lead_endpoint(client, world):
    login(client, world, "lead")
    schema = client.get(reverse("api-schema") + "?format=json").json()
    paths = schema["paths"]
    for path in [
        "/api/projects/{slug}/members/", "/api/projects/{slug}/members/{username}/",
        "/api/projects/{slug}/settings/", "/api/projects/{slug}/judgments/",
        "/api/projects/{slug}/exports/{format_name}/", "/api/projects/{slug}/versions/",
        "/api/projects/{slug}/dashboard/",
    ]:  # fmt: skip
        assert path in paths, path
    assert set(paths["/api/projects/{slug}/members/{username}/"]) >= {"patch", "delete"}
    for name, asset in [("api-docs", "swagger-ui-bundle.js"), ("api-redoc", "redoc.standalone.js")]:
        docs = client.get(reverse(name))
        assert docs.status_code == 200
        page = docs.content.decode()
        assert "/static/drf_spectacular_sidecar/" in page and asset in page, name
        assert "cdn" not in page.lower() and "//unpkg" not in page, name
