"""The project tally kept by database triggers equals the same figures counted over the project's
rows after every kind of write: import, planning, claims, submits (several per task), revisions,
skips, cancellations, deletions, adjudications and split changes. Runs on SQLite, and on
PostgreSQL when DATABASE_URL names one (its triggers are other SQL: statement-level)."""

from __future__ import annotations

import importlib
import io
import json
import threading
import time
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core.management import call_command
from django.db import connection, transaction
from django.db.models import F
from django.utils import timezone

from active_selection.services import create_page_tasks
from labeling import assignment
from labeling.imports import import_project_file
from labeling.models import (
    Adjudication,
    CompareOutcome,
    Item,
    Judgment,
    PageSlot,
    Project,
    ProjectTally,
    Query,
    Role,
    Split,
    TallyShard,
    Task,
    TaskStatus,
)
from labeling.selectors import budget_status, human_graded_item_count
from labeling.tally import counted_figures, tallied_figures

from .task_factories import make_compare_task, make_item, make_query, page_item_ids

pytestmark = pytest.mark.django_db(transaction=True)
SHARDS = importlib.import_module("labeling.migrations.0017_tally_shards").SHARDS


def assert_tally_counts(*projects: Project) -> dict[str, int]:
    """Check each project's tally; return the first one's."""
    for project in projects:
        assert tallied_figures(project=project) == counted_figures(project=project), project.slug
    return tallied_figures(project=projects[0])


def import_items(project: Project, *, queries: int, per_modality: int) -> None:
    records = []
    for q in range(queries):
        split = Split.GOLD if q == 0 else Split.TRAIN
        records.append(
            {"type": "query", "id": f"imported{q}", "text": f"query {q}", "split": split}
        )
        for modality in ("text", "image"):
            for n in range(per_modality):
                records.append(
                    {
                        "type": "item",
                        "id": f"imported{q}-{modality}-{n}",
                        "query": f"imported{q}",
                        "modality": modality,
                        "title": f"Item {n}",
                        "text": "Some text.",
                        "upstream_score": float(per_modality - n),
                    }  # fmt: skip
                )
    data = "".join(json.dumps(record) + "\n" for record in records).encode()
    import_project_file(project=project, file=io.BytesIO(data), filename="data.jsonl")


def judge(project: Project, annotator, **answer) -> Judgment:
    task = assignment.claim_next_task(annotator=annotator, project=project)
    assert task is not None
    if task.kind == "compare":
        answer.setdefault("outcome", CompareOutcome.EQUAL)
    else:
        answer.setdefault("grades", dict.fromkeys(page_item_ids(task), 2))
    judgment, _ = assignment.submit_judgment(
        task=task, annotator=annotator, client_uuid=uuid.uuid4(), **answer
    )
    return judgment


