"""Selection strategies behind one interface: which items to grade on candidate pages.

Every strategy plans `grade_page` work; `iso_anchor` then spends what is left of the budget on
the anchor searches (active_selection/services.py), which turn few comparisons into many pairs.
"""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

PAGE_PRIORITY = 100  # candidate pages go first: their grades are the anchors of every search
SEARCH_PRIORITY = 50
REASK_PRIORITY = 80  # a contradiction blocks its search until the re-ask is answered
MAX_SEARCH_BONUS = REASK_PRIORITY - SEARCH_PRIORITY - 1
REST_PRIORITY = SEARCH_PRIORITY - 1  # grades the lead adds once the strategy has nothing to ask


def search_priority(informativeness: int) -> int:
    """Probes of the searches most likely to find relevant items first: when the budget runs out,
    the searches left undone are those that would mostly have confirmed grade 0."""
    return SEARCH_PRIORITY + min(max(informativeness, 0), MAX_SEARCH_BONUS)


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
    merged = []
    for position in range(max((len(items) for items in lists), default=0)):
        merged.extend(items[position] for items in lists if position < len(items))
    return merged


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
    if strategy in ("iso_anchor", "top_p"):
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
