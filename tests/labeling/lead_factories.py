"""Builders for the lead / scientist tests: a small hand-built project with judged pages and
comparisons, and a large bulk-created one for the constant-memory export test."""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal

from django.utils import timezone

from labeling.models import (
    CandidatePage,
    CompareOutcome,
    Item,
    ItemGrade,
    Judgment,
    PageSlot,
    Project,
    Query,
    Split,
    Task,
    TaskKind,
    TaskStatus,
)


def make_page(project: Project, qid: str, n_items: int, *, split: str = Split.TRAIN):
    query = Query.objects.create(project=project, external_id=qid, text=f"query {qid}", split=split)
    items = [
        Item.objects.create(
            project=project, query=query, external_id=f"{qid}-d{i}",
            modality="text" if i % 2 == 0 else "image", title=f"Doc {i} of {qid}",
            upstream_score=1.0 - i / 10, upstream_rank=i // 2 + 1,
        )
        for i in range(n_items)
    ]  # fmt: skip
    page = CandidatePage.objects.create(project=project, query=query)
    PageSlot.objects.bulk_create(
        [PageSlot(page=page, position=i, item=item) for i, item in enumerate(items)]
    )
    task = Task.objects.create(
        project=project, kind=TaskKind.GRADE_PAGE, page=page, status=TaskStatus.DONE,
        judgments_required=2,
    )  # fmt: skip
    return query, items, task


def grade(task: Task, annotator, grades: list[int], *, duration_ms: int = 20_000, at=None):
    items = [slot.item for slot in task.page.slots.order_by("position")]
    judgment = Judgment.objects.create(
        task=task, project=task.project, annotator=annotator, kind=TaskKind.GRADE_PAGE,
        cost=task.project.grade_cost * len(items), duration_ms=duration_ms,
    )  # fmt: skip
    if at is not None:
        Judgment.objects.filter(pk=judgment.pk).update(created_at=at)
    ItemGrade.objects.bulk_create(
        [
            ItemGrade(judgment=judgment, item=item, grade=g)
            for item, g in zip(items, grades, strict=True)
        ]
    )
    return judgment


def compare(project: Project, anchor: Item, other: Item, answers: list[tuple[object, str]]):
    task = Task.objects.create(
        project=project, kind=TaskKind.COMPARE, anchor=anchor, other=other,
        status=TaskStatus.DONE, judgments_required=len(answers),
    )  # fmt: skip
    for annotator, outcome in answers:
        Judgment.objects.create(
            task=task, project=project, annotator=annotator, kind=TaskKind.COMPARE,
            outcome=outcome, cost=project.compare_cost, duration_ms=5_000,
        )  # fmt: skip
    return task


def small_project(project: Project, make_user) -> dict:
    """2 train queries × 4 items + 1 gold query × 2 items; grade cost 0.10, compare cost 0.05.

    q1 graded by ann1 and ann2 (they disagree on one item); q2 graded by ann1 only;
    one comparison answered by both (they agree) and one where they disagree.
    Spent: 3 grade judgments × 4 items × 0.10 = 1.20, plus 4 comparisons × 0.05 = 0.20 → 1.40.
    """
    project.grade_cost = Decimal("0.10")
    project.compare_cost = Decimal("0.05")
    project.budget = Decimal("10.00")
    project.save()
    ann1 = make_user("ann1", role="annotator", project=project)
    ann2 = make_user("ann2", role="annotator", project=project)
    q1, items1, task1 = make_page(project, "q1", 4)
    q2, items2, task2 = make_page(project, "q2", 4)
    gold = Query.objects.create(project=project, external_id="g1", text="gold", split=Split.GOLD)
    Item.objects.create(
        project=project, query=gold, external_id="g1-d0", modality="text", gold_grade=3
    )
    Item.objects.create(
        project=project, query=gold, external_id="g1-d1", modality="image", gold_grade=0
    )
    now = timezone.now()
    grade(task1, ann1, [3, 2, 0, 1], at=now - timedelta(hours=2), duration_ms=10_000)
    grade(task1, ann2, [3, 1, 0, 1], at=now - timedelta(hours=1), duration_ms=30_000)
    grade(task2, ann1, [4, 0, 0, 2], at=now, duration_ms=20_000)
    compare(
        project,
        items1[0],
        items1[1],
        [(ann1, CompareOutcome.ANCHOR_BETTER), (ann2, CompareOutcome.ANCHOR_BETTER)],
    )
    compare(
        project,
        items2[0],
        items2[1],
        [(ann1, CompareOutcome.ANCHOR_BETTER), (ann2, CompareOutcome.EQUAL)],
    )
    return {"ann1": ann1, "ann2": ann2, "items1": items1, "items2": items2, "task1": task1}


