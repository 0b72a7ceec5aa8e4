"""Selection strategies behind one interface: which items to grade on candidate pages.

Every strategy plans `grade_page` work; `iso_anchor` then spends what is left of the budget on
the anchor searches (active_selection/services.py), which turn few comparisons into many pairs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass
from itertools import zip_longest

PAGE_PRIORITY = 100  # candidate pages go first: their grades are the anchors of every search
# Calibration comparisons next: until each modality's offset is known, its grades (and so every
# search anchored on them) may sit on another scale.
CALIBRATION_PRIORITY = 90
SEARCH_PRIORITY = 50
REASK_PRIORITY = 80  # a contradiction blocks its search until the re-ask is answered
MAX_SEARCH_BONUS = REASK_PRIORITY - SEARCH_PRIORITY - 1
REST_PRIORITY = SEARCH_PRIORITY - 1  # grades the lead adds once the strategy has nothing to ask


def search_priority(informativeness: int) -> int:
    """Probes of the searches most likely to find relevant items first: when the budget runs out,
    the searches left undone are those that would mostly have confirmed grade 0."""
    return SEARCH_PRIORITY + min(max(informativeness, 0), MAX_SEARCH_BONUS)


# Strategies that measure each modality's grade offset with comparisons and correct its grades
# for training (ranking.services.grade_calibration). `full`, `top_p` and `random` train on the
# grades as given: that is what those strategies buy.
CALIBRATED_STRATEGIES = ("iso_anchor", "top_p_cal")
# The share of the budget such a strategy keeps from its pages for calibration comparisons, a
# prior fixed before any run: at 10% of the cost of grading every item it buys 0.2 comparisons per
# training item, tens per modality. Unspent (the offsets settled early), it buys searches or pages.
CALIBRATION_SHARE = 0.1
# A modality's offset is settled once this many comparisons measure it and its interval is this
# narrow: the correction (a whole number of grades) is then decided.
CALIBRATION_MIN_COMPARISONS = 8
CALIBRATION_WIDTH = 0.5


def calibration_share(strategy: str, *, modalities: int) -> float:
    """The budget share `strategy` keeps back for calibration comparisons (none with one modality)."""
    return CALIBRATION_SHARE if strategy in CALIBRATED_STRATEGIES and modalities > 1 else 0.0


def choose_calibration_pair(
    graded: Sequence[tuple[int, int, str, int]],
    *,
    reference: str,
    modality: str,
    asked: set[tuple[int, int]],
    uses: dict[int, int],
) -> tuple[int, int] | None:
    """The next (reference item, other item) to compare for `modality`'s offset, or None.

    `graded` holds (query_id, item_id, modality, human grade) of graded training items. Items of
    one query whose given grades are closest are compared first: with no offset they are mostly
    judged equal, with one the comparison says which way. Pairs where both were graded 0 go last
    (a grade of 0 hides an offset below 0), and queries asked least go first, so the comparisons
    spread over queries rather than one query's quirks.
    """
    by_query: dict[int, list[tuple[int, str, int]]] = {}
    for query_id, item_id, item_modality, grade in graded:
        by_query.setdefault(query_id, []).append((item_id, item_modality, grade))
    best = None
    for query_id, items in by_query.items():
        for r_id, r_modality, r_grade in items:
            if r_modality != reference:
                continue
            for b_id, b_modality, b_grade in items:
                if b_modality != modality or (r_id, b_id) in asked:
                    continue
                key = (
                    abs(r_grade - b_grade), r_grade == b_grade == 0, uses.get(query_id, 0),
                    query_id, r_id, b_id,
                )  # fmt: skip
                if best is None or key < best:
                    best = key
    return None if best is None else (best[4], best[5])


# iso_anchor's budget policies: how a budget is spread over queries (Project.budget_policy).
BREADTH_FIRST = "breadth_first"
PER_QUERY = "per_query"
POLICIES = (BREADTH_FIRST, PER_QUERY)


def search_share(
    policy: str,
    *,
    top_band: int,
    modalities: int,
    items_per_modality: float,
    grade_cost: float,
    compare_cost: float,
) -> float:
    """iso_anchor's share of the budget its pages leave to comparisons.

    `breadth_first` (the default): nothing is kept back; the top band of every training query is
    bought first, and the searches get what is left. Measured on the simulator's default world,
    breadth matters most at small budgets: labelled queries teach the reranker more than deeper
    labels on fewer queries.
    `per_query`: the expected cost of one query's searches against that of its top-band page, so
    the budget buys whole queries (page, then searches). Per query: one page of top_band x M
    grades; M searches (the reference R into each of the M-1 others, and the next most graded
    modality into R's own tail), each with about two anchors (the grades present in a top band)
    and ceil(log2(tail + 1)) probes per anchor.
    """
    if policy == BREADTH_FIRST:
        return 0.0
    if policy != PER_QUERY:
        raise ValueError(f"unknown policy {policy!r}; choose from {', '.join(POLICIES)}")
    page = top_band * modalities * grade_cost
    tail = max(math.ceil(items_per_modality) - top_band, 0)
    searches_per_query = modalities if modalities > 1 else 0
    probes = searches_per_query * 2 * math.ceil(math.log2(tail + 1))
    searches = probes * compare_cost
    return searches / (page + searches) if page + searches > 0 else 0.0


@dataclass(frozen=True)
class QueryItems:
    """One training query's items per modality, best upstream rank first."""

    query_id: int
    by_modality: dict[str, list[int]]


@dataclass(frozen=True)
class PagePlan:
    query_id: int
    item_ids: list[int]
    reason: str
    key: str  # stable within the query, so planning twice creates a page once


def interleave(lists: Sequence[Sequence[int]]) -> list[int]:
    """Round-robin by upstream rank: rank 1 of each modality, then rank 2, and so on."""
    if len(lists) == 1:
        return list(lists[0])
    return [
        item for rank in zip_longest(*lists, fillvalue=_GAP) for item in rank if item is not _GAP
    ]


_GAP = object()  # where a shorter list has run out


def top_band_page(query: QueryItems, *, top_band: int, page_size: int) -> list[int]:
    return interleave([items[:top_band] for items in query.by_modality.values()])[:page_size]


def plan_pages(
    strategy: str,
    queries: Sequence[QueryItems],
    *,
    top_band: int,
    page_size: int,
    max_items: int,
    seed: int = 0,
) -> list[PagePlan]:
    """Pages to grade, in the order they should be created, holding at most `max_items` items."""
    if strategy in ("iso_anchor", "top_p", "top_p_cal"):
        plans = [
            PagePlan(q.query_id, top_band_page(q, top_band=top_band, page_size=page_size),
                     f"Page grading: the top {top_band} of each modality", "top")
            for q in queries
        ]  # fmt: skip
    elif strategy == "full":
        plans = []
        for q in queries:
            merged = interleave(list(q.by_modality.values()))
            for start in range(0, len(merged), page_size):
                plans.append(
                    PagePlan(q.query_id, merged[start : start + page_size],
                             "Page grading: every item of the query", f"full{start // page_size}")
                )  # fmt: skip
    elif strategy == "random":
        rng = random.Random(seed)
        pool = [
            (q.query_id, item)
            for q in queries
            for items in q.by_modality.values()
            for item in items
        ]
        chosen = rng.sample(pool, min(max_items, len(pool)))
        rank = {
            item: r
            for q in queries
            for items in q.by_modality.values()
            for r, item in enumerate(items)
        }
        by_query: dict[int, list[int]] = {}
        for query_id, item in chosen:
            by_query.setdefault(query_id, []).append(item)
        plans = []
        for query_id, items in by_query.items():
            items.sort(key=lambda item: rank[item])
            for start in range(0, len(items), page_size):
                plans.append(
                    PagePlan(query_id, items[start : start + page_size],
                             "Page grading: randomly chosen items", f"random{start // page_size}")
                )  # fmt: skip
    else:
        raise ValueError(f"unknown strategy {strategy!r}")
    return _within(plans, max_items)


def _within(plans: list[PagePlan], max_items: int) -> list[PagePlan]:
    kept, used = [], 0
    for plan in plans:
        if plan.item_ids and used + len(plan.item_ids) <= max_items:
            kept.append(plan)
            used += len(plan.item_ids)
    return kept
