"""Task handout and judging (labeling/assignment.py): leases, idempotent submits, skips, progress."""

from __future__ import annotations

import random
import threading
import uuid
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db import IntegrityError, OperationalError, connection, connections
from django.utils import timezone

from labeling import assignment
from labeling.errors import Conflict, PagewiseError
from labeling.models import (
    CompareOutcome,
    ItemGrade,
    Judgment,
    Role,
    Task,
    TaskKind,
    TaskSkip,
    TaskStatus,
)
from labeling.signals import judgment_recorded

from .task_factories import make_compare_task, make_page_task, page_item_ids
from .test_prepared import rendered


@pytest.fixture
def annotator(project, make_user):
    return make_user("ann", role=Role.ANNOTATOR, project=project)


@pytest.fixture
def other_annotator(project, make_user):
    return make_user("bob", role=Role.ANNOTATOR, project=project)


def all_graded(task: Task, grade: int = 2) -> dict[int, int]:
    return dict.fromkeys(page_item_ids(task), grade)


def submit_page(task, annotator, *, client_uuid=None, grade: int = 2):
    return assignment.submit_judgment(
        task=task, annotator=annotator, client_uuid=client_uuid or uuid.uuid4(),
        grades=all_graded(task, grade), duration_ms=1200,
    )  # fmt: skip


# --- claiming -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_the_next_task_comes_with_its_progress_and_its_subject(project, annotator, make_user):
    """On PostgreSQL a page's subject is read in the claim's round trip (by the lease the claim
    wrote), a comparison's after it: either way it is the task's own."""
    others_page = make_page_task(project, items=3, priority=5)
    pair = make_compare_task(project, priority=1)
    other = make_user("other-annotator", role=Role.ANNOTATOR, project=project)
    assert assignment.claim_next_task(annotator=other, project=project).pk == others_page.pk
    page = make_page_task(project, items=2, priority=3)

    for _ in range(2):  # claimed, then held: the lease renewed, the same page shown
        task, progress, subject = assignment.claim_next_task_with_progress(
            annotator=annotator, project=project
        )
        assert task.pk == page.pk and progress.tasks_remaining == 2
        assert [item.pk for item, _ in subject.items] == page_item_ids(page)
        assert subject == assignment.task_subject(task=task)
    submit_page(task, annotator)

    task, progress, subject = assignment.claim_next_task_with_progress(
        annotator=annotator, project=project
    )
    assert task.pk == pair.pk and subject == assignment.task_subject(task=task)
    assert {item.pk for item, _ in subject.items} == {pair.anchor_id, pair.other_id}
    assignment.submit_judgment(
        task=task, annotator=annotator, client_uuid=uuid.uuid4(), outcome="equal"
    )
    assert assignment.claim_next_task_with_progress(annotator=annotator, project=project)[::2] == (
        None,
        None,
    )


@pytest.mark.django_db
def test_claim_hands_out_the_highest_priority_task_first(project, annotator):
    make_page_task(project, priority=1)
    best = make_page_task(project, priority=5)
    make_page_task(project, priority=5)  # same priority, higher id: later

    assert assignment.claim_next_task(annotator=annotator, project=project) == best


@pytest.mark.django_db
def test_claim_leases_the_task_to_the_annotator_for_the_lease_time(project, annotator):
    make_page_task(project)
    before = timezone.now()

    task = assignment.claim_next_task(annotator=annotator, project=project, lease_seconds=600)

    task.refresh_from_db()
    assert task.status == TaskStatus.LEASED and task.assignee == annotator
    assert (
        before + timedelta(seconds=599)
        < task.lease_expires_at
        <= timezone.now() + timedelta(seconds=600)
    )


@pytest.mark.django_db
def test_annotator_who_holds_a_lease_gets_the_same_task_back(project, annotator):
    make_page_task(project)
    make_page_task(project)

    first = assignment.claim_next_task(annotator=annotator, project=project)
    again = assignment.claim_next_task(annotator=annotator, project=project)

    assert again == first
    assert Task.objects.filter(status=TaskStatus.LEASED).count() == 1


@pytest.mark.django_db
def test_two_annotators_get_different_tasks(project, annotator, other_annotator):
    make_page_task(project)
    make_page_task(project)

    mine = assignment.claim_next_task(annotator=annotator, project=project)
    theirs = assignment.claim_next_task(annotator=other_annotator, project=project)

    assert mine != theirs and theirs is not None


