"""Pages and the claim at scale: each page's SQL statements do not grow with the project, the
project counts are right, and twenty annotators claiming at once never share a task."""

from __future__ import annotations

import threading
import uuid

import pytest
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from labeling import assignment
from labeling.models import Judgment, Project, Role, Task, TaskStatus
from labeling.selectors import budget_status, projects_for
from web.management.commands.bench_pages import pages_to_time

from .task_factories import make_item, make_page_task, make_query, page_item_ids

# The most SQL statements any page may take (the dashboard is the largest today).
MAX_STATEMENTS = 30


def judge_some(project: Project, annotators, tasks: int) -> None:
    """Each annotator claims and grades tasks in turn, `tasks` in all."""
    for i in range(tasks):
        annotator = annotators[i % len(annotators)]
        task = assignment.claim_next_task(annotator=annotator, project=project)
        assignment.submit_judgment(
            task=task, annotator=annotator, client_uuid=uuid.uuid4(),
            grades=dict.fromkeys(page_item_ids(task), 1), duration_ms=900,
        )  # fmt: skip


def statements_per_page(project: Project, clients: dict) -> dict[str, int]:
    counts = {}
    for name, method, path, who in pages_to_time(project.slug):
        call = getattr(clients[who], method)
        call(path)  # the first call may lease a task; the second is the steady state
        with CaptureQueriesContext(connection) as queries:
            response = call(path)
        assert response.status_code == 200, (name, response.status_code)
        counts[name] = len(queries)
    return counts


@pytest.mark.django_db
def test_no_page_takes_more_statements_as_the_project_grows(project, make_user):
    users = {
        role: make_user(role, role=role, project=project)
        for role in ("lead", "annotator", "scientist")
    }
    others = [make_user(f"a{i}", role=Role.ANNOTATOR, project=project) for i in range(3)]
    clients = {}
    for role, user in users.items():
        clients[role] = Client()
        clients[role].force_login(user)
    for _ in range(3):
        make_page_task(project, items=4)
    judge_some(project, others, 1)
    small = statements_per_page(project, clients)

    for _ in range(12):
        make_page_task(project, items=6)
    judge_some(project, others, 8)
    large = statements_per_page(project, clients)

    assert large == small
    assert max(large.values()) <= MAX_STATEMENTS, large


@pytest.mark.django_db
def test_home_page_statements_are_bounded(
    project, make_user, client, django_assert_max_num_queries
):
    lead = make_user("lead", role=Role.LEAD, project=project)
    for _ in range(5):
        make_page_task(project, items=5)
    client.force_login(lead)
    with django_assert_max_num_queries(10):
        assert client.get("/").status_code == 200


@pytest.mark.django_db
def test_project_counts_are_counted_apart_not_multiplied(project, make_user, client):
    lead = make_user("lead", role=Role.LEAD, project=project)
    other = Project.objects.create(slug="other", name="Other")
    for n_items in (4, 4, 2):
        query = make_query(project)
        for _ in range(n_items):
            make_item(project, query)
    make_query(project)  # a query without items still counts
    make_item(other, make_query(other))  # another project's rows never count
    client.force_login(lead)

    detail = client.get(f"/api/projects/{project.slug}/").json()
    listed = client.get("/api/projects/").json()["results"]

    assert (detail["query_count"], detail["item_count"]) == (4, 10)
    assert [(p["slug"], p["query_count"], p["item_count"]) for p in listed] == [("p", 4, 10)]
    assert client.get("/").status_code == 200
    counted = projects_for(user=lead).get()
    assert (counted.query_count, counted.item_count) == (4, 10)


@pytest.mark.django_db
def test_budget_reserves_what_pending_tasks_still_need(project, make_user):
    annotator = make_user("ann", role=Role.ANNOTATOR, project=project)
    other = make_user("bob", role=Role.ANNOTATOR, project=project)
    twice = make_page_task(project, items=3, judgments_required=2, priority=5)
    make_page_task(project, items=4)
    done = make_page_task(project, items=2)
    Task.objects.filter(pk=done.pk).update(status=TaskStatus.DONE)
    judge_some(project, [annotator], 1)  # one of the two judgments `twice` needs

    status = budget_status(project=project)

    spent = project.grade_cost * 3
    assert status["spent"] == spent
    assert status["reserved"] == project.grade_cost * (3 + 4)
    assert status["left"] == project.budget - spent - status["reserved"]
    assert assignment.claim_next_task(annotator=other, project=project) == twice


@pytest.mark.django_db
def test_remaining_tasks_are_counted_up_to_the_cap(project, make_user, monkeypatch):
    annotator = make_user("ann", role=Role.ANNOTATOR, project=project)
    for _ in range(4):
        make_page_task(project, items=2)
    monkeypatch.setattr(assignment, "REMAINING_COUNT_CAP", 3)

    progress = assignment.annotator_progress(annotator=annotator, project=project)

    assert progress.tasks_remaining == 3 and progress.is_remaining_capped
    assert progress.remaining_label == "3+"
    monkeypatch.setattr(assignment, "REMAINING_COUNT_CAP", 10)
    exact = assignment.annotator_progress(annotator=annotator, project=project)
    assert (exact.tasks_remaining, exact.is_remaining_capped) == (4, False)


