"""Task handout and judging: leasing tasks to annotators, submitting and skipping, progress.

Services (`claim_next_task`, `submit_judgment`, `skip_task`) write; selectors (`task_for`,
`claimable_tasks`, `annotator_progress`) read. A task is handed out under a lease that expires, so
an abandoned task returns to the pool by itself; no two annotators can hold the same task.
"""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, timedelta
from decimal import Decimal
from functools import partial

from django.contrib.auth import get_user_model
from django.contrib.postgres.expressions import ArraySubquery
from django.core import signing
from django.db import DatabaseError, IntegrityError, connection, transaction
from django.db.models import Exists, F, OuterRef, Q, QuerySet, Subquery, Sum
from django.db.models.functions import Coalesce
from django.db.models.sql import InsertQuery
from django.utils import timezone

from .errors import Conflict, NotFound, PagewiseError, PermissionDenied
from .guidelines import GUIDELINE_NOW, guideline_for_judgment, with_current_guideline
from .models import (
    AnnotatorDay,
    CandidatePage,
    CompareOutcome,
    Item,
    ItemGrade,
    Judgment,
    Membership,
    PageSlot,
    Project,
    Role,
    Task,
    TaskKind,
    TaskSkip,
    TaskStatus,
)
from .money import PLACES
from .prepared import (
    DAY,
    ID,
    MOMENT,
    TEXT,
    UUID,
    Prepared,
    PreparedInsert,
    PreparedInstances,
    pipelined,
    update_of,
)
from .selectors import role_of, with_viewer_role
from .signals import announce, judgment_recorded

LEASE_SECONDS = 600
ANNOTATING_ROLES: tuple[str, ...] = (Role.ANNOTATOR, Role.LEAD)
# A SQLite claim that lost its compare-and-set race tries the next candidate this many times.
CLAIM_ATTEMPTS = 5
MAX_DURATION_MS = 2**31 - 1  # PositiveIntegerField on PostgreSQL
_MAX_ID = 2**63 - 1  # larger ids overflow the database's bigint: they name no task
_SIDES_SALT = "labeling.assignment.compare-sides"


# --- selectors ------------------------------------------------------------------------------


def task_for(*, user, task_id: int | str, roles: tuple[str, ...] = ANNOTATING_ROLES) -> Task:
    """The task with this id if the user may judge it; non-members get NotFound (nothing leaks)."""
    pk = _task_pk(task_id)
    task = _TASK_WITH_PROJECT.first(task=pk, user=user.pk) if pk and user.is_authenticated else None
    return _judgeable(task, user=user, task_id=task_id, roles=roles)


def _task_pk(task_id: int | str) -> int | None:
    """The id as a number, None when it names no task (NotFound for text that is not one)."""
    try:
        pk = int(task_id)
    except (TypeError, ValueError):
        raise NotFound(f"No task '{task_id}'.") from None
    return pk if 0 < pk <= _MAX_ID else None


def _judgeable(task: Task | None, *, user, task_id, roles: tuple[str, ...]) -> Task:
    """`task` (read with its project, the user's role and the current guideline) if the user may
    judge it with one of `roles`; NotFound for a non-member, PermissionDenied for another role."""
    if task is not None:  # read with the task: the role and the current guideline
        for name in ("viewer_role", "viewer_role_of", *GUIDELINE_NOW):
            setattr(task.project, name, getattr(task, name))
    role = role_of(user=user, project=task.project) if task else None
    if role is None:
        raise NotFound(f"No task '{task_id}'.")
    if role not in roles:
        raise PermissionDenied(
            f"Judging needs the role {' or '.join(roles)} in '{task.project.name}'."
        )
    return task


def claimable_tasks(*, annotator, project: Project, now=None) -> QuerySet[Task]:
    """Tasks that may be leased to the annotator now, best first.

    Open tasks and tasks whose lease expired (so abandoned work comes back by itself), never one
    the annotator already judged, skipped, or was excluded from (a re-ask goes to someone else).
    """
    now = now or timezone.now()
    excluded = Task.excluded_annotators.through.objects.filter(
        task_id=OuterRef("pk"), user_id=annotator.pk
    )
    return (
        Task.objects.filter(project=project)
        .filter(Q(status=TaskStatus.OPEN) | Q(status=TaskStatus.LEASED, lease_expires_at__lt=now))
        .filter(~Exists(Judgment.objects.filter(task_id=OuterRef("pk"), annotator=annotator)))
        .filter(~Exists(TaskSkip.objects.filter(task_id=OuterRef("pk"), annotator=annotator)))
        .filter(~Exists(excluded))
        .order_by("-priority", "id")
    )


def unclaimable_tasks(*, project: Project, now=None) -> QuerySet[Task]:
    """Open tasks no annotator of the project can take: each has judged it, skipped it or is
    excluded from it (a re-asked comparison goes to someone who has not answered it; in a project
    with two annotators, a tie between them leaves nobody)."""
    now = now or timezone.now()
    task = OuterRef(OuterRef("pk"))
    free = (
        Membership.objects.filter(project=project, role=Role.ANNOTATOR)
        .filter(~Exists(Judgment.objects.filter(task_id=task, annotator_id=OuterRef("user_id"))))
        .filter(~Exists(TaskSkip.objects.filter(task_id=task, annotator_id=OuterRef("user_id"))))
        .filter(
            ~Exists(
                Task.excluded_annotators.through.objects.filter(
                    task_id=task, user_id=OuterRef("user_id")
                )
            )
        )
    )
    return (
        Task.objects.filter(project=project)
        .filter(Q(status=TaskStatus.OPEN) | Q(status=TaskStatus.LEASED, lease_expires_at__lt=now))
        .filter(~Exists(free))
    )


def let_annotators_answer_again(*, project: Project) -> int:
    """The lead's way out of `unclaimable_tasks`: the annotators who were excluded from a task or
    skipped it may take it again (one who judged it still cannot). Returns the tasks reopened."""
    with transaction.atomic():
        stuck = list(unclaimable_tasks(project=project).values_list("pk", flat=True))
        Task.excluded_annotators.through.objects.filter(task_id__in=stuck).delete()
        TaskSkip.objects.filter(task_id__in=stuck).delete()
    return len(stuck)


