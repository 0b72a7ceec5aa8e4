"""Statements compiled once (labeling/prepared.py) against the same querysets compiled now."""

import uuid
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from django.db import DataError, connection, transaction
from django.db.models import IntegerField, Value
from psycopg import pq

from labeling import assignment, guidelines, prepared, selectors, tally
from labeling.models import Judgment, Project, Role, Task, TaskStatus
from labeling.prepared import DAY, ID, MOMENT, TEXT, UUID, Prepared, PreparedInstances
from tests.labeling.task_factories import make_compare_task, make_page_task
from web import api_tasks, authentication
from webhooks import services as webhook_services

MODULES = (assignment, guidelines, selectors, tally, authentication, api_tasks, webhook_services)


def every_prepared_statement():
    for module in MODULES:
        for name, value in vars(module).items():
            if isinstance(value, PreparedInstances):
                yield f"{module.__name__}.{name}", value.statement
            elif isinstance(value, Prepared):
                yield f"{module.__name__}.{name}", value


def values_for(statement: Prepared, draw: int) -> dict:
    """Real-looking arguments, different per draw (none equals a stand-in)."""

    def made(kind: str, i: int):
        return {
            ID: 7 + 100 * draw + i,
            MOMENT: datetime(2026, 11, 27, 12, 30, draw, tzinfo=UTC) + timedelta(hours=i),
            DAY: date(2026, 11, 1 + draw + i),
            UUID: uuid.UUID(int=1234 + 100 * draw + i),
            TEXT: f"slug-{draw}-{i}",
        }[kind]

    return {name: made(kind, i) for i, (name, kind) in enumerate(statement.kinds.items())}


def rendered(sql: str, params: list) -> str:
    """The statement with its parameters written in, the way constants are inlined (so that a
    prepared statement with its constants inlined reads the same as the one compiled now)."""
    remaining = iter(params)

    def put(match):
        if match.group() == "%%":
            return "%%"
        param = next(remaining)
        return prepared.literal(param) or f"<{param!r}>"

    return prepared._PLACEHOLDER.sub(put, sql)


@pytest.mark.django_db(transaction=True)  # select_for_update compiles only inside atomic()
@pytest.mark.parametrize("draw", [0, 1, 2])
def test_every_prepared_statement_is_the_one_compiled_now(draw):
    from django.db import transaction

    names = []
    with transaction.atomic():
        for name, statement in every_prepared_statement():
            values = values_for(statement, draw)
            assert rendered(*statement.sql(**values)) == rendered(
                *statement.compile_now(**values)
            ), name
            names.append(name)
    assert len(names) >= 17  # the annotator's hot path


@pytest.mark.django_db
def test_a_constant_equal_to_a_stand_in_stays_a_constant(project):
    stand_in = prepared._stand_in(ID, 0)
    statement = Prepared(
        lambda task: Task.objects.filter(pk=task, priority=stand_in).values_list("id"), task=ID
    )
    sql, params = statement.sql(task=5)
    assert params == [5] and f"= {stand_in}" in sql  # the constant is written in, not filled
    assert rendered(sql, params) == rendered(*statement.compile_now(task=5))
    assert statement.rows(task=5) == []


@pytest.mark.django_db
def test_constants_are_written_into_the_sql_and_arguments_stay_parameters(project):
    task = make_page_task(project)
    statement = Prepared(
        lambda task: (
            Task.objects.filter(pk=task, status=TaskStatus.OPEN, kind=task_kind)
            .exclude(reason="it's 100%")
            .values_list("id")
        ),
        task=ID,
    )
    task_kind = task.kind
    sql, params = statement.sql(task=task.pk)
    assert "'open'" in sql and f"'{task.kind}'" in sql
    assert params == [task.pk, "it's 100%"]  # text that is not plain stays a parameter
    assert statement.rows(task=task.pk) == [(task.pk,)]
    assert [prepared.literal(v) for v in (7, True, "open", "it's", "a b")] == [
        "7",
        None,
        "'open'",
        None,
        None,
    ]


@pytest.mark.django_db
def test_typed_values_keep_their_sql_type(project):
    statement = Prepared(
        lambda n: Project.objects.annotate(n=Value(n, output_field=IntegerField())).values_list(
            "n"
        ),
        n=ID,
    )
    assert statement.rows(n=41) == [(41,)]
    assert statement.sql(n=41) == statement.compile_now(n=41)


@pytest.mark.django_db
def test_an_argument_the_sql_does_not_show_is_refused_when_compiled(project):
    statement = Prepared(lambda task, unused: Task.objects.filter(pk=task), task=ID, unused=ID)
    with pytest.raises(ValueError, match="unused"):
        statement.rows(task=1, unused=2)