@pytest.mark.django_db
def test_open_tasks_are_counted_in_the_head_of_the_queue(project, make_user, monkeypatch):
    """The count looks at the open queue's first OPEN_HEAD tasks: when those are all it could
    look at, it says "at least"."""
    annotator = make_user("ann", role=Role.ANNOTATOR, project=project)
    for _ in range(5):
        make_page_task(project, items=1)
    monkeypatch.setattr(assignment, "OPEN_HEAD", 2)
    monkeypatch.setattr(assignment._PROGRESS, "_compiled", {})  # compiled again with the head

    progress = assignment.annotator_progress(annotator=annotator, project=project)

    assert (progress.tasks_remaining, progress.remaining_label) == (2, "2+")
    monkeypatch.setattr(assignment, "OPEN_HEAD", 10)
    monkeypatch.setattr(assignment._PROGRESS, "_compiled", {})
    exact = assignment.annotator_progress(annotator=annotator, project=project)
    assert (exact.tasks_remaining, exact.is_remaining_capped) == (5, False)


# --- twenty annotators at once --------------------------------------------------------------


def claim_and_judge_until_empty(project: Project, annotators) -> tuple[list, list]:
    """Each annotator (own thread) claims and grades until no work is left; all start together."""
    barrier = threading.Barrier(len(annotators))
    claimed: list[tuple[int, int]] = []
    errors: list[BaseException] = []
    lock = threading.Lock()

    def work(annotator):
        try:
            barrier.wait(timeout=30)
            while True:
                task = assignment.claim_next_task(annotator=annotator, project=project)
                if task is None:
                    return
                with lock:
                    claimed.append((task.pk, annotator.pk))
                assignment.submit_judgment(
                    task=task, annotator=annotator, client_uuid=uuid.uuid4(),
                    grades=dict.fromkeys(page_item_ids(task), 2), duration_ms=500,
                )  # fmt: skip
        except BaseException as exc:  # reported on the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=work, args=(a,)) for a in annotators]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    return claimed, errors


def assert_twenty_claimers_never_share_a_task(project, make_user):
    # Strategy full: a judgment starts no search, so the threads only claim and submit.
    Project.objects.filter(pk=project.pk).update(strategy="full")
    project.refresh_from_db()
    annotators = [make_user(f"c{i}", role=Role.ANNOTATOR, project=project) for i in range(20)]
    tasks = {make_page_task(project, items=2, priority=i % 3).pk for i in range(40)}

    claimed, errors = claim_and_judge_until_empty(project, annotators)

    assert errors == []
    task_ids = [task_id for task_id, _ in claimed]
    assert sorted(task_ids) == sorted(tasks)  # every task handed out once, none twice
    assert Judgment.objects.filter(project=project).count() == len(tasks)
    assert not Task.objects.filter(project=project).exclude(status=TaskStatus.DONE).exists()


@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_claimers_never_share_a_task_on_sqlite(project, make_user):
    if connection.vendor != "sqlite":
        pytest.skip("the SQLite variant (compare-and-set claim, IMMEDIATE transactions)")
    assert_twenty_claimers_never_share_a_task(project, make_user)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_twenty_concurrent_claimers_never_share_a_task_on_postgresql(project, make_user):
    assert_twenty_claimers_never_share_a_task(project, make_user)


# --- a locked SQLite database is a 503 with Retry-After, never a 500 ---------------------------


@pytest.mark.django_db(transaction=True)
def test_a_request_that_cannot_get_the_write_lock_is_a_503_with_retry_after(
    project, make_user, client
):
    if connection.vendor != "sqlite":
        pytest.skip("SQLite's file lock")
    import sqlite3

    annotator = make_user("ann", role=Role.ANNOTATOR, project=project)
    lead = Client()
    lead.force_login(make_user("lead", role=Role.LEAD, project=project))
    make_page_task(project, items=2)
    client.force_login(annotator)
    connection.close()
    connection.settings_dict["OPTIONS"] = {**connection.settings_dict["OPTIONS"], "timeout": 0.2}
    holder = sqlite3.connect(connection.settings_dict["NAME"], isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock
    try:
        api = client.post(f"/api/projects/{project.slug}/tasks/next/")
        page = lead.post(f"/projects/{project.slug}/settings/", {"name": "Renamed"})
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        connection.close()
        connection.settings_dict["OPTIONS"] = {
            **connection.settings_dict["OPTIONS"],
            "timeout": 10,
        }

    assert api.status_code == 503 and api["Retry-After"] == "2"
    assert api.json()["message"].startswith("The database is busy")
    assert page.status_code == 503 and page["Retry-After"] == "2"
    assert page.content.decode().startswith("The database is busy")  # not the debug page
    after = client.post(f"/api/projects/{project.slug}/tasks/next/")
    assert after.status_code == 200 and after.json()["task"] is not None


@pytest.mark.parametrize(
    ("message", "busy"),
    [
        ("database is locked", True),
        ("deadlock detected\nDETAIL:  Process 922 waits for ShareLock on transaction 1", True),
        ("could not serialize access due to concurrent update", True),
        ("canceling statement due to lock timeout", True),
        ("no such table: labeling_task", False),
    ],
)
def test_what_a_retry_resolves_is_a_503_not_a_500(message, busy):
    from django.db import OperationalError

    from web.api_errors import is_database_busy

    assert is_database_busy(OperationalError(message)) is busy
