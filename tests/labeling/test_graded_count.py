"""The database's count of human-graded items agrees with human_grades() item for item."""

from __future__ import annotations

import uuid

import pytest

from labeling.assignment import claim_next_task, revise_judgment, submit_judgment
from labeling.models import Adjudication, Item, Project, Query, Split
from labeling.selectors import human_graded_item_count, human_grades

from .task_factories import make_item, make_page_task, make_query, page_item_ids


def judge(task, annotator, grades):
    claim_next_task(annotator=annotator, project=task.project)
    judgment, _ = submit_judgment(
        task=task, annotator=annotator, client_uuid=uuid.uuid4(),
        grades=dict(zip(page_item_ids(task), grades, strict=True)),
    )  # fmt: skip
    return judgment


@pytest.mark.django_db
def test_count_matches_human_grades_with_overlap_revisions_adjudications_and_gold(
    project, make_user
):
    one = make_user("one", role="annotator", project=project)
    two = make_user("two", role="annotator", project=project)
    twice = make_page_task(project, items=3, judgments_required=2)
    judge(twice, one, [0, 1, 2])
    judge(twice, two, [4, 1, 2])  # the same three items graded twice: still three items
    revised = judge(make_page_task(project, items=2), one, [1, 1])
    revise_judgment(judgment=revised, annotator=one, client_uuid=uuid.uuid4(), grades={
        item: 3 for item in page_item_ids(revised.task)
    })  # fmt: skip
    gold = make_query(project)
    Query.objects.filter(pk=gold.pk).update(split=Split.GOLD)
    judge(make_page_task(project, items=2, query=gold), two, [2, 2])  # gold: not counted
    Adjudication.objects.create(project=project, item=Item.objects.first(), grade=3)
    ungraded = make_item(project, make_query(project))
    Adjudication.objects.create(project=project, item=ungraded, grade=1)  # decided, never graded
    other = Project.objects.create(slug="other", name="Other", modalities=["text"])
    judge(
        make_page_task(other, items=2), make_user("three", role="annotator", project=other), [1, 1]
    )

    train = list(project.queries.filter(split=Split.TRAIN).values_list("pk", flat=True))
    expected = len(human_grades(query_ids=train))
    assert expected == 3 + 2 + 1
    assert human_graded_item_count(project=project, split=Split.TRAIN) == expected
    assert human_graded_item_count(project=project, split=Split.GOLD) == 2