@pytest.mark.django_db
def test_instances_come_with_their_related_row_and_annotations(
    project, make_user, django_assert_num_queries
):
    annotator = make_user("ann", role=Role.ANNOTATOR, project=project)
    task = make_page_task(project, items=2)
    with django_assert_num_queries(1):
        found = assignment._TASK_WITH_PROJECT.first(task=task.pk, user=annotator.pk)
        assert found.pk == task.pk and found.status == TaskStatus.OPEN
        assert found.project.slug == project.slug and found.project.grade_names
        assert found.viewer_role == Role.ANNOTATOR
        assert found.created_at.tzinfo is not None
    assert assignment._TASK_WITH_PROJECT.first(task=task.pk + 1000, user=annotator.pk) is None


@pytest.mark.django_db
def test_converted_values_match_the_orm(project, make_user):
    annotator = make_user("ann", role=Role.ANNOTATOR, project=project)
    task = make_page_task(project, items=2)
    leased = assignment.claim_next_task(annotator=annotator, project=project)
    assert leased.pk == task.pk
    judgment, _ = assignment.submit_judgment(
        task=assignment.task_for(user=annotator, task_id=task.pk),
        annotator=annotator,
        client_uuid=uuid.uuid4(),
        grades={slot.item_id: 1 for slot in task.page.slots.all()},
    )
    stored = assignment._JUDGMENT_BY_UUID.first(client_uuid=judgment.client_uuid)
    assert stored == Judgment.objects.get(pk=judgment.pk)
    for field in ("client_uuid", "cost", "created_at", "kind", "duration_ms"):
        assert getattr(stored, field) == getattr(Judgment.objects.get(pk=judgment.pk), field)
    day = judgment.created_at.astimezone(UTC).date()
    progress = assignment._PROGRESS.first(
        project=project.pk, user=annotator.pk, now=judgment.created_at, day=day
    )
    assert progress == (1, 1, int(judgment.cost * 10_000), 0, False)


@pytest.mark.django_db
def test_a_comparison_shows_its_anchor_query_and_both_items(project, django_assert_num_queries):
    task = make_compare_task(project)
    with django_assert_num_queries(1):
        subject = assignment.task_subject(task=task)
    assert (subject.query_external_id, subject.query_text) == (
        task.anchor.query.external_id,
        task.anchor.query.text,
    )
    assert [(item.pk, position) for item, position in subject.items] == [
        (task.anchor_id, None),
        (task.other_id, None),
    ]


def server_prepared_statements() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT statement FROM pg_prepared_statements")
        return {row[0] for row in cursor.fetchall()}


@pytest.mark.postgres
@pytest.mark.django_db
def test_postgresql_plans_the_hot_statements_once_and_a_replayed_submit_keeps_them(
    project, make_user
):
    """psycopg prepares a statement a connection runs often (settings: prepare_threshold), so
    PostgreSQL plans it once; it forgets them all when a transaction rolls back, so a retried
    submit is answered by committing its reads."""
    annotator = make_user("ann", role=Role.ANNOTATOR, project=project)
    task = make_page_task(project, items=2)
    assignment.claim_next_task(annotator=annotator, project=project)
    for _ in range(6):
        assignment._TASK.first(task=task.pk)
    task_sql = assignment._TASK.statement.sql(task=task.pk)[0].replace("%s", "$1")
    assert task_sql in server_prepared_statements()

    answer = {
        "client_uuid": uuid.uuid4(),
        "grades": {slot.item_id: 1 for slot in task.page.slots.all()},
    }
    first, created = assignment.submit_judgment(
        task=assignment.task_for(user=annotator, task_id=task.pk), annotator=annotator, **answer
    )
    again, created_again = assignment.submit_judgment(
        task=assignment.task_for(user=annotator, task_id=task.pk), annotator=annotator, **answer
    )
    assert (created, created_again, again.pk) == (True, False, first.pk)
    assignment._TASK.first(task=task.pk)
    assert task_sql in server_prepared_statements()


@pytest.mark.django_db
def test_the_prepared_judgment_insert_is_the_one_create_runs(project, make_user):
    """_NEW_JUDGMENT skips Model.save(): it must run the very INSERT that create() runs, give the
    instance what save() gives it, and nothing may listen to a judgment's save signals."""
    from django.db.models.signals import post_save, pre_save
    from django.test.utils import CaptureQueriesContext

    annotator = make_user("ann", role=Role.ANNOTATOR, project=project)
    first, second = make_page_task(project, items=1), make_page_task(project, items=1)
    values = dict(
        project=project, annotator=annotator, kind=first.kind, cost=Decimal("0.1250"),
        duration_ms=1500, guideline_id=None, outcome=None,
    )  # fmt: skip
    with CaptureQueriesContext(connection) as by_orm:
        made = Judgment.objects.create(task=first, client_uuid=uuid.uuid4(), **values)
    with CaptureQueriesContext(connection) as prepared_insert:
        ours = assignment._NEW_JUDGMENT.create(task=second, client_uuid=uuid.uuid4(), **values)
    orm_sql = by_orm.captured_queries[-1]["sql"].split(" VALUES ")[0]
    assert prepared_insert.captured_queries[-1]["sql"].split(" VALUES ")[0] == orm_sql
    assert len(prepared_insert.captured_queries) == len(by_orm.captured_queries)
    assert (ours._state.adding, ours._state.db) == (made._state.adding, made._state.db)
    stored = Judgment.objects.get(pk=ours.pk)
    for field in Judgment._meta.concrete_fields:
        if field.name not in ("id", "task", "client_uuid", "created_at"):
            assert getattr(stored, field.attname) == getattr(made, field.attname), field.name
        if field.name != "id":
            assert getattr(stored, field.attname) == getattr(ours, field.attname), field.name
    assert ours.created_at is not None and ours.task_id == second.pk
    assert not pre_save.has_listeners(Judgment) and not post_save.has_listeners(Judgment)