def test_tally_equals_the_counted_figures_after_every_kind_of_write(make_user):
    project = Project.objects.create(
        slug="p", name="Tallied", strategy="full", page_size=4, judgments_per_task=2,
        grade_cost=Decimal("0.0700"), compare_cost=Decimal("0.0300"), budget=Decimal("1000"),
    )  # fmt: skip
    other = Project.objects.create(slug="o", name="Other", strategy="full", page_size=3)
    assert assert_tally_counts(project) == dict.fromkeys(counted_figures(project=project), 0)

    import_items(project, queries=4, per_modality=3)
    import_items(other, queries=2, per_modality=2)
    figures = assert_tally_counts(project, other)
    assert (figures["items"], figures["train_items"]) == (24, 18)

    # An import queues the planning; planning again creates only what is missing.
    create_page_tasks(project=project)
    create_page_tasks(project=other)
    figures = assert_tally_counts(project, other)
    assert figures["pending_tasks"] > 0 and figures["grade_units"] == 2 * 18

    one, two, three = (
        make_user(name, role=Role.ANNOTATOR, project=project) for name in ("one", "two", "three")
    )
    before = tallied_figures(project=project)
    claimed = assignment.claim_next_task(annotator=one, project=project)
    assert tallied_figures(project=project) == before  # a claim moves no figure
    judgment, _ = assignment.submit_judgment(
        task=claimed, annotator=one, client_uuid=uuid.uuid4(),
        grades=dict.fromkeys(page_item_ids(claimed), 1),
    )  # fmt: skip
    assert_tally_counts(project)
    judge(project, two)  # the second of the two judgments: the task is done
    judge(project, one)
    judge(project, three)
    figures = assert_tally_counts(project, other)
    assert figures["graded_train_items"] > 0

    assignment.revise_judgment(
        judgment=judgment, annotator=one, client_uuid=uuid.uuid4(),
        grades=dict.fromkeys(page_item_ids(judgment.task), 3),
    )  # fmt: skip
    alone = make_user("alone", role=Role.ANNOTATOR, project=other)
    only_answer = judge(other, alone)  # one judgment per task: a revision is the only grade
    assignment.revise_judgment(
        judgment=only_answer, annotator=alone, client_uuid=uuid.uuid4(),
        grades=dict.fromkeys(page_item_ids(only_answer.task), 0),
    )  # fmt: skip
    assert_tally_counts(project, other)

    skipped = assignment.claim_next_task(annotator=three, project=project)
    assignment.skip_task(task=skipped, annotator=three)
    assert_tally_counts(project)

    pending = Task.objects.filter(project=project, status=TaskStatus.OPEN)
    Task.objects.filter(pk=pending.order_by("pk")[0].pk).update(status=TaskStatus.CANCELLED)
    assert_tally_counts(project)
    Task.objects.filter(pk=pending.order_by("pk")[0].pk).update(judgments_required=3)
    assert_tally_counts(project)
    Task.objects.filter(pk=pending.order_by("pk")[0].pk).delete()
    assert_tally_counts(project)

    page_task = pending.order_by("pk").last()
    slot = PageSlot.objects.filter(page_id=page_task.page_id).order_by("position").last()
    slot.delete()
    assert_tally_counts(project)
    PageSlot.objects.create(page_id=page_task.page_id, position=99, item_id=slot.item_id)
    assert_tally_counts(project)

    compare = make_compare_task(project, priority=100)
    assert_tally_counts(project)
    four = make_user("four", role=Role.ANNOTATOR, project=project)
    Task.objects.filter(pk=compare.pk).update(
        status=TaskStatus.LEASED,
        assignee=four,
        lease_expires_at=timezone.now() + timedelta(hours=1),
    )
    assert_tally_counts(project)
    assignment.submit_judgment(
        task=compare, annotator=four, client_uuid=uuid.uuid4(), outcome=CompareOutcome.EQUAL
    )
    assert_tally_counts(project)

    graded_item = Item.objects.filter(project=project, grades__isnull=False).first()
    ungraded_item = Item.objects.filter(project=project, grades__isnull=True).first()
    Adjudication.objects.create(project=project, item=graded_item, grade=4)
    Adjudication.objects.create(project=project, item=ungraded_item, grade=1)
    assert_tally_counts(project)
    Adjudication.objects.update_or_create(item=ungraded_item, defaults={"grade": 0})
    Adjudication.objects.filter(item=graded_item).delete()
    assert_tally_counts(project)

    train_query = Query.objects.filter(project=project, items__grades__isnull=False).first()
    Query.objects.filter(pk=train_query.pk).update(split=Split.GOLD)
    assert_tally_counts(project)
    Query.objects.filter(pk=train_query.pk).update(split=Split.TRAIN)
    assert_tally_counts(project)

    Item.objects.filter(pk=ungraded_item.pk).delete()
    make_item(project, make_query(project))
    assert_tally_counts(project, other)
    unjudged = Query.objects.filter(project=project, items__grades__isnull=True).exclude(
        items__grades__isnull=False
    )
    Query.objects.filter(pk=unjudged.first().pk).delete()
    assert_tally_counts(project, other)

    status = budget_status(project=project)
    assert status["spent"] == sum(j.cost for j in Judgment.objects.filter(project=project))
    assert (
        human_graded_item_count(project=project, split=Split.TRAIN)
        == (counted_figures(project=project)["graded_train_items"])
    )


def test_a_deleted_project_takes_its_tally_with_it():
    project = Project.objects.create(slug="gone", name="Gone", strategy="full")
    import_items(project, queries=2, per_modality=2)
    create_page_tasks(project=project)
    project.delete()
    assert not ProjectTally.objects.filter(project_id=project.pk).exists()
    assert not TallyShard.objects.filter(project_id=project.pk).exists()


