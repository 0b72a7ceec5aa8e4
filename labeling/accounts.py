"""Projects and people without the admin: who may create a project and creating one (its creator
becomes its lead), inviting people (a new account with a one-time set-password link, Django's
password-reset tokens), and each user's REST API token (DRF's authtoken)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.contrib.auth.tokens import default_token_generator
from django.core.validators import validate_email
from django.db import transaction
from django.urls import reverse
from django.utils.encoding import force_bytes
from django.utils.http import urlsafe_base64_encode
from django.utils.text import slugify
from rest_framework.authtoken.models import Token

from .errors import Conflict, PagewiseError
from .models import Membership, Project, Role, Strategy

CREATE_PERMISSION = "labeling.add_project"
MODALITY_NAME = re.compile(r"^[a-z][a-z0-9_-]{0,31}$")
USERNAME = re.compile(r"^[\w.@+-]{1,150}$")


def _check_role(role: str) -> None:
    if role not in Role.values:
        raise PagewiseError(
            f"Unknown role '{role[:40]}'; use one of {', '.join(Role.values)}.",
            fields={"role": ["invalid"]},
        )


def can_create_projects(user) -> bool:
    """Administrators, and users an administrator gave the permission "labeling | project | Can
    add project" (directly or through a group)."""
    return user.is_authenticated and (user.is_superuser or user.has_perm(CREATE_PERMISSION))


def _unique_slug(name: str) -> str:
    base = slugify(name)[:56].strip("-") or "project"
    slug, n = base, 1
    while Project.objects.filter(slug=slug).exists():
        n += 1
        slug = f"{base}-{n}"
    return slug


def clean_modalities(text: str) -> list[str]:
    names = [part.strip().lower() for part in re.split(r"[,\n]", text or "") if part.strip()]
    problems = [name for name in names if not MODALITY_NAME.match(name)]
    if problems:
        raise PagewiseError(
            f"Modality names are lowercase letters, digits, '-' or '_' (up to 32): "
            f"{', '.join(repr(p[:40]) for p in problems[:3])} is not.",
            fields={"modalities": ["invalid name"]},
        )
    if not names or len(names) > 8 or len(set(names)) != len(names):
        raise PagewiseError(
            "Name one to eight different modalities, e.g. text, image.",
            fields={"modalities": ["one to eight different names"]},
        )
    return names


@transaction.atomic
def create_project(*, creator, name: str, modalities: list[str], settings: dict) -> Project:
    """Create a project whose lead is its creator. `settings` were type-checked by the caller
    (web/api_lead.ProjectSettingsSerializer: grade names, costs, budget, page size, ...)."""
    if not can_create_projects(creator):
        raise PagewiseError("You may not create projects.")
    name = (name or "").strip()
    if any(ord(ch) < 32 for ch in name):
        raise PagewiseError(
            "A project name cannot hold control characters.", fields={"name": ["invalid"]}
        )
    if not name or len(name) > 200:
        raise PagewiseError(
            "Give the project a name (up to 200 characters).", fields={"name": ["required"]}
        )
    if settings.get("strategy", Strategy.ISO_ANCHOR) not in Strategy.values:
        raise PagewiseError("Unknown strategy.", fields={"strategy": ["invalid"]})
    project = Project.objects.create(
        slug=_unique_slug(name), name=name, modalities=modalities, **settings
    )
    Membership.objects.create(project=project, user=creator, role=Role.LEAD)
    return project


# --- people -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Invitation:
    user: object
    membership: Membership
    set_password_path: str


def set_password_path(user) -> str:
    """A one-time link: the token is void once the password is set (it hashes the password)
    or after PASSWORD_RESET_TIMEOUT (three days by default)."""
    uid = urlsafe_base64_encode(force_bytes(user.pk))
    return reverse("set-password", args=[uid, default_token_generator.make_token(user)])


@transaction.atomic
def invite_new_user(*, project: Project, username: str, email: str, role: str) -> Invitation:
    """Create an account (no usable password yet) with a role in the project and return the link
    with which its owner sets a password. An existing username is refused: add that user instead."""
    _check_role(role)
    username = (username or "").strip()
    email = (email or "").strip()
    if not USERNAME.match(username):
        raise PagewiseError(
            "A username is 1 to 150 letters, digits or @ . + - _ characters.",
            fields={"username": ["invalid"]},
        )
    if email:
        try:
            validate_email(email)
        except Exception:
            raise PagewiseError(
                f"'{email[:80]}' is not an email address.", fields={"email": ["invalid"]}
            ) from None
    users = get_user_model().objects
    if users.filter(username__iexact=username).exists():
        raise Conflict(
            f"There is already an account named '{username}': add it as an existing user.",
            fields={"username": ["taken"]},
        )
    user = users.create_user(username=username, email=email)  # no password: unusable
    membership = Membership.objects.create(project=project, user=user, role=role)
    return Invitation(user, membership, set_password_path(user))


def new_set_password_path(*, project: Project, username: str) -> str:
    """A fresh link for a member of the project who has not set a password yet."""
    membership = (
        Membership.objects.select_related("user")
        .filter(project=project, user__username=username)
        .first()
    )
    if membership is None:
        raise PagewiseError(f"'{username}' is not a member of '{project.name}'.")
    if membership.user.has_usable_password():
        raise Conflict(
            f"'{username}' has set a password already; they can log in (an administrator resets "
            "forgotten passwords)."
        )
    return set_password_path(membership.user)


# --- API tokens -------------------------------------------------------------------------------


def api_token_of(*, user) -> Token | None:
    return Token.objects.filter(user=user).first()


@transaction.atomic
def create_api_token(*, user) -> str:
    """Replace the user's token with a new one and return its key (shown to the user once)."""
    Token.objects.filter(user=user).delete()
    return Token.objects.create(user=user).key


def revoke_api_token(*, user) -> bool:
    deleted, _ = Token.objects.filter(user=user).delete()
    return bool(deleted)


DEFAULT_SETTINGS = {
    "grade_cost": Decimal("0.10"),
    "compare_cost": Decimal("0.05"),
    "budget": Decimal("100.00"),
    "page_size": 10,
    "strategy": Strategy.ISO_ANCHOR,
}