def plan_cache_mode() -> str:
    with connection.cursor() as cursor:
        cursor.execute("SHOW plan_cache_mode")
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # the request's autocommit mode, as the views run
def test_generic_plans_hold_for_the_block_only_and_a_failure_ends_its_transaction():
    with prepared.pipelined(generic_plans=True):
        inside = Prepared(lambda: ("SELECT current_setting('plan_cache_mode')", [])).send()
    assert inside() == [("force_generic_plan",)]
    assert plan_cache_mode() == "auto"
    assert connection.connection.info.transaction_status == pq.TransactionStatus.IDLE

    with pytest.raises(DataError):
        with prepared.pipelined(generic_plans=True):
            Prepared(lambda: ("SELECT 1 / 0", [])).send()
    assert connection.connection.info.transaction_status == pq.TransactionStatus.IDLE
    assert plan_cache_mode() == "auto"


def setting(name: str) -> str:
    with connection.cursor() as cursor:
        cursor.execute("SELECT current_setting(%s)", [name])
        return cursor.fetchone()[0]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)  # the request's autocommit mode, as the views run
def test_a_block_that_need_not_last_commits_without_waiting_for_the_disk_and_only_it():
    read = "SELECT current_setting('synchronous_commit'), current_setting('plan_cache_mode')"
    with prepared.pipelined(transaction=True, durable=False):
        lease = Prepared(lambda: (read, [])).send()
    with prepared.pipelined(transaction=True):
        judgment = Prepared(lambda: (read, [])).send()
    with prepared.pipelined(generic_plans=True, durable=False):
        claim = Prepared(lambda: (read, [])).send()
    assert lease() == [("off", "auto")]
    assert judgment() == [("on", "auto")]
    assert claim() == [("off", "force_generic_plan")]
    assert setting("synchronous_commit") == "on"
    assert connection.connection.info.transaction_status == pq.TransactionStatus.IDLE

    # Inside a caller's transaction the block is a savepoint: the setting is left alone.
    with transaction.atomic():
        with prepared.pipelined(transaction=True, durable=False):
            inside = Prepared(lambda: (read, [])).send()
        assert inside() == [("on", "auto")]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_progress_statement_tests_the_open_head_row_by_row(project, make_user):
    """The exclusions of the open queue's head stay per-row probes (SubPlans): as anti joins their
    plan followed estimates of the annotator's judgments and could read all of them per row."""
    annotator = make_user("ann", role=Role.ANNOTATOR, project=project)
    make_page_task(project, items=1)
    now = datetime.now(UTC)
    sql, params = assignment._PROGRESS.sql(
        user=annotator.pk, project=project.pk, now=now, day=now.date()
    )
    with connection.cursor() as cursor:
        cursor.execute(f"EXPLAIN {sql}", params)
        plan = "\n".join(row[0] for row in cursor.fetchall())
    head_filter = next(line for line in plan.splitlines() if "Filter: ((NOT (SubPlan" in line)
    assert head_filter.count("SubPlan") == 3
    assert assignment.annotator_progress(annotator=annotator, project=project).tasks_remaining == 1


@pytest.mark.postgres
@pytest.mark.django_db
def test_prepared_statements_reuse_the_connections_kept_cursors_and_errors_stay_djangos():
    from django.test.utils import CaptureQueriesContext

    one = Prepared(lambda: ("SELECT 1", []))
    prepared._kept_cursors(connection).clear()  # what earlier tests on this connection left
    assert one.rows() == [(1,)]
    kept = prepared._kept_cursors(connection)
    assert len(kept) == 1
    cursor = kept[0]
    with prepared.pipelined():  # two statements in flight: the second one gets a cursor of its own
        first, second = one.send(), one.send()
    assert (first(), second()) == ([(1,)], [(1,)])
    assert cursor in kept and len(kept) == 2

    with pytest.raises(DataError), transaction.atomic():  # Django's error, as from its cursor
        Prepared(lambda: ("SELECT 1 / 0", [])).rows()
    assert one.rows() == [(1,)]

    # While the query log listens (tests counting queries, DEBUG), Django's cursor runs them.
    with CaptureQueriesContext(connection) as queries:
        assert one.rows() == [(1,)]
    assert [q["sql"] for q in queries.captured_queries] == ["SELECT 1"]
