"""Projects and people from the UI: creating a project (who may, what is refused), inviting
someone with a one-time set-password link, and the API token page; every new URL × role."""

from __future__ import annotations

import re

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission
from django.urls import reverse
from rest_framework.authtoken.models import Token

from labeling.models import Membership, Project

User = get_user_model()


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def users(project, make_user):
    other = Project.objects.create(slug="other", name="Other project")
    return {
        "lead": make_user("lead", role="lead", project=project),
        "annotator": make_user("ann", role="annotator", project=project),
        "scientist": make_user("sci", role="scientist", project=project),
        "other_lead": make_user("boss2", role="lead", project=other),
    }


def allow_creating_projects(user) -> None:
    user.user_permissions.add(Permission.objects.get(codename="add_project"))


NEW = {
    "name": "Shoe search", "modalities": "text, image, video",
    "grade_names": "Bad\nOkay\nGood", "grade_cost": "0.20", "compare_cost": "0.04",
    "budget": "50", "page_size": "8", "strategy": "top_p",
}  # fmt: skip


def test_a_user_allowed_to_create_projects_creates_one_and_becomes_its_lead(client, users):
    allow_creating_projects(users["annotator"])
    client.force_login(users["annotator"])
    response = client.post(reverse("project-new"), NEW)
    project = Project.objects.get(name="Shoe search")
    assert response.status_code == 302
    assert response["Location"] == reverse("lead-import", args=[project.slug])
    assert project.slug == "shoe-search" and project.modalities == ["text", "image", "video"]
    assert project.grade_names == ["Bad", "Okay", "Good"] and project.page_size == 8
    assert str(project.grade_cost) == "0.2000" and project.strategy == "top_p"
    assert Membership.objects.get(project=project).role == "lead"
    client.post(reverse("project-new"), NEW)
    assert Project.objects.filter(name="Shoe search").count() == 2
    assert Project.objects.filter(slug="shoe-search-2").exists(), "a second one gets its own slug"


def test_the_form_has_defaults_and_refuses_bad_input_with_reasons(client, users):
    client.force_login(User.objects.create_superuser("root", password="x"))
    html = client.get(reverse("project-new")).content.decode()
    assert "text, image" in html and "Highly relevant" in html and 'value="0.10"' in html
    bad = {**NEW, "name": "", "modalities": "Text!, image", "page_size": "1", "grade_names": "One"}
    response = client.post(reverse("project-new"), bad)
    assert response.status_code == 400
    html = response.content.decode()
    assert "Modality names are lowercase letters" in html
    assert not Project.objects.filter(name="").exists()
    response = client.post(reverse("project-new"), {**NEW, "page_size": "1"})
    assert response.status_code == 400 and "greater than or equal to 2" in response.content.decode()
    response = client.post(reverse("project-new"), {**NEW, "name": " "})
    assert response.status_code == 400 and "Give the project a name" in response.content.decode()
    response = client.post(reverse("project-new"), {**NEW, "name": "a\x00b"})
    assert response.status_code == 400 and "control characters" in response.content.decode()
    assert Project.objects.count() == 2


def test_a_lead_invites_someone_who_sets_a_password_once_and_is_signed_in(client, project, users):
    client.force_login(users["lead"])
    response = client.post(
        reverse("lead-member-invite", args=[project.slug]),
        {"username": "newbie", "email": "newbie@example.org", "role": "annotator"},
    )
    assert response.status_code == 200
    link = re.search(r'id="invite-link" value="([^"]+)"', response.content.decode()).group(1)
    newbie = User.objects.get(username="newbie")
    assert not newbie.has_usable_password()
    assert Membership.objects.get(user=newbie, project=project).role == "annotator"
    assert (
        "no password yet"
        in client.get(reverse("lead-members", args=[project.slug])).content.decode()
    )
    client.logout()
    path = link.split("testserver", 1)[1]
    form_page = client.get(path, follow=True)
    assert "Choose a password" in form_page.content.decode()
    set_url = form_page.redirect_chain[-1][0]
    weak = client.post(set_url, {"new_password1": "123", "new_password2": "123"})
    assert "too short" in weak.content.decode()
    done = client.post(
        set_url, {"new_password1": "tangerine-kite-93", "new_password2": "tangerine-kite-93"}
    )
    assert done.status_code == 302 and done["Location"] == reverse("home")
    assert client.get(reverse("home")).context["user"].username == "newbie"
    client.logout()
    again = client.get(path, follow=True).content.decode()
    assert "This link no longer works" in again, "the link works once"
    assert client.login(username="newbie", password="tangerine-kite-93")


