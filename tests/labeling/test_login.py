"""Login is rate-limited; passwords are stored with Django's default hasher."""

import pytest
from django.contrib.auth.hashers import get_hasher
from django.core.cache import cache


@pytest.fixture(autouse=True)
def _clear_cache():
    cache.clear()
    yield
    cache.clear()


@pytest.mark.django_db
def test_login_is_refused_after_five_failures_even_with_the_right_password(
    client, make_user, settings
):
    make_user("ann", password="right-password-1")
    for _ in range(settings.PAGEWISE_LOGIN_FAILURES):
        response = client.post("/accounts/login/", {"username": "ann", "password": "wrong"})
        assert response.status_code == 200
    response = client.post("/accounts/login/", {"username": "ann", "password": "right-password-1"})
    assert response.status_code == 429
    assert b"Too many failed logins" in response.content
    assert "_auth_user_id" not in client.session


@pytest.mark.django_db
def test_login_works_below_the_limit(client, make_user):
    make_user("ann", password="right-password-1")
    client.post("/accounts/login/", {"username": "ann", "password": "wrong"})
    response = client.post("/accounts/login/", {"username": "ann", "password": "right-password-1"})
    assert response.status_code == 302


@pytest.mark.django_db
def test_passwords_are_hashed_with_the_default_hasher(make_user, settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.PBKDF2PasswordHasher"]
    user = make_user("ann", password="right-password-1")
    assert user.password.startswith(get_hasher().algorithm + "$")
    assert "right-password-1" not in user.password