def held_tasks(*, annotator, project: Project, now=None) -> QuerySet[Task]:
    """Tasks the annotator holds an unexpired lease on (normally at most one)."""
    now = now or timezone.now()
    return Task.objects.filter(
        project=project, status=TaskStatus.LEASED, assignee=annotator, lease_expires_at__gte=now
    ).order_by("-priority", "id")


# Remaining tasks are counted up to this many: a progress bar needs no exact count of a project's
# million tasks, and a bounded count reads at most this many index entries per request.
REMAINING_COUNT_CAP = 100
# The open queue's claimable tasks are counted among its first OPEN_HEAD tasks (see
# _progress_statement): an annotator excluded from more than OPEN_HEAD - REMAINING_COUNT_CAP of them
# sees "N+" for what the head holds.
OPEN_HEAD = 1_000


@dataclass(frozen=True)
class AnnotatorProgress:
    judgments_today: int
    judgments_total: int
    tasks_remaining: int
    spend: Decimal
    currency: str
    # True when tasks_remaining is the cap (REMAINING_COUNT_CAP) and there are at least that many.
    is_remaining_capped: bool = False

    @property
    def percent_done(self) -> int:
        """Share of the work the annotator has seen (judged / judged + remaining), for a bar.

        With a capped count the true share is at most this (there are more tasks left).
        """
        seen = self.judgments_total + self.tasks_remaining
        return round(100 * self.judgments_total / seen) if seen else 0

    @property
    def remaining_label(self) -> str:
        return f"{self.tasks_remaining}+" if self.is_remaining_capped else str(self.tasks_remaining)


def annotator_progress(
    *, annotator, project: Project, held: int | None = None
) -> AnnotatorProgress:
    """The annotator's judgments (today, total, spend) and the tasks left for them.

    Bounded work per request: the judgments are read from the annotator's days (AnnotatorDay, a
    row per day kept by the database), and the claimable tasks are counted only up to
    REMAINING_COUNT_CAP.
    `held`: the number of tasks the annotator holds, when the caller knows it (right after a
    claim: 1 if it leased a task, else 0), which saves counting them.
    """
    with pipelined(generic_plans=True):
        progress = _send_progress(annotator=annotator, project=project, count_held=held is None)
    return progress(held)


def _send_progress(*, annotator, project: Project, count_held: bool):
    """annotator_progress's statements, sent (Prepared.send): what reads them when called, given
    the number of tasks the annotator holds unless `count_held` had them counted."""
    now = timezone.now()
    figures = _PROGRESS.send(
        user=annotator.pk, project=project.pk, now=now, day=now.astimezone(UTC).date()
    )
    held_rows = _HELD.send(user=annotator.pk, project=project.pk, now=now) if count_held else None

    def read(held: int | None = None) -> AnnotatorProgress:
        (total, today, spend_units, claimable, head_full), held_now = figures()[0], held
        if held_rows is not None:
            held_now = len(held_rows())
        return AnnotatorProgress(
            judgments_today=today,
            judgments_total=total,
            tasks_remaining=min(claimable + held_now, REMAINING_COUNT_CAP),
            spend=Decimal(int(spend_units)).scaleb(-PLACES),
            currency=project.currency,
            is_remaining_capped=claimable + held_now >= REMAINING_COUNT_CAP or bool(head_full),
        )

    return read


# --- claiming -------------------------------------------------------------------------------


def claim_next_task(
    *, annotator, project: Project, lease_seconds: int = LEASE_SECONDS
) -> Task | None:
    """Lease the next task to the annotator for `lease_seconds`; None when there is no work.

    An annotator who already holds an unexpired lease gets that task back with a renewed lease
    (a reloaded page shows the same task). Otherwise the best claimable task is taken, and no two
    annotators can both win it (see `_claim_on_postgresql` and `_take_next`).

    Locks: the annotator's user row (FOR NO KEY UPDATE) for the length of the claim, so that two
    requests of one annotator (a double click, two tabs) cannot lease two tasks; claims of
    different annotators do not wait on each other.
    """
    task, _, _ = _claim(annotator=annotator, project=project, lease_seconds=lease_seconds)
    return task


def claim_next_task_with_progress(
    *, annotator, project: Project, lease_seconds: int = LEASE_SECONDS
) -> tuple[Task | None, AnnotatorProgress, TaskSubject | None]:
    """claim_next_task, the annotator's progress right after it (they hold exactly the task they
    got) and the task's subject (None without a task): what the next-task answer shows. On
    PostgreSQL the progress and a page's subject are read in the claim's own transaction and round
    trip."""
    task, read_progress, read_slots = _claim(
        annotator=annotator, project=project, lease_seconds=lease_seconds, with_progress=True
    )
    held = 1 if task else 0
    if read_progress is None:  # elsewhere: read after the claim
        progress = annotator_progress(annotator=annotator, project=project, held=held)
    else:
        progress = read_progress(held)
    if task is None:
        return None, progress, None
    slots = read_slots() if read_slots is not None else None
    # No slots read: a comparison's items, a page without items, or elsewhere than PostgreSQL.
    return task, progress, _page_subject(slots) if slots else task_subject(task=task)


def _claim(*, annotator, project: Project, lease_seconds: int, with_progress: bool = False):
    """The claim (claim_next_task's doc); on PostgreSQL with `with_progress`, what reads the
    annotator's progress and what reads the claimed page's slots, sent with it (else None)."""
    if lease_seconds <= 0:
        raise ValueError("lease_seconds must be positive")
    now = timezone.now()
    expires = now + timedelta(seconds=lease_seconds)
    read_progress = read_slots = None
    if connection.vendor == "postgresql":
        task, read_progress, read_slots = _claim_on_postgresql(
            annotator=annotator, project=project, now=now, expires=expires,
            with_progress=with_progress,
        )  # fmt: skip
    else:
        with transaction.atomic():
            task_id = _take_next(annotator=annotator, project=project, now=now, expires=expires)
        task = _TASK.first(task=task_id) if task_id is not None else None
    if task is not None:
        task.project = project
    return task, read_progress, read_slots


