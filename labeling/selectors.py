"""Reads of labeling: which projects a user sees, their role, and project summaries."""

from __future__ import annotations

from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db.models import CharField, Count, IntegerField, OuterRef, Q, QuerySet, Subquery, Value
from django.db.models.functions import Coalesce

from .errors import NotFound, PermissionDenied
from .guidelines import GUIDELINE_NOW, with_current_guideline
from .models import Membership, Project, Query, Split
from .prepared import ID, TEXT, PreparedInstances
from .tally import counted_graded_items, money, tallied, tallied_figures


def count_per_project(queryset) -> Coalesce:
    """A correlated count of `queryset`'s rows of the outer project (0 when none).

    One aggregate per project over the table's project index: counting queries and items in one
    join would multiply them (queries x items rows) before counting.
    """
    counted = (
        queryset.filter(project_id=OuterRef("pk"))
        .order_by()
        .values("project_id")
        .annotate(n=Count("*"))
        .values("n")
    )
    return Coalesce(Subquery(counted, output_field=IntegerField()), 0)


def projects_for(*, user) -> QuerySet[Project]:
    projects = (
        Project.objects.all()
        if user.is_superuser
        else Project.objects.filter(memberships__user=user)
    )
    return projects.annotate(
        query_count=count_per_project(Query.objects.all()), item_count=tallied("items")
    ).order_by("name")


def role_of(*, user, project: Project) -> str | None:
    """The user's role in the project (None: not a member). Free when the project was read with
    `with_viewer_role` for this user."""
    if not user.is_authenticated:
        return None
    if user.is_superuser:
        return "lead"
    if getattr(project, "viewer_role_of", None) == user.pk:
        return project.viewer_role
    return (
        Membership.objects.filter(project=project, user=user).values_list("role", flat=True).first()
    )


def member_role(user_id, *, project_id: str = "pk") -> Subquery:
    """The role in the row's project of the user `user_id` (a value, or an expression such as the
    user a token names): None for a non-member."""
    return Subquery(
        Membership.objects.filter(project_id=OuterRef(project_id), user_id=user_id)
        .order_by("id")
        .values("role")[:1]
    )


def with_viewer_role(queryset: QuerySet, *, user, project_id: str = "pk") -> QuerySet:
    """Annotate each row with the user's role in the row's project (`viewer_role`, None for a
    non-member), so that reading the row and the role is one statement, not two."""
    if not user.is_authenticated:
        role = Value(None, output_field=CharField())
    elif user.is_superuser:
        role = Value("lead", output_field=CharField())
    else:
        role = member_role(user.pk, project_id=project_id)
    return queryset.annotate(
        viewer_role=role, viewer_role_of=Value(user.pk, output_field=IntegerField())
    )


# Every API request of an annotator starts here: prepared once (labeling/prepared.py).
_PROJECT_WITH_ROLE = PreparedInstances(
    lambda slug, user: with_current_guideline(
        with_viewer_role(Project.objects.filter(slug=slug), user=get_user_model()(pk=user))
    )[:1],
    extra=("viewer_role", "viewer_role_of", *GUIDELINE_NOW), slug=TEXT, user=ID,
)  # fmt: skip


def project_for(*, user, slug: str, roles: tuple[str, ...] | None = None, read=None) -> Project:
    """The project named by slug if the user may see it (with one of `roles`, when given).

    Non-members get NotFound rather than PermissionDenied, so a project's existence does not leak.
    `read`: what reads the project already sent (a list of at most one, read as _PROJECT_WITH_ROLE
    reads it: the caller's token's read, web.authentication), instead of reading it now.
    """
    if read is not None:
        project = next(iter(read()), None)
    elif user.is_authenticated:
        project = _PROJECT_WITH_ROLE.first(slug=slug, user=user.pk)
    else:
        project = None
    role = role_of(user=user, project=project) if project else None
    if project is None or role is None:
        raise NotFound(f"No project '{slug}'.")
    if roles is not None and role not in roles:
        raise PermissionDenied(f"This needs the role {' or '.join(roles)} in '{project.name}'.")
    return project


def project_counts(*, project: Project) -> dict[str, int]:
    # Two aggregates, not one join: queries x items rows would be counted otherwise.
    counts = project.queries.aggregate(
        queries=Count("pk"), gold_queries=Count("pk", filter=Q(split="gold"))
    )
    return {**counts, "items": tallied_figures(project=project)["items"]}


def budget_status(*, project: Project) -> dict[str, Decimal]:
    """Spent (judgments), reserved (open and leased work not yet judged) and what is left.

    One read of the project's tally (labeling.tally), which database triggers keep up to date: the
    sum of judgment costs, and the units still missing on pending tasks (a comparison each, or a
    grade per slot of the page, times the judgments each still needs).
    """
    figures = tallied_figures(project=project)
    spent = money(figures["spent_units"])
    reserved = (
        project.compare_cost * figures["compare_units"]
        + project.grade_cost * figures["grade_units"]
    )
    return {
        "budget": project.budget,
        "spent": spent,
        "reserved": reserved,
        "left": project.budget - spent - reserved,
    }


def human_grades(*, query_ids) -> dict[int, int]:
    """Each human-graded item's label: the lead's adjudicated grade when there is one, else the
    lower median of its grades (one per judgment)."""
    from collections import defaultdict
    from statistics import median_low

    from .models import Adjudication, ItemGrade

    grades: dict[int, list[int]] = defaultdict(list)
    # Only each annotator's current answer counts: a revised judgment's grades are replaced.
    rows = ItemGrade.objects.filter(
        item__query_id__in=query_ids, judgment__superseded_by__isnull=True
    ).values_list("item_id", "grade")
    for item_id, grade in rows.iterator():
        grades[item_id].append(grade)
    labels = {item_id: median_low(values) for item_id, values in grades.items()}
    decided = Adjudication.objects.filter(item__query_id__in=query_ids)
    labels.update(decided.values_list("item_id", "grade"))
    return labels


def human_graded_item_count(*, project: Project, split: str) -> int:
    """len(human_grades(...)) over the project's queries of `split`: the distinct items with a
    current grade or an adjudication. The training split's count is kept in the project's tally
    (one row read, however many items and grades); other splits are counted over their grades."""
    if split == Split.TRAIN:
        return tallied_figures(project=project)["graded_train_items"]
    return counted_graded_items(project=project, split=split)
