"""Writes and business rules of labeling (imports live in labeling/imports.py)."""

from __future__ import annotations

from collections import defaultdict

from django.contrib.auth import get_user_model
from django.db import transaction

from .imports import upstream_ranks
from .models import Item, Membership, Project, Role


def recompute_upstream_ranks(*, project: Project) -> int:
    """Rank every item within its query and modality by upstream score; return rows changed."""
    groups = defaultdict(list)
    rows = {}
    for row in Item.objects.filter(project=project).only(
        "pk", "query_id", "modality", "upstream_score", "upstream_rank", "external_id"
    ):
        rows[row.pk] = row
        groups[(row.query_id, row.modality)].append((row.pk, row.upstream_score, row.external_id))
    changed = []
    for group in groups.values():
        for pk, rank in upstream_ranks(group).items():
            if rows[pk].upstream_rank != rank:
                rows[pk].upstream_rank = rank
                changed.append(rows[pk])
    with transaction.atomic():
        Item.objects.bulk_update(changed, ["upstream_rank"], batch_size=500)
    return len(changed)


def add_member(
    *, project: Project, username: str, role: str, password: str | None = None
) -> Membership:
    """Give a user (created if new) a role in a project; an existing membership changes role."""
    if role not in Role.values:
        raise ValueError(f"unknown role {role!r}")
    user_model = get_user_model()
    user, created = user_model.objects.get_or_create(username=username)
    if created or password:
        if password:
            user.set_password(password)
        else:
            user.set_unusable_password()
        user.save()
    membership, _ = Membership.objects.update_or_create(
        project=project, user=user, defaults={"role": role}
    )
    return membership