@pytest.mark.django_db
def test_no_task_is_handed_out_while_every_task_is_leased_or_done(
    project, annotator, other_annotator
):
    open_task = make_page_task(project)
    done = make_page_task(project, priority=9)
    Task.objects.filter(pk=done.pk).update(status=TaskStatus.DONE)
    assert assignment.claim_next_task(annotator=annotator, project=project) == open_task

    assert assignment.claim_next_task(annotator=other_annotator, project=project) is None


@pytest.mark.django_db
def test_expired_lease_returns_the_task_to_the_pool(project, annotator, other_annotator):
    task = make_page_task(project)
    assignment.claim_next_task(annotator=annotator, project=project)
    Task.objects.filter(pk=task.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))

    taken = assignment.claim_next_task(annotator=other_annotator, project=project)

    assert taken == task
    taken.refresh_from_db()
    assert taken.assignee == other_annotator and taken.lease_expires_at > timezone.now()


@pytest.mark.django_db
def test_annotator_never_gets_a_task_they_already_judged(project, annotator, other_annotator):
    task = make_page_task(project, judgments_required=2)
    assignment.claim_next_task(annotator=annotator, project=project)
    submit_page(task, annotator)

    assert assignment.claim_next_task(annotator=annotator, project=project) is None
    assert assignment.claim_next_task(annotator=other_annotator, project=project) == task


@pytest.mark.django_db
def test_task_needing_two_judgments_stays_claimable_until_it_has_both(
    project, annotator, other_annotator
):
    task = make_page_task(project, judgments_required=2)
    assignment.claim_next_task(annotator=annotator, project=project)
    submit_page(task, annotator)
    task.refresh_from_db()
    assert task.status == TaskStatus.OPEN and task.assignee is None

    assert assignment.claim_next_task(annotator=other_annotator, project=project) == task
    submit_page(task, other_annotator, grade=3)

    task.refresh_from_db()
    assert task.status == TaskStatus.DONE
    assert task.judgments.count() == 2


@pytest.mark.django_db
def test_excluded_annotator_never_gets_the_task(project, annotator, other_annotator):
    task = make_compare_task(project)
    task.excluded_annotators.add(annotator)

    assert assignment.claim_next_task(annotator=annotator, project=project) is None
    assert assignment.claim_next_task(annotator=other_annotator, project=project) == task


@pytest.mark.django_db
def test_compare_and_set_never_takes_a_task_another_annotator_just_leased(
    project, annotator, other_annotator, monkeypatch
):
    if connection.vendor == "postgresql":
        pytest.skip("PostgreSQL claims with one UPDATE ... FOR UPDATE SKIP LOCKED statement")
    task = make_page_task(project)
    assignment.claim_next_task(annotator=annotator, project=project)
    # A stale read: the candidate query still sees the task as free, as a racing reader would.
    monkeypatch.setattr(
        assignment, "claimable_tasks", lambda **kwargs: Task.objects.filter(pk=task.pk)
    )

    assert assignment.claim_next_task(annotator=other_annotator, project=project) is None
    task.refresh_from_db()
    assert task.assignee == annotator


# --- skipping -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_skipping_is_recorded_and_releases_the_task_to_others(project, annotator, other_annotator):
    skipped = make_page_task(project, priority=9)
    later = make_page_task(project)
    assert assignment.claim_next_task(annotator=annotator, project=project) == skipped

    assignment.skip_task(task=skipped, annotator=annotator)

    assert TaskSkip.objects.filter(task=skipped, annotator=annotator).count() == 1
    skipped.refresh_from_db()
    assert skipped.status == TaskStatus.OPEN and skipped.assignee is None
    assert assignment.claim_next_task(annotator=annotator, project=project) == later
    assert assignment.claim_next_task(annotator=other_annotator, project=project) == skipped


@pytest.mark.django_db
def test_skipping_twice_records_one_skip(project, annotator):
    task = make_page_task(project)
    assignment.skip_task(task=task, annotator=annotator)
    assignment.skip_task(task=task, annotator=annotator)

    assert TaskSkip.objects.filter(task=task).count() == 1


@pytest.mark.django_db
def test_skipping_another_annotators_lease_is_refused_and_does_not_release_it(
    project, annotator, other_annotator
):
    task = make_page_task(project)
    assignment.claim_next_task(annotator=annotator, project=project)

    with pytest.raises(Conflict, match="leased to another annotator"):
        assignment.skip_task(task=task, annotator=other_annotator)

    task.refresh_from_db()
    assert task.status == TaskStatus.LEASED and task.assignee == annotator
    assert not TaskSkip.objects.filter(task=task).exists()


