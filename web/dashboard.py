"""Reads behind the lead's pages (dashboard numbers, agreement, disagreements to review) and the
few writes those pages make (settings, members, adjudications), each a small typed function.

Agreement on grades is Krippendorff's alpha at the ORDINAL level of measurement (grades are
ordered, the distances between them are not known to be equal); comparisons get percent agreement.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Sequence
from datetime import timedelta
from decimal import Decimal
from itertools import combinations
from typing import Any

import krippendorff
import numpy as np
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Max, Q

from active_selection.models import SimulationReport
from active_selection.recommendation import full_fraction_to_reach, latest_report
from active_selection.selectors import why_no_task
from active_selection.services import search_progress
from labeling.errors import Conflict, NotFound, PagewiseError
from labeling.models import (
    Adjudication,
    Item,
    ItemGrade,
    Judgment,
    Membership,
    Project,
    Role,
    Task,
    TaskKind,
    TaskStatus,
)
from labeling.money import exact_sum
from labeling.selectors import budget_status
from labeling.tally import tallied_figures
from ranking.models import RerankerVersion
from ranking.services import active_version, supervision_count

from . import charts

THROUGHPUT_WINDOW = timedelta(hours=24)

# --- Krippendorff's alpha (pure) ----------------------------------------------------------------


def krippendorff_alpha(units: Iterable[Sequence[float]], *, level: str = "ordinal") -> float | None:
    """Krippendorff's alpha of units, each the list of values its coders gave (missing left out).

    `level` is "nominal", "ordinal" or "interval". Units with fewer than two values are not
    pairable and are ignored. None when alpha is undefined (no pairable unit, or every value the
    same so no disagreement is expected). Computed by the `krippendorff` library (Krippendorff
    2011, "Computing Krippendorff's Alpha-Reliability") over the values that occur in pairable
    units, in order, as the ordinal metric requires.
    """
    if level not in ("nominal", "ordinal", "interval"):
        raise ValueError(f"unknown level {level!r}")
    pairable = [Counter(unit) for unit in map(list, units) if len(unit) >= 2]
    domain = sorted(set().union(*pairable)) if pairable else []
    if len(domain) < 2:
        return None
    counts = np.array([[unit[v] for v in domain] for unit in pairable], dtype=float)
    return float(
        krippendorff.alpha(value_counts=counts, value_domain=domain, level_of_measurement=level)
    )


def percent_agreement(units: Iterable[Sequence[Any]]) -> float | None:
    """Share of agreeing pairs among all pairs of answers given to the same unit (0..1)."""
    agree = total = 0
    for unit in units:
        for a, b in combinations(unit, 2):
            total += 1
            agree += a == b
    return agree / total if total else None


# --- dashboard ----------------------------------------------------------------------------------


def _money(value: Decimal) -> Decimal:
    return Decimal(value).quantize(Decimal("0.01"))


def spend_by_kind(*, project: Project) -> dict[str, dict[str, Any]]:
    rows = (
        Judgment.objects.filter(project=project)
        .values("kind")
        .annotate(cost=exact_sum("cost"), judgments=Count("pk"))
    )
    by_kind = {row["kind"]: row for row in rows}
    return {
        kind: {
            "label": label,
            "cost": by_kind.get(kind, {}).get("cost") or Decimal("0"),
            "judgments": by_kind.get(kind, {}).get("judgments", 0),
        }
        for kind, label in ((TaskKind.GRADE_PAGE, "Grades"), (TaskKind.COMPARE, "Comparisons"))
    }


def savings(*, project: Project, spent: Decimal) -> dict[str, Any]:
    """Like with like: the gold-set quality the project has now, and what full annotation is
    estimated (by the project's latest simulation) to need to reach it, against what was spent.

    `state` says what can be said: "no_items", "no_quality" (no version measured on gold: nothing
    to compare yet, whatever was spent), "no_simulation", "not_reached" (full annotation did not
    reach this quality in the simulation) or "estimated" (with the interval over its seeds).
    """
    # Kept in the project's tally by database triggers: no count over a million items.
    train_items = tallied_figures(project=project)["train_items"]
    full_cost = project.grade_cost * train_items
    result: dict[str, Any] = {
        "train_items": train_items,
        "full_cost": full_cost,
        "spent": spent,
        "spent_percent": float(spent / full_cost * 100) if full_cost else None,
        "quality": None,
        "version": None,
        "report": None,
        "estimate": None,
    }
    if not train_items:
        return {**result, "state": "no_items"}
    version = active_version(project=project)
    measured_on_gold = (
        version is not None and (version.metrics or {}).get("measured_on", "gold") == "gold"
    )
    if not measured_on_gold or version.gold_ndcg10 is None:
        return {**result, "state": "no_quality"}
    result.update(quality=version.gold_ndcg10, version=version.number)
    report = latest_report(project=project, status=SimulationReport.Status.DONE)
    reach = (
        full_fraction_to_reach(results=report.results or {}, quality=version.gold_ndcg10)
        if report
        else None
    )
    if reach is None:
        return {**result, "state": "no_simulation"}
    result["report"] = {
        "id": report.pk,
        "created_at": report.created_at,
        "seeds": reach["seeds"],
        "best": reach["best"],
    }
    if not reach["reached"]:
        return {**result, "state": "not_reached"}

    def cost(fraction: float) -> Decimal:
        return _money(full_cost * Decimal(str(fraction)))

    estimate = {
        "reached": reach["reached"],
        "fraction": reach["mean"],
        "low": reach["low"],
        "high": reach["high"],
        "cost": cost(reach["mean"]),
        "cost_low": cost(reach["low"]),
        "cost_high": cost(reach["high"]),
    }
    estimate["saved"] = estimate["cost"] - spent
    estimate["saved_low"] = estimate["cost_low"] - spent
    estimate["saved_high"] = estimate["cost_high"] - spent
    return {**result, "state": "estimated", "estimate": estimate}


def quality_by_cost(*, project: Project) -> dict[str, Any]:
    versions = list(
        RerankerVersion.objects.filter(project=project)
        .order_by("number")
        .values(
            "number",
            "status",
            "cost_spent",
            "gold_ndcg10",
            "labels_used",
            "created_at",
            "metrics",
            "message",
        )
    )
    for version in versions:
        # Beside the product's NDCG (exponential gain), trec_eval's linear-gain figure.
        metrics = version.pop("metrics") or {}
        version["ndcg_gain"] = metrics.get("ndcg_gain", "exponential")
        version["gold_trec_ndcg10"] = metrics.get("trec_ndcg@10")
    active = active_version(project=project)
    baselines = {}
    if active is not None:
        raw = (active.metrics or {}).get("baselines") or {}
        baselines = {
            str(name): float(value)
            for name, value in raw.items()
            if isinstance(value, int | float) and not isinstance(value, bool)
        }
    below = []
    if active is not None and active.gold_ndcg10 is not None:
        below = [
            {"name": name, "value": value}
            for name, value in sorted(baselines.items(), key=lambda kv: -kv[1])
            if value > active.gold_ndcg10
        ]
    return {
        "versions": versions,
        "active_number": active.number if active else None,
        "active_ndcg10": active.gold_ndcg10 if active else None,
        # Label-free baselines the active version does not beat: the dashboard says so.
        "baselines_above_active": below,
        "measured_on": (active.metrics or {}).get("measured_on", "gold") if active else None,
        "baselines": baselines,
    }


def labels_since_last_version(*, project: Project) -> int:
    """New supervision (human grades + human and implied pairs) since the latest version."""
    latest = (
        RerankerVersion.objects.filter(project=project)
        .exclude(status=RerankerVersion.Status.FAILED)
        .order_by("-number")
        .first()
    )
    return sum(supervision_count(project=project).values()) - (latest.labels_used if latest else 0)


def throughput(*, project: Project) -> list[dict[str, Any]]:
    """Per annotator, over the 24 h ending at the project's latest judgment: judgments, judgments
    per hour (count / hours between the annotator's first judgment in the window and the window's
    end, at least one hour) and the median seconds per judgment (from duration_ms)."""
    latest = Judgment.objects.filter(project=project).aggregate(t=Max("created_at"))["t"]
    if latest is None:
        return []
    start = latest - THROUGHPUT_WINDOW
    rows = (
        Judgment.objects.filter(project=project, created_at__gte=start)
        .order_by("annotator__username", "created_at")
        .values_list("annotator__username", "created_at", "duration_ms")
    )
    per: dict[str, list[tuple[Any, int]]] = defaultdict(list)
    for username, created_at, duration_ms in rows.iterator(chunk_size=2000):
        per[username].append((created_at, duration_ms))
    result = []
    for username, judged in per.items():
        hours = max((latest - judged[0][0]).total_seconds() / 3600, 1.0)
        result.append(
            {
                "annotator": username,
                "judgments": len(judged),
                "per_hour": round(len(judged) / hours, 1),
                "median_seconds": round(statistics.median(d for _, d in judged) / 1000, 1),
            }
        )
    return result


def _repeated_task_ids(project: Project, kind: str):
    return (
        # Each annotator's current answer only: a revision is not a second annotator.
        Judgment.objects.filter(project=project, kind=kind, superseded_by__isnull=True)
        .values("task_id")
        .annotate(n=Count("pk"))
        .filter(n__gt=1)
        .values("task_id")
    )


# Below this many items (or comparisons) judged more than once, an agreement figure is mostly
# noise: with few units alpha swings by tenths from one answer to the next.
MIN_AGREEMENT_UNITS = 30


def agreement(*, project: Project) -> dict[str, Any]:
    """Agreement where a task was judged more than once: ordinal Krippendorff's alpha on grades
    (overall and per annotator: over the units that annotator graded) and percent agreement on
    comparisons (overall and per annotator: over the pairs of answers that include theirs)."""
    grade_units: dict[tuple[int, int], list[tuple[str, int]]] = defaultdict(list)
    grade_rows = ItemGrade.objects.filter(
        judgment__task_id__in=_repeated_task_ids(project, TaskKind.GRADE_PAGE),
        judgment__superseded_by__isnull=True,
    ).values_list("judgment__task_id", "item_id", "judgment__annotator__username", "grade")
    for task_id, item_id, username, grade in grade_rows.iterator(chunk_size=2000):
        grade_units[(task_id, item_id)].append((username, grade))

    compare_units: dict[int, list[tuple[str, str]]] = defaultdict(list)
    compare_rows = Judgment.objects.filter(
        task_id__in=_repeated_task_ids(project, TaskKind.COMPARE), superseded_by__isnull=True
    ).values_list("task_id", "annotator__username", "outcome")
    for task_id, username, outcome in compare_rows.iterator(chunk_size=2000):
        compare_units[task_id].append((username, outcome))

    annotators = sorted(
        {u for unit in grade_units.values() for u, _ in unit}
        | {u for unit in compare_units.values() for u, _ in unit}
    )
    per_annotator = []
    for name in annotators:
        graded = [
            [g for _, g in unit] for unit in grade_units.values() if any(u == name for u, _ in unit)
        ]
        agree = total = 0
        for unit in compare_units.values():
            mine = [o for u, o in unit if u == name]
            others = [o for u, o in unit if u != name]
            for a in mine:
                for b in others:
                    total += 1
                    agree += a == b
        per_annotator.append(
            {
                "annotator": name,
                "graded_units": len(graded),
                "grade_alpha": krippendorff_alpha(graded),
                "compare_pairs": total,
                "compare_agreement": agree / total if total else None,
            }
        )
    return {
        "level": "ordinal",
        "min_units": MIN_AGREEMENT_UNITS,
        "grade_units": len(grade_units),
        "grade_alpha": krippendorff_alpha([g for _, g in unit] for unit in grade_units.values()),
        "compare_tasks": len(compare_units),
        "compare_agreement": percent_agreement(
            [o for _, o in unit] for unit in compare_units.values()
        ),
        "per_annotator": per_annotator,
    }


OPEN_TASKS_SHOWN = 50


def open_tasks(*, project: Project, limit: int = OPEN_TASKS_SHOWN) -> dict[str, Any]:
    """The open and leased tasks, best first, with why each was chosen (the reason names a
    comparison's anchor and its grade, so only leads see it: annotators' tasks are blind)."""
    pending = Task.objects.filter(project=project)
    # The best `limit` of each status through the queue index (project, status, -priority, id),
    # then the best `limit` of both: no sort or count of every open task's judgments.
    best = sorted(
        (
            row
            for status in (TaskStatus.OPEN, TaskStatus.LEASED)
            for row in pending.filter(status=status)
            .order_by("-priority", "id")
            .values_list("priority", "id")[:limit]
        ),
        key=lambda row: (-row[0], row[1]),
    )[:limit]
    tasks = (
        Task.objects.filter(pk__in=[pk for _, pk in best])
        .select_related("page__query", "anchor__query", "assignee")
        .annotate(judged=Count("judgments", distinct=True))
        .prefetch_related("excluded_annotators")
        .order_by("-priority", "id")
    )
    rows = []
    for task in tasks:
        query = task.page.query if task.page_id else task.anchor.query
        rows.append(
            {
                "id": task.pk,
                "kind": task.kind,
                "status": task.status,
                "query": query.external_id,
                "reason": task.reason,
                "priority": task.priority,
                "judged": task.judged,
                "judgments_required": task.judgments_required,
                "assignee": task.assignee.username if task.assignee_id else None,
                "excluded": sorted(u.username for u in task.excluded_annotators.all()),
            }
        )
    total = tallied_figures(project=project)["pending_tasks"]
    return {"total": total, "shown": rows}


def dashboard_summary(*, project: Project) -> dict[str, Any]:
    budget = budget_status(project=project)
    return {
        "currency": project.currency,
        "budget": budget,
        "spend_by_kind": spend_by_kind(project=project),
        "savings": savings(project=project, spent=budget["spent"]),
        "quality": quality_by_cost(project=project),
        "labels_since_last_version": labels_since_last_version(project=project),
        "retrain_threshold": project.retrain_threshold,
        "searches": search_progress(project=project),
        "throughput": throughput(project=project),
        "agreement": agreement(project=project),
        "open_tasks": open_tasks(project=project),
        "why_no_task": why_no_task(project=project),
    }


def dashboard_charts(summary: dict[str, Any]) -> dict[str, str]:
    """The SVG charts of a dashboard summary (see web/charts.py)."""
    currency = summary["currency"]
    budget = summary["budget"]
    result = {
        "budget": charts.stacked_bar(
            [
                charts.Segment("Spent", float(budget["spent"]), "#2563eb"),
                charts.Segment("Reserved", float(budget["reserved"]), "#f59e0b"),
                charts.Segment("Left", float(max(budget["left"], 0)), "#d1d5db"),
            ],
            title=f"Budget of {_money(budget['budget'])} {currency}: spent, reserved, left",
            unit=currency,
        ),
        "spend": charts.bar_chart(
            [(row["label"], float(row["cost"])) for row in summary["spend_by_kind"].values()],
            title="Spend by label type",
            unit=currency,
        ),
    }
    quality = summary["quality"]
    points = [
        (float(v["cost_spent"]), float(v["gold_ndcg10"]), f"v{v['number']}")
        for v in quality["versions"]
        if v["gold_ndcg10"] is not None
    ]
    if points:
        result["quality"] = charts.line_chart(
            points,
            baselines=sorted(quality["baselines"].items()),
            title="NDCG@10 on the gold set against cost spent",
            x_label=f"Cost spent ({currency})",
            y_label="NDCG@10 (exp. gain)",
            y_range=charts.fit_range(
                [y for _, y, _ in points] + list(quality["baselines"].values()), low=0.0, high=1.0
            ),
        )
    return result


# --- review of disagreements ------------------------------------------------------------------


def disagreements(*, project: Project, limit: int = 200) -> list[dict[str, Any]]:
    """Items whose grades differ within a task judged more than once, with any adjudication."""
    per_item: dict[int, list[tuple[str, int]]] = defaultdict(list)
    rows = (
        ItemGrade.objects.filter(
            judgment__task_id__in=_repeated_task_ids(project, TaskKind.GRADE_PAGE),
            judgment__superseded_by__isnull=True,
        )
        .order_by("item_id", "judgment__created_at")
        .values_list("item_id", "judgment__annotator__username", "grade")
    )
    for item_id, username, grade in rows.iterator(chunk_size=2000):
        per_item[item_id].append((username, grade))
    disputed = [i for i, grades in per_item.items() if len({g for _, g in grades}) > 1][:limit]
    items = Item.objects.filter(pk__in=disputed).select_related("query", "adjudication")
    result = []
    for item in items.order_by("query__external_id", "modality", "upstream_rank"):
        grades = per_item[item.pk]
        adjudication = getattr(item, "adjudication", None)
        result.append(
            {
                "item": item,
                "grades": grades,
                "median": statistics.median_low(g for _, g in grades),
                "spread": Counter(g for _, g in grades),
                "adjudicated": adjudication.grade if adjudication else None,
            }
        )
    return result


@transaction.atomic
def adjudicate(*, project: Project, item_id: int, grade: int, decided_by) -> Adjudication:
    """Record (or replace) the lead's final grade of an item of the project."""
    item = Item.objects.filter(project=project, pk=item_id).first()
    if item is None:
        raise NotFound(f"No item {item_id} in '{project.name}'.")
    if not 0 <= grade <= project.max_grade:
        raise PagewiseError(
            f"Grade must be between 0 and {project.max_grade}.", fields={"grade": ["out of range"]}
        )
    adjudication, _ = Adjudication.objects.update_or_create(
        item=item, defaults={"project": project, "grade": grade, "decided_by": decided_by}
    )
    return adjudication


# --- members ----------------------------------------------------------------------------------


def members_of(*, project: Project):
    return (
        Membership.objects.filter(project=project)
        .select_related("user")
        .annotate(judgments=Count("user__judgments", filter=Q(user__judgments__project=project)))
        .order_by("role", "user__username")
    )


def _check_role(role: str) -> None:
    if role not in Role.values:
        raise PagewiseError(
            f"Unknown role '{role}'; use one of {', '.join(Role.values)}.",
            fields={"role": ["invalid"]},
        )


def _ensure_a_lead_remains(project: Project, membership: Membership) -> None:
    if membership.role != Role.LEAD:
        return
    others = Membership.objects.filter(project=project, role=Role.LEAD).exclude(pk=membership.pk)
    if not others.exists():
        raise Conflict("A project needs at least one lead; make someone else lead first.")


@transaction.atomic
def add_existing_member(*, project: Project, username: str, role: str) -> Membership:
    """Give an existing user a role in the project (users are created by an administrator)."""
    _check_role(role)
    user = get_user_model().objects.filter(username=username.strip()).first()
    if user is None:
        raise PagewiseError(
            f"No user named '{username}'. An administrator creates accounts first.",
            fields={"username": ["unknown user"]},
        )
    if Membership.objects.filter(project=project, user=user).exists():
        raise Conflict(
            f"'{user.username}' is already a member; change their role instead.",
            fields={"username": ["already a member"]},
        )
    return Membership.objects.create(project=project, user=user, role=role)


def membership_of(*, project: Project, username: str) -> Membership:
    membership = (
        Membership.objects.select_related("user")
        .filter(project=project, user__username=username)
        .first()
    )
    if membership is None:
        raise NotFound(f"'{username}' is not a member of '{project.name}'.")
    return membership


@transaction.atomic
def change_role(*, project: Project, username: str, role: str) -> Membership:
    _check_role(role)
    membership = membership_of(project=project, username=username)
    if role != Role.LEAD:
        _ensure_a_lead_remains(project, membership)
    membership.role = role
    membership.save(update_fields=["role"])
    return membership


@transaction.atomic
def remove_member(*, project: Project, username: str) -> None:
    membership = membership_of(project=project, username=username)
    _ensure_a_lead_remains(project, membership)
    membership.delete()
