"""Writes and business rules of labeling (imports live in labeling/imports.py)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Max

from .errors import PagewiseError
from .imports import upstream_ranks
from .models import Adjudication, Item, ItemGrade, Membership, Project, Role, vlm_model_dir
from .overlap import apply_overlap
from .signals import announce, project_settings_changed


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


# --- settings ---------------------------------------------------------------------------------

SETTINGS_FIELDS = [
    "grade_names", "grade_cost", "compare_cost", "currency", "budget", "strategy",
    "budget_policy", "page_size", "top_band", "retrain_threshold", "judgments_per_task",
    "overlap_comparisons",
    "vlm_model", "vlm_mode", "vlm_upstream", "vlm_baseline", "vlm_features", "vlm_distill",
]  # fmt: skip


@transaction.atomic
def update_project_settings(*, project: Project, changes: dict[str, Any]) -> Project:
    """Apply already type-checked settings; rules that span fields or data are checked here.

    Locks the project row so two leads saving at once cannot interleave their checks.
    """
    locked = Project.objects.select_for_update(no_key=True).get(pk=project.pk)
    merged = {name: changes.get(name, getattr(locked, name)) for name in SETTINGS_FIELDS}
    problems: dict[str, list[str]] = {}
    names = merged["grade_names"]
    highest_used = max(
        ItemGrade.objects.filter(item__project=project).aggregate(m=Max("grade"))["m"] or 0,
        Item.objects.filter(project=project).aggregate(m=Max("gold_grade"))["m"] or 0,
        Adjudication.objects.filter(project=project).aggregate(m=Max("grade"))["m"] or 0,
    )
    if len(names) <= highest_used:
        problems["grade_names"] = [
            f"Grades up to {highest_used} are already in use; keep at least {highest_used + 1} "
            "grade names."
        ]
    if merged["top_band"] > merged["page_size"]:
        problems["top_band"] = [
            f"The top band ({merged['top_band']}) cannot be larger than the page size "
            f"({merged['page_size']})."
        ]
    switches = ("vlm_upstream", "vlm_baseline", "vlm_features", "vlm_distill")
    if any(merged[name] for name in switches):
        directory = vlm_model_dir(merged["vlm_model"])
        field = "vlm_model" if merged["vlm_model"] else next(n for n in switches if merged[n])
        if directory is None:
            problems[field] = [
                "No vision-language model is configured on this server: set PAGEWISE_VLM_PATH, "
                "or name a model directory under PAGEWISE_VLM_ROOT, before turning the scorer on."
            ]
        elif not directory.is_dir():
            problems[field] = [f"There is no model directory '{directory.name}' on the server."]
    if problems:
        raise PagewiseError("Some settings are not valid.", fields=problems)
    for name, value in merged.items():
        setattr(locked, name, value)
    locked.full_clean(exclude=["slug"])
    locked.save(update_fields=SETTINGS_FIELDS)
    apply_overlap(project=locked)  # open tasks follow a changed number of judgments per task
    for name in SETTINGS_FIELDS:
        setattr(project, name, getattr(locked, name))
    transaction.on_commit(lambda: announce(project_settings_changed, project_id=locked.pk))
    return locked