# --- submitting -----------------------------------------------------------------------------


@pytest.mark.django_db
def test_judgment_submitted_twice_with_the_same_uuid_is_stored_once(project, annotator):
    task = make_page_task(project, items=4)
    assignment.claim_next_task(annotator=annotator, project=project)
    shared = uuid.uuid4()

    first, created = submit_page(task, annotator, client_uuid=shared)
    again, created_again = submit_page(task, annotator, client_uuid=str(shared))

    assert (created, created_again) == (True, False)
    assert again.pk == first.pk
    assert Judgment.objects.count() == 1 and ItemGrade.objects.count() == 4
    task.refresh_from_db()
    assert task.status == TaskStatus.DONE


@pytest.mark.django_db
def test_racing_duplicate_that_hits_the_unique_constraint_returns_the_stored_judgment(
    project, annotator, monkeypatch
):
    task = make_page_task(project)
    assignment.claim_next_task(annotator=annotator, project=project)
    shared = uuid.uuid4()
    # The other request committed between our look-ups and our insert.
    stored = Judgment.objects.create(
        task=task, project=project, annotator=annotator, client_uuid=shared,
        kind=TaskKind.GRADE_PAGE, cost=Decimal("0.3"),
    )  # fmt: skip
    real_lookup = assignment._stored_judgment
    calls = []

    def counted(**kwargs):
        calls.append(1)
        return real_lookup(**kwargs)

    monkeypatch.setattr(assignment, "_stored_judgment", counted)

    judgment, created = submit_page(task, annotator, client_uuid=shared)

    # The task is still leased to us, so nothing was looked up under its lock: the INSERT hit the
    # unique constraint, and the look-up after it found the judgment.
    assert (judgment.pk, created) == (stored.pk, False) and len(calls) == 1
    assert Judgment.objects.count() == 1 and ItemGrade.objects.count() == 0


@pytest.mark.django_db
def test_uuid_of_another_judgment_is_refused(project, annotator, other_annotator):
    first = make_page_task(project)
    second = make_page_task(project)
    shared = uuid.uuid4()
    assignment.claim_next_task(annotator=annotator, project=project)
    submit_page(first, annotator, client_uuid=shared)
    assignment.claim_next_task(annotator=other_annotator, project=project)

    with pytest.raises(Conflict, match="client_uuid"):
        submit_page(second, other_annotator, client_uuid=shared)
    assert Judgment.objects.count() == 1


@pytest.mark.django_db
@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda grades, ids: grades.pop(ids[0]), "missing"),
        (lambda grades, ids: grades.update({999999: 1}), "not an item of this page"),
        (lambda grades, ids: grades.update({ids[1]: 5}), "from 0 to 4"),
        (lambda grades, ids: grades.update({ids[1]: -1}), "from 0 to 4"),
        (lambda grades, ids: grades.update({ids[1]: True}), "from 0 to 4"),
        (lambda grades, ids: grades.update({"x": 1}), "not an item id"),
    ],
    ids=["missing item", "foreign item", "above max", "negative", "bool", "bad key"],
)
def test_grades_must_cover_exactly_the_pages_items_within_the_scale(
    project, annotator, change, problem
):
    task = make_page_task(project, items=3)
    assignment.claim_next_task(annotator=annotator, project=project)
    grades = all_graded(task)
    change(grades, page_item_ids(task))

    with pytest.raises(PagewiseError) as error:
        assignment.submit_judgment(
            task=task, annotator=annotator, client_uuid=uuid.uuid4(), grades=grades
        )

    assert problem in str(error.value.fields)
    assert Judgment.objects.count() == 0
    task.refresh_from_db()
    assert task.status == TaskStatus.LEASED


@pytest.mark.django_db
def test_page_judgment_costs_the_grade_cost_times_the_items_graded(project, annotator):
    project.grade_cost = Decimal("0.25")
    project.save()
    task = make_page_task(project, items=3)
    assignment.claim_next_task(annotator=annotator, project=project)

    judgment, _ = submit_page(task, annotator)

    assert judgment.cost == Decimal("0.75")
    assert dict(judgment.grades.values_list("item_id", "grade")) == all_graded(task)


