"""Database constraints hold the truth: they refuse what Python might let through."""

import uuid
from decimal import Decimal

import pytest
from django.db import IntegrityError, transaction

from labeling.models import (
    AppendOnlyError,
    CandidatePage,
    Item,
    Judgment,
    Membership,
    Query,
    Task,
    TaskKind,
    TaskStatus,
)


@pytest.fixture
def page_task(project):
    query = Query.objects.create(project=project, external_id="q", text="cat")
    item = Item.objects.create(
        project=project, query=query, external_id="d", modality="text", title="t"
    )
    page = CandidatePage.objects.create(project=project, query=query)
    page.slots.create(position=0, item=item)
    return Task.objects.create(project=project, kind=TaskKind.GRADE_PAGE, page=page)


def judgment(task, user, client_uuid=None):
    return Judgment.objects.create(
        task=task, project=task.project, annotator=user, client_uuid=client_uuid or uuid.uuid4(),
        kind=TaskKind.GRADE_PAGE, cost=Decimal("0.1"),
    )  # fmt: skip


def test_same_client_uuid_is_refused_by_the_database(page_task, make_user):
    shared = uuid.uuid4()
    judgment(page_task, make_user("a"), shared)
    with pytest.raises(IntegrityError), transaction.atomic():
        judgment(page_task, make_user("b"), shared)


def test_judgments_are_append_only(page_task, make_user):
    stored = judgment(page_task, make_user("a"))
    stored.cost = Decimal("0")
    with pytest.raises(AppendOnlyError):
        stored.save()
    with pytest.raises(AppendOnlyError):
        stored.delete()


def test_compare_task_without_items_is_refused(project):
    with pytest.raises(IntegrityError), transaction.atomic():
        Task.objects.create(project=project, kind=TaskKind.COMPARE)


def test_leased_task_needs_assignee_and_expiry(page_task):
    page_task.status = TaskStatus.LEASED
    with pytest.raises(IntegrityError), transaction.atomic():
        page_task.save()


def test_one_membership_per_user_and_project(project, make_user):
    user = make_user("a", role="annotator", project=project)
    with pytest.raises(IntegrityError), transaction.atomic():
        Membership.objects.create(project=project, user=user, role="lead")


def test_duplicate_item_id_within_project_is_refused(project):
    query = Query.objects.create(project=project, external_id="q", text="cat")
    Item.objects.create(project=project, query=query, external_id="d", modality="text")
    with pytest.raises(IntegrityError), transaction.atomic():
        Item.objects.create(project=project, query=query, external_id="d", modality="image")