def _candidate_queues(*, annotator, project: Project, now) -> tuple[QuerySet[Task], ...]:
    """The annotator's own unexpired lease, then the claimable tasks as two queues, each read in
    the order of an index that matches it.

    Open tasks: WHERE project = ? AND status = 'open' ORDER BY priority DESC, id is exactly
    task_queue_idx (project, status, -priority, id), so the best row is the first index entry
    that passes the exclusions, however many tasks the project holds. Expired leases: few rows,
    found through task_lease_idx (status, lease_expires_at). One OR over both would make the
    database sort every open task to find the best.
    """
    candidates = claimable_tasks(annotator=annotator, project=project, now=now)
    return (
        held_tasks(annotator=annotator, project=project, now=now),
        candidates.filter(status=TaskStatus.OPEN),
        candidates.filter(status=TaskStatus.LEASED, lease_expires_at__lt=now),
    )


TASK_COLUMNS = Task._meta.concrete_fields
_TASK_ATTNAMES = [f.attname for f in TASK_COLUMNS]


def _compiled(queryset: QuerySet) -> tuple[str, tuple]:
    return queryset.query.get_compiler(connection=connection).as_sql()


def _locking(queryset: QuerySet) -> tuple[str, tuple]:
    sql, params = _compiled(queryset)
    return f"{sql} FOR NO KEY UPDATE", params


def claim_statement(*, annotator, project: Project, now, expires) -> tuple[str, list]:
    """PostgreSQL's one-statement claim: the annotator's held task if any (its lease renewed),
    else the better head of the two queues; it returns the task's row (TASK_COLUMNS). The queues'
    sub-selects lock their best row, skipping rows another annotator's claim has locked this
    instant; the held task's waits for its lock (a submit of it may be committing).

    Compiled once per process and filled per call (`_CLAIM`): compiling the three queues'
    anti-joins took longer than running the statement.
    """
    return _CLAIM.sql(user=annotator.pk, project=project.pk, now=now, expires=expires)


def compile_claim_statement(*, annotator, project: Project, now, expires) -> tuple[str, list]:
    """claim_statement compiled from the queues' querysets (what the template is made of)."""
    held, open_tasks, expired = _candidate_queues(annotator=annotator, project=project, now=now)
    table = connection.ops.quote_name(Task._meta.db_table)
    branches, params = [], []
    for rank, queue in enumerate((held, open_tasks, expired)):
        sql, branch_params = _compiled(queue.values("id", "priority")[:1])
        lock = "FOR UPDATE" if rank == 0 else "FOR UPDATE SKIP LOCKED"
        branches.append(f"SELECT q{rank}.*, {min(rank, 1)} AS rank FROM ({sql} {lock}) AS q{rank}")
        params.extend(branch_params)
    return (
        f"UPDATE {table} SET status = %s, assignee_id = %s, lease_expires_at = %s "
        f"WHERE id = (SELECT c.id FROM ({' UNION ALL '.join(branches)}) AS c "
        f"ORDER BY c.rank, c.priority DESC, c.id LIMIT 1) "
        f"RETURNING {', '.join(connection.ops.quote_name(f.column) for f in TASK_COLUMNS)}",
        [
            TaskStatus.LEASED.value,
            annotator.pk,
            connection.ops.adapt_datetimefield_value(expires),
            *params,
        ],
    )


def _claim_on_postgresql(*, annotator, project: Project, now, expires, with_progress: bool):
    """PostgreSQL's claim: the annotator's lock, then the claim statement, in one transaction
    whose statements reach the server together (`pipelined`): BEGIN, the lock, the claim and
    COMMIT in one round trip (inside a caller's transaction, a savepoint of it).

    `with_progress`: the annotator's progress statement too, after the claim (so it sees it), and
    the slots of the page the claim leased (found by the lease it just wrote: empty for a
    comparison), the transaction's statements planned generically (see `pipelined`). Returns the
    task, what reads the progress and what reads the slots (or None, None)."""
    who = {"user": annotator.pk, "project": project.pk, "now": now, "expires": expires}
    progress = slots = None
    # A lease lost in a crash is a lease expired: its commit need not wait for the disk.
    with pipelined(transaction=True, generic_plans=with_progress, durable=False):
        _LOCK_ANNOTATOR.send(user=annotator.pk)
        claimed = _CLAIM.send(**who)
        if with_progress:
            progress = _send_progress(annotator=annotator, project=project, count_held=False)
            slots = _CLAIMED_PAGE_SLOTS.send(user=annotator.pk, project=project.pk, expires=expires)
    rows = claimed()
    # psycopg returns these columns' Python types as they are: no conversion to apply.
    return (
        (Task.from_db(connection.alias, _TASK_ATTNAMES, rows[0]) if rows else None),
        progress,
        slots,
    )


def _take_next(*, annotator, project: Project, now, expires) -> int | None:
    """Elsewhere (SQLite): the id of the task leased, or None. Renew a held lease, else pick a
    candidate and compare-and-set; the UPDATE only matches while the task is still free (or
    still ours), so of two racing annotators exactly one changes the row. SQLite's writers queue
    for the database's one write lock (IMMEDIATE transactions), so two requests of one annotator
    cannot both claim."""
    who = {"user": annotator.pk, "project": project.pk, "now": now}
    for (held_id,) in _HELD.rows(**who):
        if _RENEW.execute(task=held_id, user=annotator.pk, expires=expires):
            return held_id
    for _ in range(CLAIM_ATTEMPTS):
        heads = [head for queue in (_OPEN_HEAD, _EXPIRED_HEAD) if (head := queue.first(**who))]
        if not heads:
            return None
        candidate = min(heads, key=lambda head: (-head[0], head[1]))[1]
        if _TAKE.execute(task=candidate, user=annotator.pk, now=now, expires=expires):
            return candidate
    return None


# --- the annotator's statements, compiled once per process (see labeling/prepared.py) --------


def _user(pk: int):
    return get_user_model()(pk=pk)


_TASK = PreparedInstances(lambda task: Task.objects.filter(pk=task), task=ID)


def _task_with_project(task, user) -> QuerySet[Task]:
    # The task with its project (select_related), the user's role in it and its current guideline.
    return with_current_guideline(
        with_viewer_role(Task.objects.filter(pk=task), user=_user(user), project_id="project_id"),
        project_id="project_id",
    )