def test_the_migration_counts_the_projects_that_exist_already(make_user):
    project = Project.objects.create(slug="old", name="Old", strategy="full", page_size=3)
    import_items(project, queries=3, per_modality=2)
    create_page_tasks(project=project)
    judge(project, make_user("ann", role=Role.ANNOTATOR, project=project))
    expected = counted_figures(project=project)
    migration = importlib.import_module("labeling.migrations.0015_project_tally")

    ProjectTally.objects.all().delete()
    TallyShard.objects.all().delete()
    with connection.cursor() as cursor:
        cursor.execute(migration.backfill(connection.vendor))

    assert tallied_figures(project=project) == expected


def test_recount_repairs_a_tally_that_drifted(make_user):
    project = Project.objects.create(slug="drift", name="Drift", strategy="full", page_size=3)
    import_items(project, queries=2, per_modality=2)
    create_page_tasks(project=project)
    expected = counted_figures(project=project)
    ProjectTally.objects.filter(project=project).update(items=F("items") + 5, grade_units=-1)

    out = io.StringIO()
    call_command("recount_tallies", "drift", stdout=out)

    assert tallied_figures(project=project) == expected
    assert not TallyShard.objects.filter(project_id=project.pk).exists()  # folded into the row
    drifted = f"'items': ({expected['items'] + 5}, {expected['items']})"
    assert "recounted" in out.getvalue() and drifted in out.getvalue()
    call_command("recount_tallies", stdout=out)
    assert out.getvalue().endswith("drift: right\n")


@pytest.mark.postgres
def test_submits_to_one_project_do_not_wait_for_each_other_on_its_tally(make_user):
    """Two sessions each store a judgment in the same project without committing: the second
    does not wait for the first (with one tally row it waited for the first to commit)."""
    project = Project.objects.create(slug="busy", name="Busy", strategy="full", page_size=2)
    import_items(project, queries=2, per_modality=2)
    create_page_tasks(project=project)
    first, second = [make_user(f"ann{i}", role=Role.ANNOTATOR, project=project) for i in (1, 2)]
    for annotator in (first, second):
        assignment.claim_next_task(annotator=annotator, project=project)

    def submit(annotator):
        task = Task.objects.get(assignee=annotator)
        assignment.submit_judgment(
            task=assignment.task_for(user=annotator, task_id=task.pk),
            annotator=annotator,
            client_uuid=uuid.uuid4(),
            grades={item_id: 1 for item_id in page_item_ids(task)},
        )

    held, finish = [], threading.Event()

    def hold():  # the first submit, left uncommitted until the second is stored
        try:
            with transaction.atomic():
                submit(first)
                held.append(connection.connection.info.backend_pid % SHARDS)
                finish.wait(10)
        finally:
            connection.close()

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        while not held and holder.is_alive():
            time.sleep(0.01)
        connection.ensure_connection()
        while connection.connection.info.backend_pid % SHARDS == held[0]:
            connection.close()  # a session whose shard differs from the holder's
            connection.ensure_connection()
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '2s'")
            submit(second)  # with one tally row: "canceling statement due to lock timeout"
    finally:
        finish.set()
        holder.join()
    assert Judgment.objects.filter(project=project).count() == 2
    assert_tally_counts(project)


@pytest.mark.django_db
def test_every_tally_trigger_outlives_the_migrations():
    """Django adds a column with a default to a SQLite table by rebuilding the table, and the
    rebuild drops the table's triggers: a migration that adds one to a counted table must not."""
    migration = importlib.import_module("labeling.migrations.0015_project_tally")
    project = Project.objects.create(slug="after-migrations", name="After the migrations")

    assert ProjectTally.objects.filter(project=project).exists()
    if connection.vendor == "sqlite":
        with connection.cursor() as cursor:
            cursor.execute("SELECT name FROM sqlite_master WHERE type = 'trigger'")
            present = {name for (name,) in cursor.fetchall()}
        created = [s.split()[2] for s in migration.sqlite_triggers()[0]]
        assert len(created) > 10 and set(created) <= present