def test_an_invitation_is_refused_for_a_taken_name_a_bad_role_or_email(client, project, users):
    client.force_login(users["lead"])
    url = reverse("lead-member-invite", args=[project.slug])
    for data, message in [
        ({"username": "ANN", "role": "annotator"}, "There is already an account named"),
        ({"username": "x y", "role": "annotator"}, "A username is 1 to 150"),
        ({"username": "fresh", "role": "boss"}, "Unknown role"),
        ({"username": "fresh", "role": "annotator", "email": "nope"}, "is not an email address"),
    ]:
        response = client.post(url, data, follow=True)
        assert message in response.content.decode(), data
    assert not User.objects.filter(username="fresh").exists()


def test_a_new_link_is_only_for_members_without_a_password(client, project, users):
    client.force_login(users["lead"])
    url = reverse("lead-member-invite", args=[project.slug])
    response = client.post(url, {"action": "link", "username": "ann"}, follow=True)
    assert "has set a password already" in response.content.decode()
    client.post(url, {"username": "later", "role": "scientist"})
    response = client.post(url, {"action": "link", "username": "later"})
    assert response.status_code == 200 and "accounts/set-password/" in response.content.decode()


def test_the_api_token_page_creates_shows_once_and_revokes(client, users):
    client.force_login(users["scientist"])
    url = reverse("api-token")
    assert "You have no token" in client.get(url).content.decode()
    html = client.post(url, {"action": "create"}).content.decode()
    key = Token.objects.get(user=users["scientist"]).key
    assert key in html and "not shown again" in html
    later = client.get(url).content.decode()
    assert key not in later and key[:4] in later, "shown once"
    client.logout()
    api = client.get(reverse("api-projects"), HTTP_AUTHORIZATION=f"Token {key}")
    assert api.status_code == 200 and api.json()["results"][0]["slug"] == "p"
    client.force_login(users["scientist"])
    client.post(url, {"action": "revoke"})
    client.logout()
    refused = client.get(reverse("api-projects"), HTTP_AUTHORIZATION=f"Token {key}")
    assert refused.status_code == 401


# --- every new URL × role --------------------------------------------------------------------

ROLES = ["anonymous", "annotator", "scientist", "other_lead", "lead"]


@pytest.mark.parametrize("role", ROLES)
def test_project_creation_needs_the_permission(client, users, role):
    if role != "anonymous":
        client.force_login(users[role])
    for method in ("get", "post"):
        response = getattr(client, method)(reverse("project-new"), NEW)
        if role == "anonymous":
            assert response.status_code == 302 and "/accounts/login/" in response["Location"]
        else:
            assert response.status_code == 403
            html = response.content.decode()
            assert "Creating projects needs the permission" in html and "Your projects" in html
    assert not Project.objects.filter(name="Shoe search").exists()


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("action", ["invite", "link"])
def test_inviting_is_for_the_projects_lead(client, project, users, role, action):
    if role != "anonymous":
        client.force_login(users[role])
    users_before = User.objects.count()
    response = client.post(
        reverse("lead-member-invite", args=[project.slug]),
        {"action": action, "username": "newbie" if action == "invite" else "ann", "role": "lead"},
    )
    expected = {"anonymous": 302, "annotator": 403, "scientist": 403, "other_lead": 404}
    if role == "lead":
        assert response.status_code in (200, 302)
    else:
        assert response.status_code == expected[role]
        assert User.objects.count() == users_before
    if role in ("annotator", "scientist"):
        assert "This needs the role lead in" in response.content.decode()
    assert client.get(reverse("lead-member-invite", args=[project.slug])).status_code in (302, 405)


@pytest.mark.parametrize("role", ROLES)
def test_the_token_page_is_each_users_own(client, users, role):
    url = reverse("api-token")
    if role == "anonymous":
        response = client.post(url, {"action": "create"})
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
        assert not Token.objects.exists()
        return
    Token.objects.create(user=users["lead"] if role != "lead" else users["annotator"])
    client.force_login(users[role])
    client.post(url, {"action": "create"})
    client.post(url, {"action": "revoke"})
    assert not Token.objects.filter(user=users[role]).exists()
    assert Token.objects.count() == 1, "someone else's token is untouched"


def test_a_bad_set_password_link_says_so(client, db):
    response = client.get(reverse("set-password", args=["MQ", "bad-token"]))
    assert response.status_code == 200 and "This link no longer works" in response.content.decode()
