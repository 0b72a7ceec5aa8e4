"""Every webhooks URL × role: only the project's lead gets in. Anonymous users go to the login
page; an annotator or a scientist of the project gets a 403 that says what is missing; the lead of
another project gets a 404 (a project's existence does not leak), also for this project's hook and
delivery ids under their own project."""

from __future__ import annotations

import pytest
from django.urls import reverse

from labeling.models import Project
from webhooks import services
from webhooks.models import Delivery, Event


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(project, make_user):
    other = Project.objects.create(slug="other", name="Other project")
    hook = services.create_webhook(
        project=project, url="http://127.0.0.1:9/hook", events=[Event.JUDGMENT_STORED]
    )
    delivery = Delivery.objects.create(
        webhook=hook, event=Event.PING, payload={"event": "ping"}, status="failed"
    )
    users = {
        "lead": make_user("lead", role="lead", project=project),
        "annotator": make_user("ann", role="annotator", project=project),
        "scientist": make_user("sci", role="scientist", project=project),
        "other_lead": make_user("boss2", role="lead", project=other),
    }
    return {"users": users, "hook": hook, "delivery": delivery, "other": other}


def urls(world, slug="p"):
    hook, delivery = world["hook"], world["delivery"]
    return [
        ("get", reverse("webhooks", args=[slug]), None),
        ("post", reverse("webhooks", args=[slug]), {"url": "http://127.0.0.1:9/x", "events": ["judgment.stored"]}),
        ("get", reverse("webhook-detail", args=[slug, hook.pk]), None),
        ("post", reverse("webhook-detail", args=[slug, hook.pk]), {"action": "rotate"}),
        ("post", reverse("webhook-replay", args=[slug, delivery.pk]), None),
    ]  # fmt: skip


ROLES = ["anonymous", "annotator", "scientist", "other_lead", "lead"]


@pytest.mark.parametrize("role", ROLES)
@pytest.mark.parametrize("index", range(5))
def test_every_webhooks_url_for_every_role(client, world, role, index):
    method, url, data = urls(world)[index]
    if role != "anonymous":
        client.force_login(world["users"][role])
    secret = world["hook"].secret
    response = getattr(client, method)(url, data or {})
    if role == "anonymous":
        assert response.status_code == 302 and "/accounts/login/" in response["Location"]
    elif role in ("annotator", "scientist"):
        assert response.status_code == 403
        assert "This needs the role lead in" in response.content.decode()
    elif role == "other_lead":
        assert response.status_code == 404
    else:
        assert response.status_code in (200, 302, 400)
    if role != "lead":
        world["hook"].refresh_from_db()
        assert world["hook"].secret == secret, "nothing changed"
        assert Delivery.objects.count() == 1


def test_another_projects_lead_cannot_reach_this_projects_hook_through_their_own_project(
    client, world
):
    client.force_login(world["users"]["other_lead"])
    for method, url, data in urls(world, slug="other")[2:]:
        assert getattr(client, method)(url, data or {}).status_code == 404


def test_a_lead_sees_the_secret_and_the_delivery_log(client, world):
    client.force_login(world["users"]["lead"])
    html = client.get(reverse("webhook-detail", args=["p", world["hook"].pk])).content.decode()
    assert world["hook"].secret in html and "Pagewise-Signature" in html
    assert "ping" in html and "Failed" in html
