"""The review queue: grade disagreements and search contradictions, every answer, the lead's
final grade as the training label, the statistic named for what it is."""

from __future__ import annotations

import pytest
from django.urls import reverse

from labeling.models import Adjudication, Project, Role
from labeling.selectors import human_grades
from review.selectors import review_queue

from ..labeling.lead_factories import small_project
from .factories import contradicted_search

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def queue_world(project, make_user):
    small = small_project(project, make_user)
    search, items = contradicted_search(project, [small["ann1"], small["ann2"]])
    return small, search, items


def test_the_queue_lists_disagreements_and_contradictions_with_every_answer(project, queue_world):
    small, search, items = queue_world
    entries = review_queue(project=project)
    kinds = [e.kind for e in entries]
    assert kinds.count("grades") == 1 and kinds.count("contradiction") == 1
    grades = next(e for e in entries if e.kind == "grades")
    assert {a.annotator for a in grades.answers} == {"ann1", "ann2"}
    assert grades.lower_median == min(a.grade for a in grades.answers)  # two grades: the lower
    contradiction = next(e for e in entries if e.kind == "contradiction")
    assert contradiction.item == items[2]  # the later answer's image
    texts = " | ".join(a.text for a in contradiction.answers)
    assert "“Bicycle photo 1” (image) is less relevant than “Red bicycles for sale”" in texts
    assert "“Bicycle photo 2” (image) is more relevant than" in texts
    assert [a.annotator for a in contradiction.answers] == ["ann1", "ann2"]


def test_the_leads_decision_is_the_training_label_and_the_page_names_the_lower_median(
    client, project, queue_world, make_user
):
    small, search, items = queue_world
    lead = make_user("boss", role=Role.LEAD, project=project)
    client.force_login(lead)
    html = client.get(reverse("lead-review", args=["p"])).content.decode()
    assert "Lower median of the 2 grades" in html and ">Median<" not in html
    assert "Bicycle photo 2" in html and "A shop page listing red city bicycles." in html
    assert "1 grade disagreement · 1 search contradiction" in html
    response = client.post(
        reverse("lead-review", args=["p"]), {"item": items[2].pk, "grade": 3, "at": "2"}
    )
    assert response.status_code == 302 and response["Location"].endswith("?at=2")
    assert Adjudication.objects.get(item=items[2]).grade == 3
    assert human_grades(query_ids=[items[2].query_id])[items[2].pk] == 3
    other = Project.objects.create(slug="other", name="Other")
    outsider = make_user("olead", role=Role.LEAD, project=other)
    client.force_login(outsider)
    assert (
        client.post(
            reverse("lead-review", args=["p"]), {"item": items[2].pk, "grade": 0}
        ).status_code
        == 404
    )
    assert Adjudication.objects.get(item=items[2]).grade == 3
    client.force_login(lead)
    junk = client.post(reverse("lead-review", args=["p"]), {"item": "x", "grade": "", "at": "1'"})
    assert junk.status_code == 302 and "?at" not in junk["Location"]
    foreign = client.post(
        reverse("lead-review", args=["p"]), {"item": 10**12, "grade": 1}, follow=True
    )
    assert "No item" in foreign.content.decode()
