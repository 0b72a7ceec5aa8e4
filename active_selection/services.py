"""Active selection on the database: candidate pages, the anchor searches, and their supervision.

Every function here is safe to run twice: task generators key their tasks (`Task.dedupe_key`),
and the search state is advanced under a row lock, with each judgment recorded once.
"""

from __future__ import annotations

import gc
import logging
import math
import sqlite3
from collections import defaultdict
from contextlib import contextmanager
from decimal import Decimal
from functools import partial
from itertools import groupby
from operator import itemgetter

from django.db import connection, transaction
from django.db.models import Count, Q, Sum
from django.utils import timezone

from labeling import selectors as labeling_selectors
from labeling.models import (
    BudgetPolicy,
    CandidatePage,
    CompareOutcome,
    Item,
    ItemGrade,
    Judgment,
    PageSlot,
    Project,
    Query,
    Split,
    Strategy,
    Task,
    TaskKind,
    TaskStatus,
)
from labeling.overlap import required_for
from labeling.selectors import budget_status
from labeling.signals import announce, search_finished
from ranking.services import grade_calibration, maybe_queue_retrain

from . import search as pure
from .models import AnchorSearch, ImpliedGrade, PairSource, PreferencePair, ProbeTask
from .strategies import (
    CALIBRATION_MIN_COMPARISONS,
    CALIBRATION_PRIORITY,
    CALIBRATION_WIDTH,
    PAGE_PRIORITY,
    REASK_PRIORITY,
    REST_PRIORITY,
    PagePlan,
    QueryItems,
    calibration_share,
    choose_calibration_pair,
    interleave,
    plan_pages,
    search_priority,
    search_share,
)

log = logging.getLogger(__name__)

OUTCOME_FROM_ANCHOR_SIDE = {
    CompareOutcome.OTHER_BETTER: pure.Outcome.B_BETTER,
    CompareOutcome.ANCHOR_BETTER: pure.Outcome.ANCHOR_BETTER,
    CompareOutcome.EQUAL: pure.Outcome.EQUAL,
}


# --- candidate pages ------------------------------------------------------------------------


def training_queries(*, project: Project) -> list[QueryItems]:
    """Each train query's items per modality in upstream order (unscored items last).

    The rows come sorted by query: each query's items are one run of rows, grouped as they stream
    in (a million items at scale), with no lookup across queries and no sort in Python.
    """
    rows = (
        Item.objects.filter(project=project, query__split=Split.TRAIN)
        .order_by("query_id", "modality", "upstream_rank", "external_id")
        .values_list("query_id", "modality", "pk", "upstream_rank")
    )
    queries = []
    for query_id, query_rows in groupby(rows.iterator(chunk_size=10_000), key=itemgetter(0)):
        ranked: dict[str, list[int]] = {m: [] for m in project.modalities}
        unranked: dict[str, list[int]] = {}
        for _, modality, pk, rank in query_rows:
            (ranked if rank is not None else unranked).setdefault(modality, []).append(pk)
        for modality, pks in unranked.items():
            ranked.setdefault(modality, []).extend(pks)
        queries.append(QueryItems(query_id, {m: items for m, items in ranked.items() if items}))
    return queries


def create_page_tasks(*, project: Project, seed: int = 0) -> int:
    """Plan the project's candidate pages with its strategy and create the ones the budget pays.

    Run again, it creates only pages not created before (dedupe keys) while budget remains.
    Under iso_anchor's `per_query` budget policy, pages leave the searches their share of the
    budget (`page_allowance`).
    """
    with transaction.atomic(), _cyclic_gc_paused():
        # One planner at a time per project: the budget check and the inserts must not interleave.
        Project.objects.select_for_update(no_key=True).filter(pk=project.pk).first()
        left = budget_status(project=project)["left"]
        allowance = page_allowance(project=project)
        if allowance is not None:
            left = min(left, allowance)
        max_items = math.floor(left / project.grade_cost) if project.grade_cost > 0 else 10**9
        planned = {
            key.split(":")[1]
            for key in Task.objects.filter(
                project=project, kind=TaskKind.GRADE_PAGE, dedupe_key__startswith="page:"
            ).values_list("dedupe_key", flat=True)
        }
        queries = [q for q in training_queries(project=project) if str(q.query_id) not in planned]
        plans = plan_pages(
            project.strategy, queries, top_band=project.top_band, page_size=project.page_size,
            max_items=max(max_items, 0), seed=seed,
        )  # fmt: skip
        for start in range(0, len(plans), PLAN_BATCH):
            _create_pages(project=project, plans=plans[start : start + PLAN_BATCH])
    return len(plans)