_WITH_PROJECT = {
    "related": ("project",),
    "extra": ("viewer_role", "viewer_role_of", *GUIDELINE_NOW),
}
_TASK_WITH_PROJECT = PreparedInstances(_task_with_project, **_WITH_PROJECT, task=ID, user=ID)
# The submit's read: locked by the clause below (the transaction is spelled out by `pipelined`,
# and Django does not compile select_for_update where it sees autocommit).
_TASK_LOCK = f' FOR UPDATE OF "{Task._meta.db_table}"'
_LOCKED_TASK = PreparedInstances(
    _task_with_project, **_WITH_PROJECT, locking=_TASK_LOCK, task=ID, user=ID
)
# PostgreSQL: the page's items (in their order) read in the same statement, as an array.
_LOCKED_TASK_AND_ITEMS = PreparedInstances(
    lambda task, user: _task_with_project(task, user).annotate(
        page_items=ArraySubquery(
            PageSlot.objects.filter(page_id=OuterRef("page_id"))
            .order_by("position")
            .values("item_id")
        )
    ),
    related=_WITH_PROJECT["related"], extra=(*_WITH_PROJECT["extra"], "page_items"),
    locking=_TASK_LOCK, task=ID, user=ID,
)  # fmt: skip
_LOCK_ANNOTATOR = Prepared(
    # NO KEY: inserts that reference the user (judgments, leases) are not blocked by this lock.
    # The clause is written out rather than asked of select_for_update, which Django does not
    # compile outside a transaction: the claim spells its transaction out (_claim_on_postgresql).
    lambda user: _locking(get_user_model().objects.filter(pk=user).values_list("pk")),
    user=ID,
)
_QUEUE = {"user": ID, "project": ID, "now": MOMENT}
_CLAIM = Prepared(
    lambda user, project, now, expires: compile_claim_statement(
        annotator=_user(user), project=Project(pk=project), now=now, expires=expires
    ),
    **_QUEUE, expires=MOMENT,
)  # fmt: skip
_HELD = Prepared(
    lambda user, project, now: held_tasks(
        annotator=_user(user), project=Project(pk=project), now=now
    ).values_list("id"),
    **_QUEUE,
)
_OPEN_HEAD, _EXPIRED_HEAD = (
    Prepared(
        lambda user, project, now, queue=queue: _candidate_queues(
            annotator=_user(user), project=Project(pk=project), now=now
        )[queue].values_list("priority", "id")[:1],
        **_QUEUE,
    )
    for queue in (1, 2)
)


def _progress_statement(*, annotator, project: Project, now, day) -> tuple[str, list]:
    """One statement for the annotator's progress: their judgments (total, on `day`) and spend,
    counted per UTC day by the database as judgments are written (AnnotatorDay), the tasks they
    can claim, each queue counted up to REMAINING_COUNT_CAP, and whether the open queue's count
    stopped at its head (OPEN_HEAD tasks looked at, fewer claimable than the cap).

    Open tasks are counted among the first OPEN_HEAD of the queue (task_queue_idx's order), read
    first: counted over the whole queue, PostgreSQL sometimes chose (by its statistics) to read
    every open task, test each and sort them, 8 ms per call at 9,411 open tasks and growing with
    them. Expired leases are few (task_lease_idx).

    The open head's three exclusions are tested row by row, each an index probe by task (OFFSET 0
    keeps PostgreSQL from turning them into joins): as joins, the plan depended on estimates of
    how many judgments the annotator has, and with some it read all of them for every head row
    (6.7 ms for 100 rows), or all of the project's judgments. Row by row the work is at most
    OPEN_HEAD probes of each kind whatever the statistics say, so callers run it with one plan
    for all values (`pipelined(generic_plans=True)`) and skip re-planning it on every call."""
    totals = (
        AnnotatorDay.objects.filter(project_id=project.pk, annotator_id=annotator.pk)
        .values("annotator_id")
        .annotate(
            total=Sum("judgments"),
            today=Coalesce(Sum("judgments", filter=Q(day=day)), 0),
            spend=Sum("spend_units"),
        )
        .values_list("total", "today", "spend")
    )
    _, _, expired = _candidate_queues(annotator=annotator, project=project, now=now)
    head = (
        Task.objects.filter(project_id=project.pk, status=TaskStatus.OPEN)
        .order_by("-priority", "id")
        .values_list("id")[:OPEN_HEAD]
    )
    (head_sql, head_params), (expired_sql, expired_params), (totals_sql, totals_params) = (
        _compiled(head),
        _compiled(expired.values_list("id")[:REMAINING_COUNT_CAP]),
        _compiled(totals),
    )
    # claimable_tasks' three exclusions, tested on the head's ids (the open queue's share of it).
    fence = " OFFSET 0" if connection.vendor == "postgresql" else ""
    judged, skipped, excluded = (
        f"NOT EXISTS (SELECT 1 FROM {model._meta.db_table} AS x "
        f"WHERE x.{task_column} = h.id AND x.{user_column} = %s{fence})"
        for model, task_column, user_column in (
            (Judgment, "task_id", "annotator_id"),
            (TaskSkip, "task_id", "annotator_id"),
            (Task.excluded_annotators.through, "task_id", "user_id"),
        )
    )
    return (
        "SELECT COALESCE(t.total, 0), COALESCE(t.today, 0), COALESCE(t.spend, 0), "
        f"o.n + (SELECT COUNT(*) FROM ({expired_sql}) AS bounded), "
        f"CASE WHEN o.n < {REMAINING_COUNT_CAP} "
        f"THEN (SELECT COUNT(*) FROM ({head_sql}) AS head) >= {OPEN_HEAD} ELSE FALSE END "
        f"FROM (SELECT COUNT(*) AS n FROM (SELECT h.id FROM ({head_sql}) AS h "
        f"WHERE {judged} AND {skipped} AND {excluded} LIMIT {REMAINING_COUNT_CAP}) AS bounded) AS o "
        f"LEFT JOIN ({totals_sql}) AS t ON 1 = 1",
        # in the order the SQL shows them
        [*expired_params, *head_params, *head_params, *[annotator.pk] * 3, *totals_params],
    )


_PROGRESS = Prepared(
    lambda user, project, now, day: _progress_statement(
        annotator=_user(user), project=Project(pk=project), now=now, day=day
    ),
    **_QUEUE, day=DAY,
)  # fmt: skip


