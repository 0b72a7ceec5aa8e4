"""CSRF on every form; secrets only from the environment."""

import re
from pathlib import Path

import pytest
from django.test import Client

ROOT = Path(__file__).resolve().parents[1]


def test_every_post_form_carries_a_csrf_token():
    for template in (ROOT / "templates").rglob("*.html"):
        html = template.read_text()
        for form in re.findall(r"<form\b[^>]*>.*?</form>", html, flags=re.S | re.I):
            if re.search(r'method=["\']?post', form, flags=re.I):
                assert "{% csrf_token %}" in form, (
                    f"{template.relative_to(ROOT)}: a POST form without csrf_token"
                )


@pytest.mark.django_db
@pytest.mark.parametrize(
    "path",
    ["/accounts/login/", "/projects/p/settings/", "/projects/p/members/", "/projects/p/import/"],
)
def test_posts_without_the_csrf_token_are_refused(path, project, make_user):
    lead = make_user("lead", role="lead", project=project)
    client = Client(enforce_csrf_checks=True)
    client.force_login(lead)
    assert client.post(path, {"username": "x", "password": "y"}).status_code == 403


def test_no_secret_is_written_in_the_code():
    settings_py = (ROOT / "config" / "settings.py").read_text()
    assert 'os.environ.get("SECRET_KEY"' in settings_py
    compose = (ROOT / "docker" / "compose.yaml").read_text()
    assert "SECRET_KEY: ${SECRET_KEY:?" in compose
