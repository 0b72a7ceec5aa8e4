"""The calibration check of a project: a few cross-modal comparisons between gold items of
different modalities and grades, and each modality's grade offset against the reference modality
measured from their answers (active_selection.calibration, the pure estimator)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from django.db import transaction

from labeling.models import Item, Judgment, Project, Split, Task, TaskKind, TaskStatus
from labeling.selectors import budget_status

from . import calibration
from .models import CalibrationCheck
from .strategies import PAGE_PRIORITY

KEY = "calibration:"
PER_MODALITY = 12


def reference_modality(project: Project) -> str:
    return project.modalities[0]


def gold_items(project: Project) -> dict[str, list[Item]]:
    by_modality: dict[str, list[Item]] = defaultdict(list)
    for item in Item.objects.filter(
        project=project, query__split=Split.GOLD, gold_grade__isnull=False
    ).order_by("query_id", "modality", "gold_grade", "pk"):
        by_modality[item.modality].append(item)
    return by_modality


def gold_modalities(project: Project) -> set[str]:
    """The modalities that have graded items in some gold query: one EXISTS each, led by the gold
    queries (the settings page asks; loading the gold items took 127 ms at 1,000,000 items)."""
    gold = Item.objects.filter(
        query__project=project, query__split=Split.GOLD, gold_grade__isnull=False
    )
    return {m for m in project.modalities if gold.filter(modality=m).exists()}


def nothing_to_measure(project: Project) -> str:
    """Why no calibration can be measured on this project, or "" when it can."""
    if len(project.modalities) < 2:
        return "The project has one modality: there is no offset between modalities to measure."
    graded = gold_modalities(project)
    reference = reference_modality(project)
    if reference not in graded:
        return (
            f"No gold query has graded {reference} items: import gold queries with gold grades "
            "of every modality to measure on."
        )
    if not graded - {reference}:
        return (
            f"No gold query has graded items of a modality other than {reference}: there is no "
            "gold to measure on."
        )
    return ""


def plan_calibration(*, project: Project, per_modality: int = PER_MODALITY) -> int:
    """Create up to `per_modality` comparisons per other modality, each between a reference gold
    item and a gold item of that modality of the same query, spread over the grades of both
    (every grade pair once before any twice), within the budget. Returns the tasks created."""
    if nothing_to_measure(project):
        return 0
    reference = reference_modality(project)
    items = gold_items(project)
    with transaction.atomic():
        Project.objects.select_for_update(no_key=True).filter(pk=project.pk).first()
        left = budget_status(project=project)["left"]
        created = 0
        for modality in project.modalities:
            if modality == reference:
                continue
            pairs = [
                (a, b)
                for a in items[reference]
                for b in items.get(modality, [])
                if a.query_id == b.query_id
            ]
            # One pair per (reference grade, other grade) first: the offset shows across grades.
            firsts: dict[tuple[int, int], tuple[Item, Item]] = {}
            for a, b in pairs:
                firsts.setdefault((a.gold_grade, b.gold_grade), (a, b))
            ordered = list(firsts.values()) + [p for p in pairs if p not in firsts.values()]
            for a, b in ordered[:per_modality]:
                if left < project.compare_cost:
                    break
                _, is_new = Task.objects.get_or_create(
                    project=project, dedupe_key=f"{KEY}{a.pk}:{b.pk}",
                    defaults={
                        "kind": TaskKind.COMPARE, "anchor": a, "other": b,
                        "priority": PAGE_PRIORITY + 1,
                        "reason": f"Calibration: {modality} against {reference} on gold items "
                        f"(grades {a.gold_grade} and {b.gold_grade})",
                    },
                )  # fmt: skip
                if is_new:
                    created += 1
                    left -= project.compare_cost
    return created


def measure_calibration(*, project: Project) -> CalibrationCheck | None:
    """Estimate each other modality's offset from the answered calibration comparisons and store
    it; None when nothing can be measured (see `nothing_to_measure`)."""
    if nothing_to_measure(project):
        return None
    reference = reference_modality(project)
    rows = Judgment.objects.filter(
        project=project, task__dedupe_key__startswith=KEY, outcome__isnull=False
    ).values_list(
        "task__anchor__gold_grade", "task__other__modality", "task__other__gold_grade", "outcome"
    )
    comparisons: dict[str, list[calibration.Comparison]] = {
        m: [] for m in project.modalities if m != reference
    }
    for reference_grade, modality, other_grade, outcome in rows:
        comparisons.setdefault(modality, []).append(
            calibration.Comparison(reference_grade, other_grade, outcome)
        )
    estimates = calibration.estimate_offsets(
        {m: calibration.observations_from_comparisons(c) for m, c in comparisons.items()},
        max_grade=project.max_grade,
    )
    return CalibrationCheck.objects.create(
        project=project,
        reference_modality=reference,
        estimates={m: e.as_dict() for m, e in estimates.items()},
        comparisons=sum(len(c) for c in comparisons.values()),
    )


def calibration_card(*, project: Project) -> dict[str, Any]:
    """What the settings page says of the calibration check."""
    latest = CalibrationCheck.objects.filter(project=project).order_by("-created_at", "-pk").first()
    tasks = Task.objects.filter(project=project, dedupe_key__startswith=KEY)
    lines = []
    if latest is not None:
        for modality, e in sorted(latest.estimates.items()):
            if not e["n"]:
                lines.append(f"{modality}: no calibration comparison answered yet.")
                continue
            half = (e["high"] - e["low"]) / 2
            direction = "above" if e["offset"] >= 0 else "below"
            told = (
                "told apart from 0"
                if e["low"] > 0 or e["high"] < 0
                else "not told apart from 0 (no correction)"
            )
            lines.append(
                f"{modality} grades run {e['offset']:+.1f} ± {half:.1f} {direction} "
                f"{latest.reference_modality} (90% interval {e['low']:+.1f} to {e['high']:+.1f}; "
                f"{e['n']} comparisons; {told})."
            )
    return {
        "missing": nothing_to_measure(project),
        "latest": latest,
        "lines": lines,
        "planned": tasks.count(),
        "answered": tasks.filter(status=TaskStatus.DONE).count(),
        "per_modality": PER_MODALITY,
    }