_RENEW = Prepared(
    lambda task, user, expires: update_of(
        Task.objects.filter(pk=task, status=TaskStatus.LEASED, assignee_id=user),
        lease_expires_at=expires,
    ),
    task=ID, user=ID, expires=MOMENT,
)  # fmt: skip
_TAKE = Prepared(
    lambda task, user, now, expires: update_of(
        Task.objects.filter(pk=task).filter(
            Q(status=TaskStatus.OPEN) | Q(status=TaskStatus.LEASED, lease_expires_at__lt=now)
        ),
        status=TaskStatus.LEASED, assignee=_user(user), lease_expires_at=expires,
    ),
    task=ID, user=ID, now=MOMENT, expires=MOMENT,
)  # fmt: skip
_RELEASE = Prepared(
    lambda task, status: update_of(
        Task.objects.filter(pk=task), status=status, assignee=None, lease_expires_at=None
    ),
    task=ID, status=TEXT,
)  # fmt: skip
_JUDGMENT_BY_UUID = PreparedInstances(
    lambda client_uuid: Judgment.objects.filter(client_uuid=client_uuid)[:1], client_uuid=UUID
)
_NEW_JUDGMENT = PreparedInsert(Judgment)
_PAGE_ITEM_IDS = Prepared(
    lambda page: PageSlot.objects.filter(page_id=page).order_by("position").values_list("item_id"),
    page=ID,
)
_SUBJECT_QUERY = {"query_external_id": F("query__external_id"), "query_text": F("query__text")}


def _page_slots_queryset(page) -> QuerySet[PageSlot]:
    return (
        PageSlot.objects.filter(page_id=page)
        .order_by("position")
        .annotate(
            query_external_id=F("page__query__external_id"), query_text=F("page__query__text")
        )
    )


_PAGE_SLOTS = PreparedInstances(
    _page_slots_queryset, related=("item",), extra=tuple(_SUBJECT_QUERY), page=ID
)
# The slots of the page the annotator's claim just leased, in the claim's transaction: the task
# is the one leased to them until `expires` (the claim wrote it; none for a comparison).
_CLAIMED_PAGE_SLOTS = PreparedInstances(
    lambda user, project, expires: _page_slots_queryset(
        Subquery(
            Task.objects.filter(
                project_id=project, assignee_id=user, status=TaskStatus.LEASED,
                lease_expires_at=expires,
            ).values("page_id")[:1]
        )
    ),
    related=("item",), extra=tuple(_SUBJECT_QUERY), user=ID, project=ID, expires=MOMENT,
)  # fmt: skip
_PAGE_QUERY = Prepared(
    lambda page: CandidatePage.objects.filter(pk=page).values_list(
        "query__external_id", "query__text"
    ),
    page=ID,
)
_PAIR_ITEMS = PreparedInstances(
    lambda anchor, other: Item.objects.filter(pk__in=[anchor, other]).annotate(**_SUBJECT_QUERY),
    extra=tuple(_SUBJECT_QUERY), anchor=ID, other=ID,
)  # fmt: skip


@dataclass(frozen=True)
class TaskSubject:
    """What a task shows: its query and its items (a page's in page order with their positions;
    a comparison's anchor and other, positions None)."""

    query_external_id: str
    query_text: str
    items: list[tuple[Item, int | None]]


def task_subject(*, task: Task) -> TaskSubject:
    """The task's query and items, in one statement."""
    return _send_subject(task=task)()


def _send_subject(*, task: Task):
    """task_subject's statement, sent (Prepared.send): what reads it when called."""
    if task.kind == TaskKind.GRADE_PAGE:
        page_slots = _PAGE_SLOTS.send(page=task.page_id)

        def read_page() -> TaskSubject:
            slots = page_slots()
            if not slots:  # a page without items (none is planned so): its query alone
                return TaskSubject(*_PAGE_QUERY.first(page=task.page_id), items=[])
            return _page_subject(slots)

        return read_page
    pair = _PAIR_ITEMS.send(anchor=task.anchor_id, other=task.other_id)

    def read_pair() -> TaskSubject:
        by_id = {item.pk: item for item in pair()}
        anchor, other = by_id[task.anchor_id], by_id[task.other_id]
        return TaskSubject(
            anchor.query_external_id, anchor.query_text, [(anchor, None), (other, None)]
        )

    return read_pair


def _page_subject(slots: list[PageSlot]) -> TaskSubject:
    """A page's subject from its slots (read with their items and the query)."""
    items = [(slot.item, slot.position) for slot in slots]
    return TaskSubject(slots[0].query_external_id, slots[0].query_text, items)


# --- compare sides --------------------------------------------------------------------------


@dataclass(frozen=True)
class Sides:
    """Which item a compare task shows on the left and on the right, and a token that says so."""

    left_id: int
    right_id: int
    token: str


def deal_sides(*, task: Task, rng: random.Random | None = None) -> Sides:
    """Put a compare task's two items on random screen sides, so the anchor cannot be told apart.

    The token is signed (not secret): it only names the items the client shows anyway, and the
    client echoes it with its choice so the answer can be turned back to the anchor's side.
    """
    pair = [task.anchor_id, task.other_id]
    (rng or random).shuffle(pair)
    left_id, right_id = pair
    token = signing.dumps({"task": task.pk, "left": left_id, "right": right_id}, salt=_SIDES_SALT)
    return Sides(left_id=left_id, right_id=right_id, token=token)


SCREEN_CHOICES = ("left", "right", "equal")


def outcome_from_choice(*, task: Task, choice: str, sides_token: str) -> str:
    """Translate an on-screen answer (left / right / equal) to a CompareOutcome (anchor's side)."""
    if choice not in SCREEN_CHOICES:
        raise PagewiseError(
            f"choice must be one of {', '.join(SCREEN_CHOICES)}.", fields={"choice": ["invalid"]}
        )
    try:
        sides = signing.loads(sides_token, salt=_SIDES_SALT)
    except signing.BadSignature:
        sides = None
    subject = {task.anchor_id, task.other_id}
    if (
        not isinstance(sides, dict)
        or sides.get("task") != task.pk
        or {sides.get("left"), sides.get("right")} != subject
    ):
        raise PagewiseError(
            "The sides token does not belong to this task; send back the one that came with it.",
            fields={"sides": ["invalid"]},
        )
    if choice == "equal":
        return CompareOutcome.EQUAL
    better = sides["left"] if choice == "left" else sides["right"]
    return CompareOutcome.ANCHOR_BETTER if better == task.anchor_id else CompareOutcome.OTHER_BETTER


