"""Overlap does what it says: a changed number of judgments per task applies to open tasks (the
lead is told how many), to comparisons when the lead chooses, and the search waits for every
answer of an overlapped comparison; agreement shows its scale and warns under a minimum."""

from __future__ import annotations

import uuid

import pytest
from django.urls import reverse

from active_selection import services as selection
from active_selection.models import AnchorSearch
from labeling import assignment
from labeling.models import CompareOutcome, Task, TaskKind, TaskStatus
from tests.active_selection.test_services import judge, make_world
from tests.labeling.lead_factories import small_project


@pytest.fixture
def lead(project, make_user):
    return make_user("boss", role="lead", project=project)


def settings_post(client, project, **changes):
    url = reverse("lead-settings", args=[project.slug])
    return client.post(
        url,
        {k: str(v).lower() if isinstance(v, bool) else v for k, v in changes.items()},
        follow=True,
    )


def test_raising_judgments_per_task_applies_to_open_pages_and_says_how_many(
    client, project, lead, make_user
):
    make_world(project, queries=3)
    project.page_size = 6
    project.save()
    selection.create_page_tasks(project=project)
    done = Task.objects.filter(kind=TaskKind.GRADE_PAGE).first()
    Task.objects.filter(pk=done.pk).update(status=TaskStatus.DONE)
    client.force_login(lead)
    html = settings_post(client, project, judgments_per_task=2).content.decode()
    assert "2 open page tasks now need 2 judgments each" in html
    assert "comparisons keep one answer each" in html
    required = dict(Task.objects.values_list("pk", "judgments_required"))
    assert required[done.pk] == 1, "finished work is not reopened"
    assert sorted(required.values()) == [1, 2, 2]
    selection.create_page_tasks(project=project)  # nothing new: every query has its page


def test_lowering_closes_open_tasks_that_already_have_enough_answers(
    client, project, lead, make_user
):
    make_world(project)
    project.page_size, project.judgments_per_task = 6, 2
    project.save()
    selection.create_page_tasks(project=project)
    task = Task.objects.get()
    ann = make_user("ann1", role="annotator", project=project)
    leased = assignment.claim_next_task(annotator=ann, project=project)
    items = list(task.page.slots.values_list("item_id", flat=True))
    assignment.submit_judgment(
        task=leased, annotator=ann, client_uuid=uuid.uuid4(), grades=dict.fromkeys(items, 1)
    )
    assert Task.objects.get().status == TaskStatus.OPEN, "one of two judgments"
    client.force_login(lead)
    settings_post(client, project, judgments_per_task=1)
    assert Task.objects.get().status == TaskStatus.DONE


def test_comparisons_get_the_overlap_only_when_the_lead_chooses_and_the_search_waits_for_it(
    client, project, lead, make_user
):
    truth = make_world(project)
    project.page_size, project.judgments_per_task = 6, 2
    project.save()
    selection.create_page_tasks(project=project)
    ann1, ann2 = make_user("ann1"), make_user("ann2")
    page = Task.objects.get(kind=TaskKind.GRADE_PAGE)
    selection.handle_judgment(judgment_id=judge(page, ann1, truth=truth).pk)
    probe = Task.objects.filter(kind=TaskKind.COMPARE).order_by("pk").first()
    assert probe.judgments_required == 1, "comparisons keep one answer unless the lead chooses"
    probes_before = Task.objects.filter(kind=TaskKind.COMPARE).count()
    client.force_login(lead)
    html = settings_post(client, project, judgments_per_task=2, overlap_comparisons=True)
    assert f"{probes_before} open comparison" in html.content.decode()
    probe.refresh_from_db()
    assert probe.judgments_required == 2
    search = AnchorSearch.objects.get(probes__task=probe)
    first = judge(probe, ann1, truth=truth)
    Task.objects.filter(pk=probe.pk).update(status=TaskStatus.OPEN)  # judge() closes it
    selection.handle_judgment(judgment_id=first.pk)
    search.refresh_from_db()
    assert search.probes_answered == 0, "the search waits for the second answer"
    assert Task.objects.filter(kind=TaskKind.COMPARE).count() == probes_before
    second = judge(probe, ann2, truth=truth)
    selection.handle_judgment(judgment_id=second.pk)
    search.refresh_from_db()
    assert search.probes_answered == 2, "both answers went in"
    follow_up = (
        Task.objects.filter(kind=TaskKind.COMPARE, probe__search=search)
        .exclude(pk=probe.pk)
        .first()
    )
    if follow_up is not None:
        assert follow_up.judgments_required == 2, "new comparisons get the overlap too"


def test_disagreeing_answers_of_an_overlapped_comparison_are_a_contradiction(project, make_user):
    truth = make_world(project)
    project.page_size, project.judgments_per_task, project.overlap_comparisons = 6, 2, True
    project.save()
    selection.create_page_tasks(project=project)
    ann1, ann2 = make_user("ann1"), make_user("ann2")
    page = Task.objects.get(kind=TaskKind.GRADE_PAGE)
    selection.handle_judgment(judgment_id=judge(page, ann1, truth=truth).pk)
    probe = Task.objects.filter(kind=TaskKind.COMPARE).order_by("pk").first()
    assert probe.judgments_required == 2
    from labeling.models import Judgment

    for annotator, outcome in (
        (ann1, CompareOutcome.ANCHOR_BETTER),
        (ann2, CompareOutcome.OTHER_BETTER),
    ):
        judgment = Judgment.objects.create(
            task=probe, project=project, annotator=annotator, kind=TaskKind.COMPARE,
            outcome=outcome, cost=project.compare_cost,
        )  # fmt: skip
        selection.handle_judgment(judgment_id=judgment.pk)
    assert AnchorSearch.objects.get(probes__task=probe).contradictions >= 1


def test_agreement_shows_its_scale_and_warns_under_the_minimum(client, project, lead, make_user):
    small_project(project, make_user)
    client.force_login(lead)
    html = client.get(reverse("lead-dashboard", args=[project.slug])).content.decode()
    assert "α runs from −1 to 1" in html and "not corrected for chance" in html
    assert 'id="agreement-warning"' in html
    assert (
        "4 items graded more than once" in html and "2 comparisons answered more than once" in html
    )
    assert "at least 30 each" in html


def test_the_api_takes_the_overlap_setting(client, project, lead):
    client.force_login(lead)
    url = reverse("api-settings", args=[project.slug])
    response = client.patch(
        url, {"judgments_per_task": 3, "overlap_comparisons": True}, content_type="application/json"
    )
    assert response.status_code == 200 and response.json()["overlap_comparisons"] is True
    project.refresh_from_db()
    assert (project.judgments_per_task, project.overlap_comparisons) == (3, True)