def shaped_project(
    project: Project, *, queries: int = 24, gold: int = 6, items_per_modality: int = 4
) -> Project:
    """A project for the simulator to take the shape of: `queries` queries (the last `gold` of them
    gold), each with `items_per_modality` text and image items in upstream order. Gold items are
    graded 3, 1, 0, 0, ... down each list (half relevant; upstream order agrees with the grades,
    but for every third list, where the first two are swapped)."""
    pattern = [3, 1] + [0] * (items_per_modality - 2)
    for q in range(queries):
        is_gold = q >= queries - gold
        query = Query.objects.create(
            project=project, external_id=f"s{q}", text=f"shaped query {q}",
            split=Split.GOLD if is_gold else Split.TRAIN,
        )  # fmt: skip
        for modality in ("text", "image"):
            grades = list(pattern)
            if q % 3 == 0:
                grades[0], grades[1] = grades[1], grades[0]
            Item.objects.bulk_create(
                [
                    Item(
                        project=project,
                        query=query,
                        external_id=f"s{q}-{modality}-{i}",
                        modality=modality,
                        upstream_score=1.0 - i / items_per_modality,
                        upstream_rank=i + 1,
                        gold_grade=grades[i] if is_gold else None,
                    )  # fmt: skip
                    for i in range(items_per_modality)
                ]
            )
    return project


def simulation_results(*, recommended: str | None = "iso_anchor", full: float | None = 0.7) -> dict:
    """A finished simulation's results dict (the shape `simulator.simulate` returns), by hand:
    iso_anchor matches full's NDCG@10 (0.7) at 20% of its cost, top_p and random do not. With
    another `recommended` (or None) only that one matches: pass a `full` above 0.72 to keep the
    numbers consistent."""
    curves = {
        "iso_anchor": [(0.05, 0.05, 0.55), (0.2, 0.2, 0.7), (1.0, 0.62, 0.72)],
        "top_p": [(0.05, 0.05, 0.52), (0.2, 0.2, 0.64), (1.0, 0.3, 0.66)],
        "random": [(0.05, 0.05, 0.41), (0.2, 0.2, 0.5), (1.0, 1.0, 0.6)],
        "full": [(0.05, 0.05, 0.45), (0.2, 0.2, 0.58), (1.0, 1.0, full)],
    }
    # Five seeds: each seed's world is easier or harder for every strategy alike (the spread of
    # each strategy), plus a little noise of its own (the spread of a paired difference).
    worlds = (-0.02, -0.01, 0.0, 0.01, 0.02)

    def per_seed(index: int, ndcg: float | None) -> list[dict]:
        return [
            {"seed": seed, "ndcg10": None if ndcg is None else
             round(ndcg + world + 0.001 * ((seed * 7 + index) % 3 - 1), 6)}
            for seed, world in enumerate(worlds)
        ]  # fmt: skip

    rows = [
        {
            "strategy": strategy,
            "budget": budget,
            "single_modal": True,
            "ndcg10_mean": ndcg,
            "ndcg10_std": 0.0,
            "cost": fraction * 100,
            "cost_fraction": fraction,
            "judgments": {"grade": 10, "compare": 0, "pages": 2},
            "seeds": len(worlds),
            "per_seed": per_seed(index, ndcg),
        }  # fmt: skip
        for index, (strategy, points) in enumerate(curves.items())
        for budget, fraction, ndcg in points
    ]
    cost_to_match = {"iso_anchor": 0.2, "top_p": None, "random": None, "full": 1.0}
    if recommended != "iso_anchor":  # only `recommended` (if any) matched full, at its full cost
        cost_to_match = {s: 1.0 if s == recommended else None for s in cost_to_match}
    return {
        "world": {
            "queries": 160,
            "heldout_queries": 40,
            "modalities": 2,
            "items_per_modality": 10,
            "relevant_share": 0.4,
            "upstream_tau": 0.7,
            "seeds": 5,
        },  # fmt: skip
        "full_ndcg10": full,
        "baselines": {"zscore_merge": 0.5, "round_robin": 0.45},
        "results": rows,
        "cost_to_match_full": cost_to_match,
        "cheapest_to_match_full": recommended,
        "seconds": 95.0,
    }