# --- judging --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Answer:
    """An answer to a task, as sent: grades {item_id: grade} for a page, an outcome for a
    comparison; the guideline version the annotator was shown (None: the current one)."""

    client_uuid: uuid.UUID | str
    grades: dict[int, int] | None = None
    outcome: str | None = None
    duration_ms: int = 0
    guideline_version: int | None = None


def submit_judgment(
    *,
    task: Task,
    annotator,
    client_uuid: uuid.UUID | str,
    grades: dict[int, int] | None = None,
    outcome: str | None = None,
    duration_ms: int = 0,
    guideline_version: int | None = None,
) -> tuple[Judgment, bool]:
    """Store the annotator's answer to a task; return (judgment, created).

    The judgment records the guideline version the annotator was shown (`guideline_version`;
    None: the project's current one).

    Idempotent on `client_uuid`: a retried submit returns the stored judgment with created=False
    and is never counted twice. The task is closed when it has `judgments_required` judgments,
    otherwise it goes back to the pool for another annotator. After the commit, `judgment_recorded`
    is sent so that other apps can queue their follow-up work.

    Locks: the task row, so that the count of its judgments and its new status cannot interleave
    with another submit of the same task.
    """
    answer = Answer(
        client_uuid=_as_uuid(client_uuid), grades=grades, outcome=outcome,
        duration_ms=duration_ms, guideline_version=guideline_version,
    )  # fmt: skip
    judgment, created, _ = _submit(
        task_id=task.pk, annotator=annotator, roles=None, answer=lambda task: answer
    )
    return judgment, created


def submit_answer(
    *, user, task_id: int | str, answer, roles: tuple[str, ...] = ANNOTATING_ROLES
) -> tuple[Judgment, bool, Task]:
    """`task_for` then `submit_judgment`, with the task read once, under its lock: return
    (judgment, created, task). `answer(task)` gives the Answer (or raises what is wrong with it),
    asked once the user is known to judge the task, so the refusals come in task_for's order:
    NotFound or PermissionDenied, then a bad answer, then the lease's Conflict."""
    return _submit(task_id=task_id, annotator=user, roles=roles, answer=answer)


def _submit(*, task_id, annotator, roles, answer) -> tuple[Judgment, bool, Task]:
    # Two round trips on PostgreSQL (`pipelined`): BEGIN, the task's lock (with its project, the
    # user's role, the current guideline and the page's items); then the judgment with its grades
    # (one statement), the task's release and COMMIT. Elsewhere one transaction (`atomic`), a
    # statement at a time.
    pk = _task_pk(task_id)
    postgresql = connection.vendor == "postgresql"
    refusal = None
    try:
        with pipelined(transaction=True):
            read = _LOCKED_TASK_AND_ITEMS if postgresql else _LOCKED_TASK
            task = read.first(task=pk, user=annotator.pk) if pk else None
            try:
                client_uuid, stored, row = _checked_answer(
                    task, annotator=annotator, task_id=task_id, roles=roles, answer=answer
                )
            except DatabaseError:
                raise
            except Exception as error:
                # Nothing is written yet: the transaction commits its reads rather than rolling
                # back, since psycopg forgets every prepared statement of a connection that does.
                refusal = error
            else:
                if stored is None:
                    made = _store(task=task, annotator=annotator, client_uuid=client_uuid, row=row)
    except IntegrityError:
        # A duplicate key (a racing retry, a reused UUID) rolled the transaction back: answer
        # with what is stored, or say why nothing is.
        stored = _stored_judgment(client_uuid=client_uuid, task=task, annotator=annotator)
        if stored is not None:
            return stored, False, task
        if Judgment.objects.filter(task=task, annotator=annotator).exists():
            raise Conflict("You have already judged this task.") from None
        raise
    if refusal is not None:
        raise refusal
    if stored is not None:
        return stored, False, task
    judgment = made()
    # What the response shows, known here: no query to read them back.
    judgment.submitted_grades, judgment.guideline_version = row.grades, row.version
    transaction.on_commit(  # now (committed), or at the commit of a caller's transaction
        partial(
            announce,
            judgment_recorded,
            judgment_id=judgment.pk,
            project_id=task.project_id,
            project=task.project,
        )
    )
    return judgment, True, task


def _checked_answer(task: Task | None, *, annotator, task_id, roles, answer):
    """(client_uuid, the judgment a retry of this submit already stored or None, the row to store
    otherwise) for the task read under its lock; raises what refuses the submit, in order: who
    asks (with `roles`), what they answer, the lease."""
    if roles is not None:
        _judgeable(task, user=annotator, task_id=task_id, roles=roles)
    elif task is None:
        raise NotFound(f"No task '{task_id}'.")
    given = answer(task)
    client_uuid = _as_uuid(given.client_uuid)
    # A retry of this very submit may have committed before, or while we waited for the lock: then
    # the task is no longer leased to us (a judged task never is again), and only a new statement
    # sees the judgment.
    if not _leased_to(task, annotator):
        stored = _stored_judgment(client_uuid=client_uuid, task=task, annotator=annotator)
        if stored is not None:
            return client_uuid, stored, None
    _check_lease(task=task, annotator=annotator)
    postgresql = connection.vendor == "postgresql"
    return client_uuid, None, _judgment_row(task=task, given=given, postgresql=postgresql)


def _store(*, task: Task, annotator, client_uuid, row: _JudgmentRow):
    """Send the judgment's INSERT (with its grades) and the task's release; what reads the new
    judgment when called (after the block, on PostgreSQL)."""
    postgresql = connection.vendor == "postgresql"
    grades = row.grades
    made = _NEW_JUDGMENT.send(
        task=task, project=task.project, annotator=annotator, client_uuid=client_uuid, **row.values,
        with_rows=(_GRADES_OF_NEW, [list(grades), list(grades.values())]) if postgresql else None,
    )  # fmt: skip
    if not postgresql:
        _insert_grades(judgment=made(), grades=grades)
    # One judgment asked for (the default): this one closes the task, nothing to count.
    judged = (
        Judgment.objects.filter(task=task, supersedes__isnull=True).count()
        if task.judgments_required > 1
        else 1
    )
    done = judged >= task.judgments_required
    _RELEASE.send(task=task.pk, status=TaskStatus.DONE if done else TaskStatus.OPEN)
    return made