# Pages stored per round (their slots and tasks with them): bounds the rows held in memory.
PLAN_BATCH = 10_000


@contextmanager
def _cyclic_gc_paused():
    """Python's cycle collector off for a while. Planning makes a few objects per item (lists,
    tuples, plans), none of them in a cycle, and each few hundred allocations set the collector
    walking all of them again: at 100,000 pages half of planning's Python time (0.5 of 1 s)."""
    if not gc.isenabled():
        yield
        return
    gc.disable()
    try:
        yield
    finally:
        gc.enable()


def _create_pages(*, project: Project, plans: list[PagePlan]) -> None:
    """Store the candidate pages of `plans`, their slots and their grade_page tasks.

    Plain rows straight to the database, the pages' ids reserved first so that slots and tasks can
    name them: building a model instance per slot costs more than the database's own work
    (100,000 pages of 10 items are a million slots). Tasks are stored in plan order, so their ids
    (the queue's tie-break) follow it.
    """
    now = connection.ops.adapt_datetimefield_value(timezone.now())
    # Read once, not per row (a model's pk and an enum's value are properties).
    project_id, required = project.pk, project.judgments_per_task
    kind, status = TaskKind.GRADE_PAGE.value, TaskStatus.OPEN.value
    page_ids = _reserve_ids(CandidatePage, len(plans))
    pages = list(zip(page_ids, plans, strict=True))
    _store_rows(
        CandidatePage, ["id", "project_id", "query_id", "created_at"],
        [(page_id, project_id, plan.query_id, now) for page_id, plan in pages],
    )  # fmt: skip
    _store_rows(
        PageSlot, ["page_id", "position", "item_id"],
        [(page_id, i, item) for page_id, plan in pages for i, item in enumerate(plan.item_ids)],
    )  # fmt: skip
    _store_rows(
        Task,
        ["project_id", "kind", "status", "page_id", "reason", "priority", "judgments_required",
         "dedupe_key", "created_at"],
        [
            (project_id, kind, status, page_id, plan.reason[:300], PAGE_PRIORITY, required,
             f"page:{plan.query_id}:{plan.key}", now)
            for page_id, plan in pages
        ],
    )  # fmt: skip


def _reserve_ids(model, count: int) -> list[int]:
    """`count` new primary keys of `model`, ascending, that no other row has or will be given.

    PostgreSQL draws them from the table's sequence (looked up once: per id, the lookup cost ten
    times the draw) and sends back the runs of consecutive ids they form, one unless another
    session drew ids meanwhile, rather than each id. On SQLite the transaction holds the write lock
    from its start (transaction_mode IMMEDIATE), so the ids after the highest ever given
    (AUTOINCREMENT's sqlite_sequence) stay free until it commits.
    """
    table = model._meta.db_table
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute(
                "SELECT min(id), max(id) FROM (SELECT id, id - row_number() OVER (ORDER BY id) AS run"
                " FROM (SELECT nextval((SELECT pg_get_serial_sequence(%s, 'id')::regclass)) AS id"
                " FROM generate_series(1, %s)) AS drawn) AS ids GROUP BY run ORDER BY 1",
                [table, count],
            )
            return [i for low, high in cursor.fetchall() for i in range(low, high + 1)]
        cursor.execute(
            "SELECT max(coalesce((SELECT seq FROM sqlite_sequence WHERE name = %s), 0),"
            f" coalesce((SELECT max(id) FROM {connection.ops.quote_name(table)}), 0))",
            [table],
        )
        last = cursor.fetchone()[0]
    return list(range(last + 1, last + 1 + count))