@pytest.mark.django_db
def test_comparison_costs_the_compare_cost_and_stores_the_outcome(project, annotator):
    task = make_compare_task(project)
    assignment.claim_next_task(annotator=annotator, project=project)

    judgment, created = assignment.submit_judgment(
        task=task, annotator=annotator, client_uuid=uuid.uuid4(),
        outcome=CompareOutcome.ANCHOR_BETTER, duration_ms=900,
    )  # fmt: skip

    assert created and judgment.cost == project.compare_cost
    assert judgment.outcome == CompareOutcome.ANCHOR_BETTER and judgment.grades.count() == 0


@pytest.mark.django_db
def test_comparison_needs_a_valid_outcome_and_no_grades(project, annotator):
    task = make_compare_task(project)
    assignment.claim_next_task(annotator=annotator, project=project)

    for kwargs in ({"outcome": "left"}, {"outcome": None}, {"grades": {task.anchor_id: 1}}):
        with pytest.raises(PagewiseError):
            assignment.submit_judgment(
                task=task, annotator=annotator, client_uuid=uuid.uuid4(), **kwargs
            )
    assert Judgment.objects.count() == 0


@pytest.mark.django_db
@pytest.mark.parametrize("seed", range(6))
def test_screen_choice_is_turned_back_into_the_anchors_side(project, seed):
    task = make_compare_task(project)
    sides = assignment.deal_sides(task=task, rng=random.Random(seed))
    anchor_on_left = sides.left_id == task.anchor_id
    assert {sides.left_id, sides.right_id} == {task.anchor_id, task.other_id}

    def outcome(choice):
        return assignment.outcome_from_choice(task=task, choice=choice, sides_token=sides.token)

    assert outcome("left") == (
        CompareOutcome.ANCHOR_BETTER if anchor_on_left else CompareOutcome.OTHER_BETTER
    )
    assert outcome("right") == (
        CompareOutcome.OTHER_BETTER if anchor_on_left else CompareOutcome.ANCHOR_BETTER
    )
    assert outcome("equal") == CompareOutcome.EQUAL


@pytest.mark.django_db
def test_sides_token_of_another_task_or_forged_is_refused(project):
    task = make_compare_task(project)
    other_task = make_compare_task(project)
    foreign = assignment.deal_sides(task=other_task).token

    for token in (foreign, "forged", assignment.deal_sides(task=task).token + "x"):
        with pytest.raises(PagewiseError, match="sides token"):
            assignment.outcome_from_choice(task=task, choice="left", sides_token=token)


@pytest.mark.django_db
def test_submit_without_a_lease_is_refused(project, annotator):
    task = make_page_task(project)

    with pytest.raises(Conflict, match="not leased to you"):
        submit_page(task, annotator)


@pytest.mark.django_db
def test_submit_after_the_lease_expired_is_accepted_while_nobody_else_took_the_task(
    project, annotator
):
    task = make_page_task(project)
    assignment.claim_next_task(annotator=annotator, project=project)
    Task.objects.filter(pk=task.pk).update(lease_expires_at=timezone.now() - timedelta(hours=1))

    _, created = submit_page(task, annotator)

    assert created


@pytest.mark.django_db
def test_submit_after_another_annotator_took_the_expired_task_is_refused(
    project, annotator, other_annotator
):
    task = make_page_task(project)
    assignment.claim_next_task(annotator=annotator, project=project)
    Task.objects.filter(pk=task.pk).update(lease_expires_at=timezone.now() - timedelta(seconds=1))
    assignment.claim_next_task(annotator=other_annotator, project=project)

    with pytest.raises(Conflict, match="leased to another annotator"):
        submit_page(task, annotator)
    assert Judgment.objects.count() == 0


@pytest.mark.django_db
def test_judgment_recorded_is_sent_after_commit_once_per_stored_judgment(
    project, annotator, django_capture_on_commit_callbacks
):
    received = []

    def receiver(sender, judgment_id, project_id, **kwargs):
        received.append((judgment_id, project_id))

    judgment_recorded.connect(receiver)
    try:
        task = make_page_task(project)
        assignment.claim_next_task(annotator=annotator, project=project)
        shared = uuid.uuid4()
        with django_capture_on_commit_callbacks(execute=True):
            judgment, _ = submit_page(task, annotator, client_uuid=shared)
            assert received == []  # not before the commit
        with django_capture_on_commit_callbacks(execute=True):
            submit_page(task, annotator, client_uuid=shared)  # a replay
    finally:
        judgment_recorded.disconnect(receiver)

    assert received == [(judgment.pk, project.pk)]


