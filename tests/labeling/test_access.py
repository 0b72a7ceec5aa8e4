"""Who may read what beyond the project pages: item images only for members of the item's
project, a skip only by the lease holder (or of an unleased task), the API schema and docs only
for signed-in users unless the setting makes them public."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from labeling.models import Project, Role, Task, TaskSkip, TaskStatus

from .task_factories import make_page_task
from .test_import import png

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def image_url(project, settings, tmp_path):
    settings.MEDIA_ROOT = tmp_path
    folder = tmp_path / "projects" / str(project.pk) / "items"
    folder.mkdir(parents=True)
    (folder / "abc.png").write_bytes(png())
    return f"/media/projects/{project.pk}/items/abc.png"


@pytest.mark.parametrize(
    "who, status",
    [
        ("anonymous", 302),
        (Role.ANNOTATOR, 200),
        (Role.LEAD, 200),
        (Role.SCIENTIST, 200),
        ("lead of another project", 404),
        ("superuser", 200),
    ],
)
def test_item_images_are_served_to_members_of_the_items_project_only(
    client, make_user, project, image_url, django_user_model, who, status
):
    if who == "lead of another project":
        other = Project.objects.create(slug="other", name="Other", modalities=["text"])
        client.force_login(make_user("stranger", role=Role.LEAD, project=other))
    elif who == "superuser":
        client.force_login(django_user_model.objects.create_superuser("root", password="pw-x-123"))
    elif who != "anonymous":
        client.force_login(make_user(f"user-{who}", role=who, project=project))
    response = client.get(image_url)
    assert response.status_code == status
    if status == 200:
        assert b"".join(response.streaming_content) == png()


def test_files_outside_a_projects_folder_are_served_to_nobody(
    client, make_user, project, settings, tmp_path
):
    settings.MEDIA_ROOT = tmp_path
    (tmp_path / "secret.txt").write_text("x")
    (tmp_path / "projects" / "x").mkdir(parents=True)
    (tmp_path / "projects" / "x" / "a.png").write_bytes(png())
    client.force_login(make_user("lead", role=Role.LEAD, project=project))
    assert client.get("/media/secret.txt").status_code == 404
    assert client.get("/media/projects/x/a.png").status_code == 404
    assert client.get(f"/media/projects/{project.pk}/../secret.txt").status_code == 404


def api_as(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


def test_a_task_leased_to_another_annotator_cannot_be_skipped(project, make_user):
    holder = make_user("holder", role=Role.ANNOTATOR, project=project)
    intruder = make_user("intruder", role=Role.ANNOTATOR, project=project)
    task = make_page_task(project)
    assert (
        api_as(holder).post(f"/api/projects/{project.slug}/tasks/next/").json()["task"]["id"]
        == task.pk
    )

    response = api_as(intruder).post(f"/api/tasks/{task.pk}/skip/")

    assert response.status_code == 409
    assert "leased to another annotator" in response.json()["message"]
    task.refresh_from_db()
    assert (task.status, task.assignee_id) == (TaskStatus.LEASED, holder.pk)
    assert not TaskSkip.objects.exists()


def test_the_lease_holder_and_anyone_after_the_lease_expired_may_skip(project, make_user):
    holder = make_user("holder", role=Role.ANNOTATOR, project=project)
    other = make_user("other", role=Role.ANNOTATOR, project=project)
    first, second = make_page_task(project, priority=2), make_page_task(project, priority=1)
    api_as(holder).post(f"/api/projects/{project.slug}/tasks/next/")
    assert api_as(holder).post(f"/api/tasks/{first.pk}/skip/").status_code == 200
    assert Task.objects.get(pk=first.pk).status == TaskStatus.OPEN

    assert (
        api_as(holder).post(f"/api/projects/{project.slug}/tasks/next/").json()["task"]["id"]
        == second.pk
    )
    Task.objects.filter(pk=second.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assert api_as(other).post(f"/api/tasks/{second.pk}/skip/").status_code == 200
    assert api_as(other).post(f"/api/tasks/{first.pk}/skip/").status_code == 200  # unleased


def test_api_schema_and_docs_need_a_signed_in_user(client, make_user, project):
    assert client.get("/api/schema/?format=json").status_code in (401, 403)
    for page in ("/api/docs/", "/api/redoc/"):
        docs = client.get(page)
        assert docs.status_code == 302 and "/accounts/login/" in docs["Location"]
    client.force_login(make_user("ann", role=Role.ANNOTATOR, project=project))
    assert "paths" in client.get("/api/schema/?format=json").json()
    assert client.get("/api/docs/").status_code == 200
    assert client.get("/api/redoc/").status_code == 200


def test_api_schema_can_be_made_public(settings):
    import subprocess
    import sys

    # The schema view's permissions are read when the app starts: check a fresh process.
    code = (
        "import django, os; django.setup();"
        "from django.test import Client; c = Client();"
        "print(c.get('/api/schema/?format=json').status_code, c.get('/api/docs/').status_code)"
    )
    env = {**__import__("os").environ, "DJANGO_SETTINGS_MODULE": "config.settings",
           "PAGEWISE_PUBLIC_API_SCHEMA": "1", "ALLOWED_HOSTS": "testserver,localhost"}  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.stdout.split() == ["200", "200"], out.stderr[-2000:]