@dataclass(frozen=True)
class _JudgmentRow:
    values: dict  # the judgment's columns besides its task, project, annotator and UUID
    grades: dict[int, int]
    version: int | None  # the guideline's


def _judgment_row(*, task: Task, given: Answer, postgresql: bool) -> _JudgmentRow:
    """The judgment to store for `given` on the locked task, or the PagewiseError saying why not."""
    project = task.project  # read with the lock: its costs and scale are current
    duration_ms = _clean_duration(given.duration_ms)
    guideline_id, version = guideline_for_judgment(
        project=project, version=given.guideline_version
    ) or (None, None)
    if task.kind == TaskKind.GRADE_PAGE:
        if given.outcome is not None:
            raise PagewiseError(
                "A page is graded, not compared: send grades, not a choice.",
                fields={"choice": ["not allowed for a page"]},
            )
        grades = _clean_grades(
            task=task, grades=given.grades, max_grade=project.max_grade,
            page_items=task.page_items if postgresql else None,
        )  # fmt: skip
        cost = project.grade_cost * len(grades)
    else:
        if given.grades is not None:
            raise PagewiseError(
                "A comparison is answered with a choice, not grades.",
                fields={"grades": ["not allowed for a comparison"]},
            )
        if given.outcome not in CompareOutcome.values:
            raise PagewiseError(
                f"outcome must be one of {', '.join(CompareOutcome.values)}.",
                fields={"outcome": ["invalid"]},
            )
        grades, cost = {}, project.compare_cost
    values = {
        "kind": task.kind,
        "outcome": given.outcome if task.kind == TaskKind.COMPARE else None,
        "cost": cost,
        "duration_ms": duration_ms,
        "guideline_id": guideline_id,
    }
    return _JudgmentRow(values=values, grades=grades, version=version)


def skip_task(*, task: Task, annotator) -> TaskSkip:
    """Record that the annotator passes on the task (they never get it again) and release it.

    Locks: the task row, so that releasing the lease cannot undo a claim made meanwhile.
    """
    with transaction.atomic():
        locked = Task.objects.select_for_update().get(pk=task.pk)
        if Judgment.objects.filter(task=locked, annotator=annotator).exists():
            raise Conflict("You have already judged this task; there is nothing to skip.")
        if (
            locked.status == TaskStatus.LEASED
            and locked.assignee_id != annotator.pk
            and locked.lease_expires_at is not None
            and locked.lease_expires_at > timezone.now()
        ):
            # Only the lease holder may pass on a leased task; an expired lease binds nobody.
            raise Conflict("This task is leased to another annotator; you cannot skip it.")
        skip = TaskSkip.objects.filter(task=locked, annotator=annotator).first()
        if skip is None:
            skip = TaskSkip.objects.create(task=locked, annotator=annotator)
        if locked.status == TaskStatus.LEASED and locked.assignee_id == annotator.pk:
            Task.objects.filter(pk=locked.pk).update(
                status=TaskStatus.OPEN, assignee=None, lease_expires_at=None
            )
    return skip


def revise_judgment(
    *,
    judgment: Judgment,
    annotator,
    client_uuid: uuid.UUID | str,
    grades: dict[int, int] | None = None,
    outcome: str | None = None,
    duration_ms: int = 0,
    guideline_version: int | None = None,
) -> tuple[Judgment, bool]:
    """Store the annotator's corrected answer as a new judgment superseding `judgment`.

    Judgments stay append-only: the old one is kept, and labels, pairs, searches and training
    read the latest of the chain. A revision costs nothing (the task was paid for once) and does
    not change the task's status or its count of judgments. An answer equal to the current one
    stores nothing and returns it with created=False; so does a retry with the same client_uuid.
    After the commit `judgment_recorded` is sent, so a revised search probe re-runs its step.

    Locks: the task row, so that two revisions of one answer cannot both be stored.
    """
    client_uuid = _as_uuid(client_uuid)
    if judgment.annotator_id != annotator.pk:
        raise NotFound(f"No judgment '{judgment.pk}' of yours.")
    stored = _stored_judgment(client_uuid=client_uuid, task=judgment.task, annotator=annotator)
    if stored is not None:
        return stored, False
    with transaction.atomic():
        locked = Task.objects.select_for_update().get(pk=judgment.task_id)
        stored = _stored_judgment(client_uuid=client_uuid, task=locked, annotator=annotator)
        if stored is not None:
            return stored, False
        latest = Judgment.objects.filter(task=locked, annotator=annotator).exclude(
            superseded_by__isnull=False
        )
        current = latest.first()
        if current is None or current.pk != judgment.pk:
            raise Conflict(
                "This answer was revised already; revise your latest answer to this task"
                + (f" (judgment {current.pk})." if current else "."),
                fields={"judgment": ["superseded"]},
            )
        project = Project.objects.get(pk=locked.project_id)
        duration_ms = _clean_duration(duration_ms)
        guideline_id, version = guideline_for_judgment(
            project=project, version=guideline_version
        ) or (None, None)
        if locked.kind == TaskKind.GRADE_PAGE:
            if outcome is not None:
                raise PagewiseError(
                    "A page is graded, not compared: send grades, not a choice.",
                    fields={"choice": ["not allowed for a page"]},
                )
            cleaned = _clean_grades(task=locked, grades=grades, max_grade=project.max_grade)
            if cleaned == dict(judgment.grades.values_list("item_id", "grade")):
                return judgment, False
        else:
            if grades is not None or outcome not in CompareOutcome.values:
                raise PagewiseError(
                    f"A comparison is revised with a choice: outcome must be one of "
                    f"{', '.join(CompareOutcome.values)}.",
                    fields={"outcome": ["invalid"]},
                )
            if outcome == judgment.outcome:
                return judgment, False
            cleaned = {}
        revision = Judgment.objects.create(
            task=locked, project=project, annotator=annotator, client_uuid=client_uuid,
            kind=locked.kind, outcome=outcome if locked.kind == TaskKind.COMPARE else None,
            cost=Decimal("0"), duration_ms=duration_ms, guideline_id=guideline_id, supersedes=judgment,
        )  # fmt: skip
        ItemGrade.objects.bulk_create(
            [ItemGrade(judgment=revision, item_id=i, grade=g) for i, g in cleaned.items()]
        )
        transaction.on_commit(
            partial(announce, judgment_recorded, judgment_id=revision.pk, project_id=project.pk)
        )
    return revision, True