def _max_query_params() -> int:
    if connection.vendor == "sqlite":
        # Django assumes SQLite's old limit of 999; the library's actual limit is far higher.
        connection.ensure_connection()
        return connection.connection.getlimit(sqlite3.SQLITE_LIMIT_VARIABLE_NUMBER)
    return connection.features.max_query_params or 65535


def _store_rows(model, columns: list[str], rows: list[tuple]) -> None:
    """Insert `rows` in their order: COPY on PostgreSQL, multi-row INSERTs on SQLite.

    Through the driver itself: under DEBUG, Django's cursor logs each statement with every one of
    its parameters quoted back into the SQL, which takes longer than SQLite's insert; and psycopg,
    given a statement of thousands of placeholders, spends longer still parsing them (hence COPY).
    COPY's binary format, typed by the model's columns, spares both sides the text: at 100,000
    pages 0.3 s of the client's CPU and a fifth of the server's for the pages.
    """
    table = connection.ops.quote_name(model._meta.db_table)
    names = ", ".join(connection.ops.quote_name(c) for c in columns)
    with connection.cursor() as cursor, connection.wrap_database_errors:
        if connection.vendor == "postgresql":
            fields = {field.column: field for field in model._meta.concrete_fields}
            types = [fields[c].db_type(connection).split("(")[0] for c in columns]
            with cursor.cursor.copy(f"COPY {table} ({names}) FROM STDIN (FORMAT BINARY)") as copy:
                copy.set_types(types)
                for row in rows:
                    copy.write_row(row)
            return
        # sqlite3's own connection and ? placeholders: Django's SQLite cursor would rewrite each
        # statement's %s into ? first.
        sqlite = connection.connection
        per_statement = max(1, min(5000, _max_query_params() // len(columns)))
        row_sql = "(" + ", ".join(["?"] * len(columns)) + ")"
        for start in range(0, len(rows), per_statement):
            chunk = rows[start : start + per_statement]
            sql = f"INSERT INTO {table} ({names}) VALUES {', '.join([row_sql] * len(chunk))}"
            sqlite.execute(sql, [value for row in chunk for value in row])


def ungraded_training_items(*, project: Project):
    """Items of training queries no judgment graded and no open or done page holds."""
    on_a_page = PageSlot.objects.filter(
        page__tasks__project=project, page__tasks__kind=TaskKind.GRADE_PAGE
    ).exclude(page__tasks__status=TaskStatus.CANCELLED)
    return (
        Item.objects.filter(project=project, query__split=Split.TRAIN)
        .exclude(pk__in=ItemGrade.objects.filter(item__project=project).values("item_id"))
        .exclude(pk__in=on_a_page.values("item_id"))
    )


def plan_rest_pages(*, project: Project) -> int:
    """Spend what is left on grades of the training items nobody graded yet (the lead's choice
    once the strategy has nothing more to ask: iso_anchor after its top bands and searches, top_p
    after its top bands). Pages of `page_size` items of one query, interleaved by upstream rank;
    the first page of every query before the second of any, so a budget that runs out spreads
    over the queries. Returns the pages created; planning twice creates nothing twice."""
    with transaction.atomic():
        Project.objects.select_for_update(no_key=True).filter(pk=project.pk).first()
        per_page_item = project.grade_cost * project.judgments_per_task
        left = budget_status(project=project)["left"]
        by_query: dict[int, dict[str, list[int]]] = defaultdict(lambda: defaultdict(list))
        rows = (
            ungraded_training_items(project=project)
            .order_by("query_id", "modality", "upstream_rank", "external_id")
            .values_list("query_id", "modality", "pk")
        )
        for query_id, modality, pk in rows:
            by_query[query_id][modality].append(pk)
        chunks = []
        for query_id, modalities in by_query.items():
            merged = interleave(list(modalities.values()))
            for n, start in enumerate(range(0, len(merged), project.page_size)):
                chunks.append((n, query_id, merged[start : start + project.page_size]))
        created = 0
        for _, query_id, items in sorted(chunks, key=lambda chunk: chunk[:2]):
            cost = per_page_item * len(items)
            if cost > left:
                continue
            page = CandidatePage.objects.create(project=project, query_id=query_id)
            PageSlot.objects.bulk_create(
                [PageSlot(page=page, position=i, item_id=item) for i, item in enumerate(items)]
            )
            Task.objects.create(
                project=project, kind=TaskKind.GRADE_PAGE, page=page, priority=REST_PRIORITY,
                reason="Page grading: items below the top band (the lead spent the rest on grades)",
                judgments_required=project.judgments_per_task,
                dedupe_key=f"page:{query_id}:rest:{items[0]}",
            )  # fmt: skip
            left -= cost
            created += 1
    return created


def project_search_share(*, project: Project) -> float:
    """The share of the budget the project's pages leave to comparisons (strategies.search_share
    on the project's shape: its band, modalities, mean items per modality of a training query,
    and costs); 0 for any strategy but iso_anchor, and for breadth first."""
    if (
        project.strategy != Strategy.ISO_ANCHOR
        or project.budget_policy == BudgetPolicy.BREADTH_FIRST
    ):
        return 0.0  # nothing is kept back: no need to count the project's items
    counts = list(
        Item.objects.filter(project=project, query__split=Split.TRAIN)
        .values("query_id", "modality")
        .annotate(n=Count("pk"))
        .values_list("n", flat=True)
    )
    return search_share(
        project.budget_policy, top_band=project.top_band, modalities=len(project.modalities),
        items_per_modality=sum(counts) / len(counts) if counts else 0,
        grade_cost=float(project.grade_cost), compare_cost=float(project.compare_cost),
    )  # fmt: skip


def page_allowance(*, project: Project) -> Decimal | None:
    """What pages may still commit under the project's budget policy; None: all that is left.

    A strategy that calibrates (iso_anchor, top_p_cal) keeps `strategies.CALIBRATION_SHARE` of the
    budget from its pages for calibration comparisons, whatever the policy.

    `per_query` (iso_anchor only) keeps the expected cost of each planned query's searches back
    from its pages (strategies.search_share), so the budget buys whole queries. Once no page and
    no search is open any more, nothing is left for the reserve to pay: what remains buys more
    pages, and their searches.
    """
    calibration = calibration_share(project.strategy, modalities=len(project.modalities))
    share = 1.0 - (1.0 - project_search_share(project=project)) * (1.0 - calibration)
    if not share:
        return None
    settled = (
        Task.objects.filter(project=project, kind=TaskKind.GRADE_PAGE).exists()
        and not Task.objects.filter(
            project=project, status__in=[TaskStatus.OPEN, TaskStatus.LEASED]
        ).exists()
        and not AnchorSearch.objects.filter(
            project=project, status=AnchorSearch.Status.OPEN
        ).exists()
    )
    if settled:
        return None
    # Grades the planned pages pay for: each slot once per judgment its task asks for.
    units = PageSlot.objects.filter(
        page__tasks__project=project, page__tasks__kind=TaskKind.GRADE_PAGE,
        page__tasks__status__in=[s for s in TaskStatus.values if s != TaskStatus.CANCELLED],
    ).aggregate(n=Sum("page__tasks__judgments_required"))["n"]  # fmt: skip
    committed = (units or 0) * project.grade_cost
    pages_budget = (project.budget * Decimal(str(1.0 - share))).quantize(Decimal("0.01"))
    return pages_budget - committed


# --- labels ---------------------------------------------------------------------------------


def human_grades(*, query: Query) -> dict[int, int]:
    return labeling_selectors.human_grades(query_ids=[query.pk])


# --- calibration ----------------------------------------------------------------------------

CALIBRATION_KEY = "calibrate:"


def calibration_held(*, project: Project) -> Decimal:
    """What the calibration comparisons still hold of their reserve while one is open: searches
    wait for it, so the offsets are measured first (`resume_searches` restarts them after)."""
    share = calibration_share(project.strategy, modalities=len(project.modalities))
    if not share:
        return Decimal("0")
    asked = Task.objects.filter(project=project, dedupe_key__startswith=CALIBRATION_KEY).exclude(
        status=TaskStatus.CANCELLED
    )
    if not asked.filter(status__in=[TaskStatus.OPEN, TaskStatus.LEASED]).exists():
        return Decimal("0")
    reserve = (project.budget * Decimal(str(share))).quantize(Decimal("0.01"))
    # The open calibration task is reserved by budget_status already; hold the rest.
    return max(reserve - asked.count() * project.compare_cost, Decimal("0"))


def resume_searches(*, project: Project) -> int:
    """Advance every open search with no probe outstanding (those that waited for calibration)."""
    resumed = 0
    for search_id in AnchorSearch.objects.filter(
        project=project, status=AnchorSearch.Status.OPEN
    ).values_list("pk", flat=True):
        resumed += advance_search(search_id=search_id) is not None
    return resumed


def create_calibration_task(*, project: Project) -> Task | None:
    """Ask the next calibration comparison, one at a time (the next depends on what this one says).

    For strategies that calibrate: while the reserve (`strategies.calibration_share` of the
    budget) pays and some modality's offset is not settled, compare a graded reference item with a
    graded item of the modality whose offset is least certain (widest interval). Takes a row lock
    on the project, so two workers create one task.
    """
    share = calibration_share(project.strategy, modalities=len(project.modalities))
    if not share or project.compare_cost <= 0:
        return None
    with transaction.atomic():
        Project.objects.select_for_update(no_key=True).filter(pk=project.pk).first()
        asked = Task.objects.filter(project=project, dedupe_key__startswith=CALIBRATION_KEY)
        if asked.filter(status__in=[TaskStatus.OPEN, TaskStatus.LEASED]).exists():
            return None
        count = asked.exclude(status=TaskStatus.CANCELLED).count()
        if (count + 1) * project.compare_cost > project.budget * Decimal(str(share)):
            return None
        if budget_status(project=project)["left"] < project.compare_cost:
            return None
        estimates = grade_calibration(project=project)
        open_modalities = sorted(
            (
                (-(e.high - e.low), e.n, project.modalities.index(m), m)
                for m, e in estimates.items()
                if e.n < CALIBRATION_MIN_COMPARISONS or e.high - e.low > CALIBRATION_WIDTH
            ),
        )
        if not open_modalities:
            return None
        graded = list(
            ItemGrade.objects.filter(
                judgment__project=project, item__query__split=Split.TRAIN
            ).values_list("item__query_id", "item_id", "item__modality", "grade")
        )
        pairs = list(
            Task.objects.filter(project=project, kind=TaskKind.COMPARE).values_list(
                "anchor_id", "other_id", "anchor__query_id"
            )
        )
        asked_pairs = {(a, b) for a, b, _ in pairs}
        uses: dict[int, int] = defaultdict(int)
        for _, _, query_id in pairs:
            uses[query_id] += 1
        reference = project.modalities[0]
        for *_, modality in open_modalities:
            pair = choose_calibration_pair(
                graded, reference=reference, modality=modality, asked=asked_pairs, uses=uses
            )
            if pair is not None:
                return Task.objects.create(
                    project=project, kind=TaskKind.COMPARE, anchor_id=pair[0], other_id=pair[1],
                    reason=f"Calibration: how {modality} grades sit against {reference} grades",
                    priority=CALIBRATION_PRIORITY, dedupe_key=f"{CALIBRATION_KEY}{count}",
                )  # fmt: skip
    return None


# --- searches -------------------------------------------------------------------------------


def start_searches(*, query: Query) -> list[AnchorSearch]:
    """Once the query's pages are graded, start one search per other modality (iso_anchor only)."""
    project = query.project
    if project.strategy != Strategy.ISO_ANCHOR:
        return []
    pending = Task.objects.filter(page__query=query, kind=TaskKind.GRADE_PAGE).exclude(
        status__in=[TaskStatus.DONE, TaskStatus.CANCELLED]
    )
    if pending.exists():
        return []
    grades = human_grades(query=query)
    if not grades:
        return []
    items = list(
        Item.objects.filter(query=query, upstream_rank__isnull=False)
        .order_by("modality", "upstream_rank")
        .values_list("pk", "modality", "upstream_rank")
    )
    graded_per_modality = defaultdict(int)
    for pk, modality, _ in items:
        graded_per_modality[modality] += pk in grades
    by_grading = sorted(
        project.modalities, key=lambda m: (-graded_per_modality[m], project.modalities.index(m))
    )
    reference = by_grading[0]
    # R's own tail is searched too, from the anchors of the next most graded modality: without
    # it the reference's items below the top band could never be labelled (a two-modality project
    # whose other modality has no tail would have nothing to search at all).
    pairs = [(reference, other) for other in by_grading[1:]]
    if len(by_grading) > 1:
        pairs.append((by_grading[1], reference))
    started = []
    for anchor_modality, other in pairs:
        anchors = pure.select_anchors(
            (pk, rank, grades.get(pk))
            for pk, modality, rank in items
            if modality == anchor_modality
        )
        # Only B's ungraded tail is searched: its graded top band is known already.
        tail = [pk for pk, modality, _ in items if modality == other and pk not in grades]
        if not anchors or not tail:
            continue
        state = pure.QuerySearch.start(anchors, tail, max_grade=project.max_grade).to_state()
        relevant_above = sum(
            1 for pk, modality, _ in items if modality == other and grades.get(pk, 0) > 0
        )
        search, created = AnchorSearch.objects.get_or_create(
            query=query, reference_modality=anchor_modality, other_modality=other,
            defaults={"project": project, "state": state, "informativeness": relevant_above},
        )  # fmt: skip
        if created:
            _store_upstream_pairs(project, query, [pk for pk, m, _ in items if m == other])
        started.append(search)
    for search in started:
        advance_search(search_id=search.pk)
    return started


def advance_search(*, search_id: int) -> Task | None:
    """Create the compare task for the search's next probe, if any, if the budget pays for it.

    Takes a row lock on the search, so two workers advancing it at once create one task.
    """
    with transaction.atomic():
        # of=("self",): the search row only; locking the joined project row FOR UPDATE too
        # would hold up every insert that references the project (their foreign-key checks).
        search = (
            AnchorSearch.objects.select_for_update(of=("self",))
            .select_related("project")
            .get(pk=search_id)
        )
        if search.status == AnchorSearch.Status.DONE:
            return None
        if (
            ProbeTask.objects.filter(search=search, is_recorded=False)
            .exclude(task__status=TaskStatus.CANCELLED)
            .exists()
        ):
            return None  # one probe at a time: the next one depends on its answer
        state = pure.QuerySearch.from_state(search.state)
        probe = state.next_probe()
        if probe is None:
            _finish(search, state)
            return None
        project = search.project
        held = calibration_held(project=project)
        if budget_status(project=project)["left"] - held < project.compare_cost:
            log.info("search %s waits: the budget cannot pay for another comparison", search.pk)
            return None
        step = sum(len(anchor.history) for anchor in state.anchors)
        if search.revisions:
            step = f"{step}:r{search.revisions}"
        anchor = Item.objects.get(pk=probe.anchor_id)
        reason = (
            f"Re-ask after a contradiction: {probe.reason}" if probe.is_reask
            else f"Search probe against anchor “{anchor.title or anchor.external_id}” (grade {anchor_grade(state, probe)})"
        )  # fmt: skip
        task, created = Task.objects.get_or_create(
            project=project, dedupe_key=f"probe:{search.pk}:{step}",
            defaults={
                "kind": TaskKind.COMPARE, "anchor": anchor, "other_id": probe.b_item_id, "reason": reason[:300],
                "priority": REASK_PRIORITY
                if probe.is_reask
                else search_priority(search.informativeness),
                "judgments_required": required_for(project=project, kind=TaskKind.COMPARE),
            },
        )  # fmt: skip
        if created:
            ProbeTask.objects.create(
                task=task,
                search=search,
                anchor=anchor,
                position=probe.b_position,
                is_reask=probe.is_reask,
            )
            if probe.exclude_annotators:
                task.excluded_annotators.add(*probe.exclude_annotators)
        return task


def anchor_grade(state: pure.QuerySearch, probe: pure.Probe) -> int:
    return state.anchor(probe.anchor_id).anchor_grade


def record_probe_answer(*, judgment: Judgment) -> AnchorSearch | None:
    """Feed a compare judgment into its search (once), then queue the next probe.

    A judgment already revised is left out: its revision (revise_probe_answer) speaks for it.
    A comparison asked of several annotators (overlap) is fed in once all its answers are in,
    every answer in the order given: answers that disagree are a contradiction the search re-asks.
    """
    probe = ProbeTask.objects.filter(task_id=judgment.task_id).first()
    if probe is None or judgment.outcome is None:
        return None
    if Judgment.objects.filter(supersedes_id=judgment.pk).exists():
        return None
    # The latest answer of each annotator (a revision stands for the answer it revises).
    of_task = Judgment.objects.filter(task_id=judgment.task_id)
    revised = of_task.filter(supersedes__isnull=False).values("supersedes_id")
    answers = list(of_task.exclude(pk__in=revised).order_by("pk"))
    if len(answers) < Task.objects.get(pk=judgment.task_id).judgments_required:
        return None  # more annotators are to answer; the last answer feeds them all in
    with transaction.atomic():
        search = AnchorSearch.objects.select_for_update().get(pk=probe.search_id)
        state = pure.QuerySearch.from_state(search.state)
        contradictions_before = len(state.contradictions)
        # judgment_id makes a second delivery of the same judgment a no-op inside the state.
        for answer in answers:
            state.record(
                OUTCOME_FROM_ANCHOR_SIDE[answer.outcome], anchor_id=probe.anchor_id,
                position=probe.position, annotator=answer.annotator_id, judgment_id=answer.pk,
            )  # fmt: skip
        search.state = state.to_state()
        search.probes_answered = sum(len(a.history) for a in state.anchors)
        search.contradictions = len(state.contradictions)
        search.save(update_fields=["state", "probes_answered", "contradictions", "updated_at"])
        ProbeTask.objects.filter(task_id=judgment.task_id).update(is_recorded=True)
        if len(state.contradictions) > contradictions_before:
            log.warning("search %s: contradiction found, re-asking another annotator", search.pk)
    advance_search(search_id=search.pk)
    return search


def revise_probe_answer(*, judgment: Judgment) -> AnchorSearch | None:
    """Feed an annotator's revision of a compare answer into its search (once), then go on.

    The search replays its history with the corrected answer (search.QuerySearch.revise). What
    the old answer led to is undone: the unanswered probe it asked for next is cancelled (the
    corrected search may want another one), and a finished search's stored implied grades and
    pairs are withdrawn and the search reopened, so `_finish` stores them again from the
    corrected evidence. Locks the search row, like `record_probe_answer`.
    """
    previous_id = judgment.supersedes_id
    probe = ProbeTask.objects.filter(task_id=judgment.task_id).first()
    if probe is None or previous_id is None or judgment.outcome is None:
        return None
    # The chain of earlier answers, newest first: the search holds the latest it has seen.
    chain = [previous_id]
    while (earlier := _supersedes(chain[-1])) is not None:
        chain.append(earlier)
    with transaction.atomic():
        search = AnchorSearch.objects.select_for_update().get(pk=probe.search_id)
        state = pure.QuerySearch.from_state(search.state)
        outcome = OUTCOME_FROM_ANCHOR_SIDE[judgment.outcome]
        changed = any(
            state.revise(judgment_id=old, outcome=outcome, new_judgment_id=judgment.pk)
            for old in chain
        )
        if changed:
            search.state = state.to_state()
            search.contradictions = len(state.contradictions)
            search.revisions += 1
            fields = ["state", "contradictions", "revisions", "updated_at"]
            if search.status == AnchorSearch.Status.DONE:
                ImpliedGrade.objects.filter(search=search).delete()
                PreferencePair.objects.filter(search=search).delete()
                search.status = AnchorSearch.Status.OPEN
                fields.append("status")
            search.save(update_fields=fields)
            stale = ProbeTask.objects.filter(search=search, is_recorded=False).exclude(
                task__status__in=[TaskStatus.DONE, TaskStatus.CANCELLED]
            )
            Task.objects.filter(pk__in=stale.values("task_id")).update(
                status=TaskStatus.CANCELLED, assignee=None, lease_expires_at=None
            )
            log.info("search %s: answer %s revised by %s", search.pk, previous_id, judgment.pk)
        recorded = changed or any(
            answer.judgment_id == judgment.pk for a in state.anchors for answer in a.history
        )
    if not recorded:
        # The answer it revises never reached the search (its message was lost or is late):
        # the revision is recorded as the annotator's answer.
        return record_probe_answer(judgment=judgment)
    advance_search(search_id=search.pk)
    return search


def _supersedes(judgment_id: int) -> int | None:
    return Judgment.objects.filter(pk=judgment_id).values_list("supersedes_id", flat=True).first()


def _finish(search: AnchorSearch, state: pure.QuerySearch) -> None:
    """Store the finished search's implied grades and pairs (idempotent), and close it."""
    project = search.project
    ImpliedGrade.objects.bulk_create(
        [
            ImpliedGrade(project=project, search=search, item_id=item_id, low=low, high=high)
            for item_id, (low, high) in state.implied_grade_intervals().items()
        ],
        ignore_conflicts=True,
    )
    PreferencePair.objects.bulk_create(
        [
            PreferencePair(
                project=project,
                query_id=search.query_id,
                better_id=pair.better_id,
                worse_id=pair.worse_id,
                source=PairSource.HUMAN
                if pair.source == pure.PairSource.HUMAN
                else PairSource.IMPLIED,
                search=search,
            )  # fmt: skip
            for pair in state.implied_pairs()
        ],
        ignore_conflicts=True,
    )
    search.status = AnchorSearch.Status.DONE
    search.save(update_fields=["status", "updated_at"])
    transaction.on_commit(
        partial(announce, search_finished, project_id=search.project_id, search_id=search.pk)
    )


def _store_upstream_pairs(project: Project, query: Query, ordered: list[int]) -> None:
    """Adjacent pairs of one modality's upstream order: free, weak, intra-modal supervision."""
    PreferencePair.objects.bulk_create(
        [
            PreferencePair(
                project=project, query=query, better_id=a, worse_id=b, source=PairSource.UPSTREAM
            )
            for a, b in zip(ordered, ordered[1:], strict=False)
        ],
        ignore_conflicts=True,
    )


def handle_judgment(*, judgment_id: int) -> None:
    """Follow-up work of one judgment: start searches after a page, advance after a comparison."""
    judgment = (
        Judgment.objects.select_related("task__page__query", "project")
        .filter(pk=judgment_id)
        .first()
    )
    if judgment is None:
        return
    if judgment.kind == TaskKind.COMPARE:
        if judgment.supersedes_id is not None:
            revise_probe_answer(judgment=judgment)
        else:
            record_probe_answer(judgment=judgment)
        if (judgment.task.dedupe_key or "").startswith(CALIBRATION_KEY):
            if create_calibration_task(project=judgment.project) is None:
                resume_searches(project=judgment.project)
    elif judgment.supersedes_id is not None:
        pass  # a page's revised grades: labels read the latest answer; searches keep their anchors
    elif judgment.task.page_id is not None:
        start_searches(query=judgment.task.page.query)
        create_calibration_task(project=judgment.project)
    maybe_queue_retrain(project=judgment.project)


def search_progress(*, project: Project) -> dict[str, int]:
    return AnchorSearch.objects.filter(project=project).aggregate(
        open=Count("pk", filter=Q(status=AnchorSearch.Status.OPEN)),
        done=Count("pk", filter=Q(status=AnchorSearch.Status.DONE)),
        contradictions=Count("pk", filter=Q(contradictions__gt=0)),
    )
