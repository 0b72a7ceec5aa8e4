"""The data browser: queries with search, split and status filters; a query's items per modality
in upstream order with labels, implied intervals and the judgments behind them; every URL × role;
odd input never a 500."""

from __future__ import annotations

import re

import pytest
from django.urls import reverse

from active_selection import services as selection
from active_selection.models import AnchorSearch, ImpliedGrade
from labeling.models import Project, Query, Task, TaskStatus
from tests.active_selection.test_services import judge, make_world
from tests.labeling.lead_factories import small_project


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def world(project, make_user):
    small = small_project(project, make_user)
    other = Project.objects.create(slug="other", name="Other project")
    users = {
        "lead": make_user("lead", role="lead", project=project),
        "annotator": small["ann1"],
        "scientist": make_user("sci", role="scientist", project=project),
        "other_lead": make_user("boss2", role="lead", project=other),
    }
    return {"users": users, "small": small}


def ids_in(html: str) -> list[str]:
    return re.findall(r"<strong>(q\d|g\d)</strong></a>", html)


def test_queries_are_listed_with_their_numbers_and_filtered(client, project, world):
    client.force_login(world["users"]["scientist"])
    url = reverse("data-queries", args=[project.slug])
    html = client.get(url).content.decode()
    assert ids_in(html) == ["g1", "q1", "q2"]
    assert "3 queries." in html
    assert ids_in(client.get(url, {"split": "gold"}).content.decode()) == ["g1"]
    assert ids_in(client.get(url, {"q": "QUERY Q2"}).content.decode()) == ["q2"]
    assert ids_in(client.get(url, {"status": "ungraded"}).content.decode()) == ["g1"]
    assert ids_in(client.get(url, {"status": "graded"}).content.decode()) == ["q1", "q2"]
    # q1: ann1 gave 2 and ann2 gave 1 to the second item.
    assert ids_in(client.get(url, {"status": "disagreements"}).content.decode()) == ["q1"]
    assert ids_in(client.get(url, {"status": "contradictions"}).content.decode()) == []
    row = re.search(r"<strong>q1</strong>.*?</tr>", html, re.S).group(0)
    assert re.findall(r'class="num">(\d+)<', row) == ["4", "4", "2"]  # items, graded, judgments


def test_a_query_shows_items_per_modality_in_upstream_order_with_the_judgments_behind(
    client, project, world
):
    client.force_login(world["users"]["lead"])
    q1 = Query.objects.get(project=project, external_id="q1")
    html = client.get(reverse("data-query", args=[project.slug, q1.pk])).content.decode()
    tables = re.findall(r'data-modality="(\w+)"', html)
    assert tables == ["text", "image"], "the project's modality order"
    order = re.findall(r'data-item="([^"]+)"', html)
    assert order == ["q1-d0", "q1-d2", "q1-d1", "q1-d3"], "upstream rank within each modality"
    row = re.search(r'data-item="q1-d1".*?</tr>', html, re.S).group(0)
    assert "2 by ann1" in row and "1 by ann2" in row and "· 10 s" in row and "· 30 s" in row
    assert "disagreement" in row
    assert re.search(r'class="label">1 ', row), "the lower median of 2 and 1"
    first = re.search(r'data-item="q1-d0".*?</tr>', html, re.S).group(0)
    assert "above q1-d1 by ann1" in first and "above q1-d1 by ann2" in first
    only = client.get(reverse("data-query", args=[project.slug, q1.pk]), {"only": "disagreements"})
    assert re.findall(r'data-item="([^"]+)"', only.content.decode()) == ["q1-d1"]