@pytest.mark.django_db
def test_failing_receiver_does_not_fail_the_submit(
    project, annotator, django_capture_on_commit_callbacks, caplog
):
    def broken(sender, **kwargs):
        raise ConnectionError("broker down")

    judgment_recorded.connect(broken)
    try:
        task = make_page_task(project)
        assignment.claim_next_task(annotator=annotator, project=project)
        with django_capture_on_commit_callbacks(execute=True):
            _, created = submit_page(task, annotator)
    finally:
        judgment_recorded.disconnect(broken)

    assert created
    assert "broker down" in caplog.text


# --- progress -------------------------------------------------------------------------------


@pytest.mark.django_db
def test_annotator_progress_counts_judgments_remaining_tasks_and_spend(project, annotator):
    old = make_page_task(project, items=2)
    today = make_page_task(project, items=3)
    make_page_task(project)
    make_page_task(project)
    for task in (old, today):
        assert assignment.claim_next_task(annotator=annotator, project=project) == task
        submit_page(task, annotator)
    Judgment.objects.filter(task=old).update(created_at=timezone.now() - timedelta(days=2))
    assignment.claim_next_task(annotator=annotator, project=project)  # a held lease still counts

    progress = assignment.annotator_progress(annotator=annotator, project=project)

    assert progress.judgments_today == 1
    assert progress.judgments_total == 2
    assert progress.tasks_remaining == 2
    assert progress.spend == project.grade_cost * 5
    assert progress.percent_done == 50


# --- concurrency (real PostgreSQL, real threads) ----------------------------------------------