def unskip_task(*, task: Task, annotator) -> int:
    """Take back the annotator's skip of a task, so that it can be handed to them again.

    Returns how many skips were removed (a skip is a note, not a judgment: removing it is fine).
    """
    if task.status in (TaskStatus.DONE, TaskStatus.CANCELLED):
        raise Conflict(
            f"This task is {task.get_status_display().lower()} now; there is nothing to take back."
        )
    removed, _ = TaskSkip.objects.filter(task=task, annotator=annotator).delete()
    if not removed:
        raise NotFound("You have not skipped this task.")
    return removed


def _stored_judgment(*, client_uuid: uuid.UUID, task: Task, annotator) -> Judgment | None:
    """The judgment already stored under this UUID by this annotator for this task, if any."""
    stored = _JUDGMENT_BY_UUID.first(client_uuid=client_uuid)
    if stored is None:
        return None
    if stored.task_id != task.pk or stored.annotator_id != annotator.pk:
        raise Conflict(
            "This client_uuid was already used for another judgment; use a new UUID per judgment.",
            fields={"client_uuid": ["already used"]},
        )
    return stored


def _leased_to(task: Task, annotator) -> bool:
    # An expired lease still counts while nobody else has taken the task: the row still names us.
    return task.status == TaskStatus.LEASED and task.assignee_id == annotator.pk


def _check_lease(*, task: Task, annotator) -> None:
    if task.status in (TaskStatus.DONE, TaskStatus.CANCELLED):
        raise Conflict(f"This task is {task.get_status_display().lower()}; ask for the next one.")
    if _leased_to(task, annotator):
        return
    if task.status == TaskStatus.LEASED:
        raise Conflict(
            "This task is leased to another annotator (your lease may have expired); "
            "your answer was not stored. Ask for the next task."
        )
    raise Conflict("This task is not leased to you; ask for the next task first.")


def _insert_grades(*, judgment: Judgment, grades: dict[int, int]) -> None:
    """bulk_create's INSERT of the judgment's grades, without asking their ids back. PostgreSQL
    inserts them with the judgment instead (`_GRADES_OF_NEW`)."""
    if not grades:
        return
    query = InsertQuery(ItemGrade)
    query.insert_values(
        _GRADE_FIELDS, [ItemGrade(judgment=judgment, item_id=i, grade=g) for i, g in grades.items()]
    )
    query.get_compiler(connection=connection).execute_sql(returning_fields=None)


_GRADE_FIELDS = [ItemGrade._meta.get_field(name) for name in ("judgment", "item", "grade")]
# PostgreSQL: the new judgment's grades, inserted by the judgment's own statement
# (PreparedInsert.send's `with_rows`): one statement for any number of grades (the items and
# grades as two arrays), prepared once; building the ORM's INSERT cost a twentieth of a submit.
_GRADES_OF_NEW = (
    f"INSERT INTO {ItemGrade._meta.db_table} ({', '.join(f.column for f in _GRADE_FIELDS)}) "
    "SELECT new.id, item, grade FROM new, unnest(%s::bigint[], %s::smallint[]) AS g (item, grade)"
)


def _clean_grades(
    *, task: Task, grades, max_grade: int, page_items: list[int] | None = None
) -> dict[int, int]:
    if page_items is None:
        page_items = [item_id for (item_id,) in _PAGE_ITEM_IDS.rows(page=task.page_id)]
    if not isinstance(grades, dict) or not grades:
        raise PagewiseError(
            "Grade every item of the page: send grades as {item_id: grade}.",
            fields={"grades": ["required"]},
        )
    cleaned: dict[int, int] = {}
    problems: dict[str, list[str]] = {}
    for key, grade in grades.items():
        # JSON keys are strings: only ASCII digits name an item ("١" or " 1" do not), and no
        # more of them than a bigint holds (int() refuses strings of over 4300 digits).
        if isinstance(key, str) and key.isascii() and key.isdigit() and len(key) <= 19:
            item_id = int(key)
        elif isinstance(key, int) and not isinstance(key, bool):
            item_id = key
        else:
            problems[str(key)[:40]] = ["not an item id"]
            continue
        if item_id not in page_items:
            problems[str(key)] = ["not an item of this page"]
        elif isinstance(grade, bool) or not isinstance(grade, int) or not 0 <= grade <= max_grade:
            problems[str(key)] = [f"grade must be an integer from 0 to {max_grade}"]
        else:
            cleaned[item_id] = grade
    for item_id in page_items:
        if item_id not in cleaned and str(item_id) not in problems:
            problems[str(item_id)] = ["missing: every item of the page needs a grade"]
    if problems:
        raise PagewiseError(
            f"Grades must cover exactly the {len(page_items)} items of the page, "
            f"each from 0 to {max_grade}.",
            fields={"grades": problems},
        )
    return cleaned


def _clean_duration(duration_ms) -> int:
    if isinstance(duration_ms, bool) or not isinstance(duration_ms, int):
        raise PagewiseError("duration_ms must be an integer.", fields={"duration_ms": ["invalid"]})
    if not 0 <= duration_ms <= MAX_DURATION_MS:
        raise PagewiseError(
            f"duration_ms must be from 0 to {MAX_DURATION_MS}.", fields={"duration_ms": ["invalid"]}
        )
    return duration_ms


def _as_uuid(value) -> uuid.UUID:
    if isinstance(value, uuid.UUID):
        return value
    try:
        return uuid.UUID(str(value))
    except ValueError:
        raise PagewiseError(
            "client_uuid must be a UUID.", fields={"client_uuid": ["invalid"]}
        ) from None