def test_a_revised_grade_is_struck_through_and_no_longer_counts(client, project, world):
    import uuid

    from labeling.assignment import revise_judgment
    from labeling.models import Item, Judgment

    ann2 = world["small"]["ann2"]
    item = Item.objects.get(project=project, external_id="q1-d1")
    judgment = Judgment.objects.get(annotator=ann2, grades__item=item)
    grades = dict(judgment.grades.values_list("item_id", "grade"))
    revise_judgment(
        judgment=judgment, annotator=ann2, client_uuid=uuid.uuid4(), grades={**grades, item.pk: 2}
    )
    client.force_login(world["users"]["lead"])
    q1 = Query.objects.get(project=project, external_id="q1")
    html = client.get(reverse("data-query", args=[project.slug, q1.pk])).content.decode()
    row = re.search(r'data-item="q1-d1".*?</tr>', html, re.S).group(0)
    assert "<s>1</s> by ann2" in row and "revised" in row, "the old answer, struck through"
    assert "2 by ann1" in row and row.count("2 by ann2") == 1, "the revision counts"
    assert re.search(r'class="label">2<', row) and "disagreement" not in row
    listing = client.get(reverse("data-queries", args=[project.slug]), {"status": "disagreements"})
    assert ids_in(listing.content.decode()) == []


def test_implied_intervals_and_search_answers_are_shown(client, project, make_user):
    truth = make_world(project)
    project.page_size = 6
    project.save()
    selection.create_page_tasks(project=project)
    ann = make_user("ann1", role="annotator", project=project)
    while task := Task.objects.filter(project=project, status=TaskStatus.OPEN).first():
        selection.handle_judgment(judgment_id=judge(task, ann, truth=truth).pk)
    assert set(AnchorSearch.objects.values_list("status", flat=True)) == {"done"}
    implied = ImpliedGrade.objects.select_related("item").first()
    client.force_login(make_user("boss", role="lead", project=project))
    query = Query.objects.get(project=project)
    html = client.get(reverse("data-query", args=[project.slug, query.pk])).content.decode()
    row = re.search(rf'data-item="{implied.item.external_id}".*?</tr>', html, re.S).group(0)
    interval = re.search(r'class="interval">([^<]+)<', row).group(1).strip()
    expected = str(implied.low) if implied.low == implied.high else f"{implied.low}–{implied.high}"
    assert interval == expected
    assert "text → image" in html and "by ann1" in html
    assert "ungraded" in html  # the filter's option
    ungraded = client.get(
        reverse("data-query", args=[project.slug, query.pk]), {"only": "ungraded"}
    ).content.decode()
    assert implied.item.external_id not in re.findall(r'data-item="([^"]+)"', ungraded)


@pytest.mark.parametrize(
    "params",
    [{"page": "abc"}, {"page": "99999"}, {"status": "bogus", "split": "nope"}, {"q": "x" * 5000},
     {"q": "\x00"}, {"only": "everything"}],
)  # fmt: skip
def test_odd_input_is_never_a_500(client, project, world, params):
    client.force_login(world["users"]["lead"])
    q1 = Query.objects.get(project=project, external_id="q1")
    assert client.get(reverse("data-queries", args=[project.slug]), params).status_code == 200
    assert client.get(reverse("data-query", args=[project.slug, q1.pk]), params).status_code == 200


ROLES = ["anonymous", "annotator", "scientist", "other_lead", "lead"]


@pytest.mark.parametrize("role", ROLES)
def test_every_data_browser_url_for_every_role(client, project, world, role):
    q1 = Query.objects.get(project=project, external_id="q1")
    urls = [
        reverse("data-queries", args=[project.slug]),
        reverse("data-query", args=[project.slug, q1.pk]),
    ]
    if role != "anonymous":
        client.force_login(world["users"][role])
    for url in urls:
        response = client.get(url)
        if role == "anonymous":
            assert response.status_code == 302 and "/accounts/login/" in response["Location"]
        elif role == "annotator":
            assert response.status_code == 403
            assert "This needs the role lead or scientist" in response.content.decode()
        elif role == "other_lead":
            assert response.status_code == 404
        else:
            assert response.status_code == 200
        assert client.post(url).status_code in (302, 403, 404, 405)


def test_a_query_of_another_project_is_not_found_under_this_one(client, project, world):
    other = Project.objects.get(slug="other")
    foreign = Query.objects.create(project=other, external_id="x", text="secret")
    client.force_login(world["users"]["lead"])
    assert client.get(reverse("data-query", args=[project.slug, foreign.pk])).status_code == 404