def run_at_the_same_moment(work, arguments: list) -> list:
    """Run work(argument) in one thread per argument, all released together by a barrier."""
    barrier = threading.Barrier(len(arguments))
    results: list = [None] * len(arguments)
    errors: list = []

    def run(index, argument):
        try:
            barrier.wait(timeout=10)
            results[index] = work(argument)
        except Exception as exc:  # reported below, on the main thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, a)) for i, a in enumerate(arguments)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not errors, errors
    return results


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_eight_annotators_asking_at_the_same_moment_never_get_the_same_task(project, make_user):
    annotators = [make_user(f"a{i}", role=Role.ANNOTATOR, project=project) for i in range(8)]
    for _ in range(3):  # a few rounds, each from a fresh pool
        Task.objects.filter(project=project).update(status=TaskStatus.DONE, assignee=None,
                                                    lease_expires_at=None)  # fmt: skip
        for _ in range(12):
            make_page_task(project, items=2)

        claimed = run_at_the_same_moment(
            lambda user: assignment.claim_next_task(annotator=user, project=project), annotators
        )

        ids = [task.pk for task in claimed if task is not None]
        assert len(ids) == 8 and len(set(ids)) == 8
        leased = Task.objects.filter(status=TaskStatus.LEASED)
        assert sorted(leased.values_list("pk", flat=True)) == sorted(ids)
        assert leased.values("assignee").distinct().count() == 8


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_more_annotators_than_tasks_each_task_goes_to_exactly_one(project, make_user):
    annotators = [make_user(f"a{i}", role=Role.ANNOTATOR, project=project) for i in range(8)]
    tasks = {make_page_task(project).pk for _ in range(3)}

    claimed = run_at_the_same_moment(
        lambda user: assignment.claim_next_task(annotator=user, project=project), annotators
    )

    ids = [task.pk for task in claimed if task is not None]
    assert sorted(ids) == sorted(tasks)


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_one_annotator_asking_six_times_at_once_holds_one_task(project, annotator):
    """A double click or several tabs: the annotator's lock makes the claims take turns, so the
    later ones find the task the first leased and renew it."""
    for _ in range(8):
        make_page_task(project)

    claimed = run_at_the_same_moment(
        lambda _: assignment.claim_next_task(annotator=annotator, project=project), range(6)
    )

    assert len({task.pk for task in claimed}) == 1
    assert Task.objects.filter(status=TaskStatus.LEASED, assignee=annotator).count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_claim_that_times_out_is_rolled_back_and_leaves_the_connection_usable(project, annotator):
    """The claim's BEGIN, lock, claim and COMMIT go to PostgreSQL together: when the lock times
    out the server skips the rest, and the claim rolls its transaction back itself."""
    task = make_page_task(project)
    holder = connections.create_connection("default")
    try:
        with holder.cursor() as cursor:
            holder.set_autocommit(False)
            cursor.execute(
                "SELECT 1 FROM auth_user WHERE id = %s FOR NO KEY UPDATE", [annotator.pk]
            )
            with connection.cursor() as ours:
                ours.execute("SET lock_timeout = '50ms'")
            with pytest.raises(OperationalError, match="lock timeout"):
                assignment.claim_next_task(annotator=annotator, project=project)
            assert connection.get_autocommit() and not connection.connection.info.transaction_status
        holder.rollback()
    finally:
        holder.close()
        with connection.cursor() as ours:
            ours.execute("RESET lock_timeout")

    assert Task.objects.get(pk=task.pk).status == TaskStatus.OPEN
    assert assignment.claim_next_task(annotator=annotator, project=project).pk == task.pk


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_submit_whose_writes_fail_stores_nothing_and_leaves_the_connection_usable(
    project, annotator
):
    """A submit's judgment, grades, release and COMMIT go to PostgreSQL together, after the locked
    read: when a write fails the server skips the rest, and the submit rolls its transaction back."""
    task = make_page_task(project, items=2)
    assignment.claim_next_task(annotator=annotator, project=project)
    with connection.cursor() as cursor:
        cursor.execute(
            "ALTER TABLE labeling_itemgrade ADD CONSTRAINT test_no_grade_4 CHECK (grade < 4)"
        )
    try:
        with pytest.raises(IntegrityError, match="test_no_grade_4"):
            submit_page(task, annotator, grade=4)
        assert connection.get_autocommit() and not connection.connection.info.transaction_status
    finally:
        with connection.cursor() as cursor:
            cursor.execute("ALTER TABLE labeling_itemgrade DROP CONSTRAINT test_no_grade_4")

    assert not Judgment.objects.exists() and not ItemGrade.objects.exists()
    task.refresh_from_db()
    assert task.status == TaskStatus.LEASED and task.assignee_id == annotator.pk
    judgment, created = submit_page(task, annotator, grade=4)
    assert created and sorted(judgment.grades.values_list("grade", flat=True)) == [4, 4]
    task.refresh_from_db()
    assert task.status == TaskStatus.DONE


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_refused_submit_commits_its_reads_and_keeps_the_prepared_statements(project, annotator):
    """A refusal found under the task's lock (here, grades for items not on the page) writes
    nothing: the transaction ends with COMMIT, since a ROLLBACK makes psycopg forget every
    statement it prepared on the connection, and re-preparing costs each one five slow runs."""
    task = make_page_task(project, items=2)
    assignment.claim_next_task(annotator=annotator, project=project)
    for _ in range(6):  # a statement is prepared on its fifth run
        with pytest.raises(PagewiseError, match="Grade every item"):
            assignment.submit_judgment(
                task=task, annotator=annotator, client_uuid=uuid.uuid4(), grades={}
            )
    prepared = dict(connection.connection._prepared._names)
    assert prepared

    with pytest.raises(PagewiseError, match="Grade every item"):
        assignment.submit_judgment(
            task=task, annotator=annotator, client_uuid=uuid.uuid4(), grades={}
        )

    assert connection.get_autocommit() and not connection.connection.info.transaction_status
    assert dict(connection.connection._prepared._names).keys() >= prepared.keys()
    task.refresh_from_db()
    assert task.status == TaskStatus.LEASED and not Judgment.objects.exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_the_same_submit_sent_twice_at_the_same_moment_is_stored_once(project, annotator):
    task = make_page_task(project, items=3)
    assignment.claim_next_task(annotator=annotator, project=project)
    shared = uuid.uuid4()

    results = run_at_the_same_moment(
        lambda _: submit_page(task, annotator, client_uuid=shared), [0, 1, 2, 3]
    )

    assert sorted(created for _, created in results) == [False, False, False, True]
    assert len({judgment.pk for judgment, _ in results}) == 1
    assert Judgment.objects.count() == 1 and ItemGrade.objects.count() == 3


@pytest.mark.postgres
@pytest.mark.django_db
def test_the_claim_statement_compiled_once_is_the_one_compiled_now(project, annotator, make_user):
    other = make_user("other-annotator", role=Role.ANNOTATOR, project=project)
    now = timezone.now()
    for user in (annotator, other):
        args = {"annotator": user, "project": project, "now": now, "expires": now + timedelta(1)}
        assert rendered(*assignment.claim_statement(**args)) == rendered(
            *assignment.compile_claim_statement(**args)
        )
