"""A revised answer to a search probe re-runs the search from the corrected answer."""

from __future__ import annotations

import uuid
from decimal import Decimal

import pytest

from active_selection import services
from active_selection.models import AnchorSearch, ImpliedGrade, PairSource, PreferencePair
from labeling import assignment
from labeling.models import CompareOutcome, Judgment, Task, TaskKind, TaskStatus

from .test_services import judge, make_world

pytestmark = pytest.mark.django_db

WRONG = {
    CompareOutcome.ANCHOR_BETTER: CompareOutcome.OTHER_BETTER,
    CompareOutcome.OTHER_BETTER: CompareOutcome.ANCHOR_BETTER,
    CompareOutcome.EQUAL: CompareOutcome.OTHER_BETTER,
}


@pytest.fixture
def searching(project, make_user):
    project.top_band, project.page_size, project.budget = 3, 6, Decimal("100")
    project.save()
    truth = make_world(project)
    ann1, ann2 = make_user("ann1"), make_user("ann2")
    services.create_page_tasks(project=project)
    page = judge(Task.objects.get(kind=TaskKind.GRADE_PAGE), ann1, truth=truth)
    services.handle_judgment(judgment_id=page.pk)
    # Only the search's probes here: the calibration comparison the page also asked is removed.
    Task.objects.filter(dedupe_key__startswith=services.CALIBRATION_KEY).delete()
    return project, truth, ann2


def revise(judgment: Judgment, outcome: str) -> Judgment:
    revision, created = assignment.revise_judgment(
        judgment=judgment, annotator=judgment.annotator, client_uuid=uuid.uuid4(), outcome=outcome
    )
    assert created
    services.handle_judgment(judgment_id=revision.pk)
    services.handle_judgment(judgment_id=revision.pk)  # delivered twice: no change
    return revision


def finish(project, annotator, truth) -> int:
    asked = 0
    while task := Task.objects.filter(kind=TaskKind.COMPARE, status=TaskStatus.OPEN).first():
        services.handle_judgment(judgment_id=judge(task, annotator, truth=truth).pk)
        asked += 1
        assert asked < 40
    return asked


def assert_true_supervision(truth):
    # Every search of the query (each modality's tail is searched against the other's anchors).
    assert not AnchorSearch.objects.exclude(status=AnchorSearch.Status.DONE).exists()
    pairs = PreferencePair.objects.filter(source__in=[PairSource.IMPLIED, PairSource.HUMAN])
    assert pairs.exists()
    for pair in pairs:
        assert truth[pair.better_id] > truth[pair.worse_id], pair
    for grade in ImpliedGrade.objects.all():
        assert grade.low <= truth[grade.item_id] <= grade.high


def test_revising_a_wrong_probe_answer_cancels_what_it_asked_next_and_goes_on_from_the_truth(
    searching,
):
    project, truth, annotator = searching
    probe = Task.objects.filter(kind=TaskKind.COMPARE).order_by("pk").first()
    searched = probe.probe.search
    # A wrong answer: the image is said to beat the anchor when it does not, or the reverse.
    outcome = (
        CompareOutcome.OTHER_BETTER
        if truth[probe.other_id] <= truth[probe.anchor_id]
        else CompareOutcome.ANCHOR_BETTER
    )
    wrong = Judgment.objects.create(
        task=probe, project=project, annotator=annotator, client_uuid=uuid.uuid4(),
        kind=TaskKind.COMPARE, outcome=outcome, cost=project.compare_cost,
    )  # fmt: skip
    Task.objects.filter(pk=probe.pk).update(status=TaskStatus.DONE)
    services.handle_judgment(judgment_id=wrong.pk)
    asked_after_wrong = Task.objects.get(
        kind=TaskKind.COMPARE, status=TaskStatus.OPEN, probe__search=searched
    )
    right = (
        CompareOutcome.EQUAL
        if truth[probe.anchor_id] == truth[probe.other_id]
        else CompareOutcome.ANCHOR_BETTER
        if truth[probe.anchor_id] > truth[probe.other_id]
        else CompareOutcome.OTHER_BETTER
    )
    revise(wrong, right)
    search = AnchorSearch.objects.get(pk=searched.pk)
    assert search.revisions == 1
    history = [a for anchor in search.state["anchors"] for a in anchor["history"]]
    assert [a["outcome"] for a in history] == [
        {"anchor_better": "anchor_better", "other_better": "b_better", "equal": "equal"}[right]
    ]
    assert Task.objects.get(pk=asked_after_wrong.pk).status == TaskStatus.CANCELLED
    reasked = Task.objects.get(
        kind=TaskKind.COMPARE, status=TaskStatus.OPEN, probe__search=searched
    )
    assert reasked.dedupe_key.endswith(":r1")
    finish(project, annotator, truth)
    assert_true_supervision(truth)


def test_revising_an_answer_of_a_finished_search_reopens_it_and_rebuilds_its_pairs(searching):
    project, truth, annotator = searching
    finish(project, annotator, truth)
    assert_true_supervision(truth)
    pairs_before = set(PreferencePair.objects.values_list("better_id", "worse_id", "source"))
    first = Judgment.objects.filter(kind=TaskKind.COMPARE).order_by("pk").first()
    revision = revise(first, WRONG[first.outcome])
    search = first.task.probe.search
    search.refresh_from_db()
    assert search.revisions == 1
    # The wrong answer's consequences replace the truthful pairs: either the search asks again
    # (reopened) or it finished at once on the wrong evidence, with pairs that are not all true.
    asks_again = Task.objects.filter(kind=TaskKind.COMPARE, status=TaskStatus.OPEN).exists()
    now = set(PreferencePair.objects.values_list("better_id", "worse_id", "source"))
    assert asks_again or now != pairs_before
    revise(revision, first.outcome)  # and back: the truth again
    finish(project, annotator, truth)
    assert_true_supervision(truth)
    assert (
        set(PreferencePair.objects.values_list("better_id", "worse_id", "source")) == pairs_before
    )
