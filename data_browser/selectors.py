"""Reads of the data browser (top floor: labeling's data with active_selection's searches).

Every page costs a fixed number of queries, whatever the project's size: filters are semi-joins
on indexed columns, and per-row numbers are computed for the rows of the page only.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from statistics import median_low

from django.db.models import Count, Q, QuerySet

from active_selection.models import AnchorSearch, ImpliedGrade, ProbeTask
from labeling.models import (
    Adjudication,
    Item,
    ItemGrade,
    Judgment,
    Project,
    Query,
    Split,
    TaskKind,
)

STATUSES = [
    ("", "Any status"),
    ("ungraded", "Ungraded: no item graded yet"),
    ("graded", "Graded: some items graded"),
    ("searching", "Searching: an anchor search is open"),
    ("disagreements", "Disagreements: an item got different grades"),
    ("contradictions", "Contradictions: a search got contradicting answers"),
]
ITEM_FILTERS = [
    ("", "All items"),
    ("ungraded", "Ungraded (no grade, no implied interval)"),
    ("disagreements", "Disagreements (different grades)"),
    ("contradictions", "In a contradicted search"),
]


# Filters first collect the ids they keep from the (small) tables of human work, by the indexes
# of judgments, then filter the (large) tables of queries and items by those ids.


def _graded_query_ids(project: Project) -> list[int]:
    grades = ItemGrade.objects.filter(judgment__project=project)
    return list(grades.values_list("item__query_id", flat=True).distinct())


def _disagreement_item_ids(grades: QuerySet[ItemGrade]) -> list[int]:
    """Items whose current grades differ (a revised answer's old grades no longer count)."""
    return list(
        grades.filter(judgment__superseded_by__isnull=True)
        .values("item_id")
        .annotate(distinct_grades=Count("grade", distinct=True))
        .filter(distinct_grades__gt=1)
        .values_list("item_id", flat=True)
    )


def browse_queries(*, project: Project, text: str = "", split: str = "", status: str = ""):
    """The project's queries matching the search text, split and status, by external id."""
    queries: QuerySet[Query] = Query.objects.filter(project=project)
    text = text.strip()
    if text:
        queries = queries.filter(Q(external_id__icontains=text) | Q(text__icontains=text))
    if split in Split.values:
        queries = queries.filter(split=split)
    if status == "ungraded":
        queries = queries.exclude(pk__in=_graded_query_ids(project))
    elif status == "graded":
        queries = queries.filter(pk__in=_graded_query_ids(project))
    elif status == "searching":
        open_searches = AnchorSearch.objects.filter(project=project, status="open")
        queries = queries.filter(pk__in=list(open_searches.values_list("query_id", flat=True)))
    elif status == "disagreements":
        items = _disagreement_item_ids(ItemGrade.objects.filter(judgment__project=project))
        query_ids = Item.objects.filter(pk__in=items).values_list("query_id", flat=True)
        queries = queries.filter(pk__in=list(query_ids.distinct()))
    elif status == "contradictions":
        contradicted = AnchorSearch.objects.filter(project=project, contradictions__gt=0)
        queries = queries.filter(pk__in=list(contradicted.values_list("query_id", flat=True)))
    return queries.order_by("external_id")


def query_rows(*, queries: list[Query]) -> list[dict]:
    """Numbers for one page of queries: items, graded items, judgments, searches."""
    ids = [q.pk for q in queries]
    items = dict(
        Item.objects.filter(query_id__in=ids)
        .values("query_id")
        .annotate(n=Count("pk"))
        .values_list("query_id", "n")
    )
    graded = dict(
        ItemGrade.objects.filter(item__query_id__in=ids)
        .values("item__query_id")
        .annotate(n=Count("item_id", distinct=True))
        .values_list("item__query_id", "n")
    )
    pages = dict(
        Judgment.objects.filter(task__page__query_id__in=ids)
        .values("task__page__query_id")
        .annotate(n=Count("pk"))
        .values_list("task__page__query_id", "n")
    )
    searches: dict[int, dict] = defaultdict(lambda: {"open": 0, "done": 0, "contradicted": 0})
    for query_id, status, contradictions in AnchorSearch.objects.filter(
        query_id__in=ids
    ).values_list("query_id", "status", "contradictions"):
        searches[query_id][status] += 1
        searches[query_id]["contradicted"] += contradictions > 0
    return [
        {
            "query": q,
            "items": items.get(q.pk, 0),
            "graded": graded.get(q.pk, 0),
            "page_judgments": pages.get(q.pk, 0),
            "searches": searches.get(q.pk),
        }
        for q in queries
    ]


@dataclass
class ItemRow:
    item: Item
    # One per judgment: grade, who, when, ms, and whether a later revision replaced it.
    grades: list[dict] = field(default_factory=list)
    implied: list[tuple[int, int]] = field(default_factory=list)
    comparisons: list[dict] = field(default_factory=list)
    adjudicated: int | None = None

    @property
    def current_grades(self) -> list[int]:
        """The grades that count: each annotator's latest answer (as training reads them)."""
        return [g["grade"] for g in self.grades if not g["revised"]]

    @property
    def label(self) -> int | None:
        if self.adjudicated is not None:
            return self.adjudicated
        current = self.current_grades
        return median_low(current) if current else None

    @property
    def interval(self) -> tuple[int, int] | None:
        """The intersection of the intervals the searches imply (None when none does)."""
        if not self.implied:
            return None
        return max(low for low, _ in self.implied), min(high for _, high in self.implied)

    @property
    def has_disagreement(self) -> bool:
        return len(set(self.current_grades)) > 1


def query_items(*, query: Query, only: str = "") -> QuerySet[Item]:
    """The query's items, by modality (in the project's order) then upstream rank."""
    items = Item.objects.filter(query=query)
    if only == "ungraded":
        graded = ItemGrade.objects.filter(item__query=query).values_list("item_id", flat=True)
        implied = ImpliedGrade.objects.filter(item__query=query).values_list("item_id", flat=True)
        items = items.exclude(pk__in=[*graded, *implied])
    elif only == "disagreements":
        items = items.filter(
            pk__in=_disagreement_item_ids(ItemGrade.objects.filter(item__query=query))
        )
    elif only == "contradictions":
        probes = ProbeTask.objects.filter(search__query=query, search__contradictions__gt=0)
        items = items.filter(pk__in=list(probes.values_list("task__other_id", flat=True)))
    return items.order_by("modality", "upstream_rank", "external_id").defer("metadata")


def item_rows(*, items: list[Item]) -> list[ItemRow]:
    """Each item with the judgments behind its label: grades (who, when, how long), implied
    intervals, comparisons it took part in, and the lead's decision."""
    rows = {item.pk: ItemRow(item) for item in items}
    ids = list(rows)
    for item_id, grade, who, at, ms, revised_by in ItemGrade.objects.filter(
        item_id__in=ids
    ).values_list(
        "item_id", "grade", "judgment__annotator__username", "judgment__created_at",
        "judgment__duration_ms", "judgment__superseded_by",
    ).order_by("judgment__created_at"):  # fmt: skip
        rows[item_id].grades.append(
            {"grade": grade, "who": who, "at": at, "ms": ms, "revised": revised_by is not None}
        )
    for item_id, low, high in ImpliedGrade.objects.filter(item_id__in=ids).values_list(
        "item_id", "low", "high"
    ):
        rows[item_id].implied.append((low, high))
    compares = (
        Judgment.objects.filter(kind=TaskKind.COMPARE)
        .filter(Q(task__anchor_id__in=ids) | Q(task__other_id__in=ids))
        .values_list(
            "task__anchor_id", "task__other_id", "task__anchor__external_id",
            "task__other__external_id", "outcome", "annotator__username", "created_at",
            "duration_ms", "superseded_by",
        )
        .order_by("created_at")
    )  # fmt: skip
    for anchor, other, anchor_ext, other_ext, outcome, who, at, ms, revised_by in compares:
        for me, them_ext, mine_better in (
            (anchor, other_ext, outcome == "anchor_better"),
            (other, anchor_ext, outcome == "other_better"),
        ):
            if me in rows:
                verdict = (
                    "equal to" if outcome == "equal" else ("above" if mine_better else "below")
                )
                rows[me].comparisons.append(
                    {"verdict": verdict, "other": them_ext, "who": who, "at": at, "ms": ms,
                     "revised": revised_by is not None}
                )  # fmt: skip
    for item_id, grade in Adjudication.objects.filter(item_id__in=ids).values_list(
        "item_id", "grade"
    ):
        rows[item_id].adjudicated = grade
    return list(rows.values())


def query_searches(*, query: Query) -> list[dict]:
    """The query's anchor searches with their probes' answers (who, when) and contradictions."""
    searches = list(AnchorSearch.objects.filter(query=query).order_by("pk"))
    probes = defaultdict(list)
    rows = (
        ProbeTask.objects.filter(search__in=searches)
        .select_related("anchor", "task__other")
        .prefetch_related("task__judgments__annotator")
        .order_by("task_id")
    )
    for probe in rows:
        probes[probe.search_id].append(probe)
    result = []
    for search in searches:
        reasons = [
            c.get("reason", "")
            for anchor in (search.state or {}).get("anchors", [])
            for c in anchor.get("contradictions", [])
        ]
        result.append({"search": search, "probes": probes[search.pk], "contradictions": reasons})
    return result
