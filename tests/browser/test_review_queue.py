"""The lead's review queue in a real Chromium, keyboard only: j/k move, a digit decides."""

from __future__ import annotations

import pytest

from labeling.models import Adjudication, Role
from labeling.selectors import human_grades

from ..labeling.lead_factories import small_project
from ..review.factories import contradicted_search
from .chromium import SCREENSHOTS
from .test_annotator import browser_page  # noqa: F401

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_the_lead_decides_disagreements_and_contradictions_with_the_keyboard(
    live_server,
    browser_page,  # noqa: F811 (the fixture imported above)
    project,
    make_user,
):
    small = small_project(project, make_user)
    _, items = contradicted_search(project, [small["ann1"], small["ann2"]])
    make_user("boss", role=Role.LEAD, project=project)
    page = browser_page
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "boss")
    page.fill("input[name=password]", "pw-for-tests-1")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")

    page.goto(f"{live_server.url}/projects/{project.slug}/review/")
    assert page.locator(".review-entry").count() == 2
    assert page.get_attribute(".review-entry.is-focused", "data-kind") == "grades"
    assert "Lower median of the 2 grades" in page.text_content(".review-entry.is-focused")
    page.screenshot(path=SCREENSHOTS / "30-review-queue.png", full_page=True)

    # The first entry: a grade disagreement; `2` decides it and the queue comes back on the next.
    disputed = int(page.get_attribute(".review-entry.is-focused input[name=item]", "value"))
    page.keyboard.press("2")
    page.wait_for_url("**/review/?at=1")
    page.wait_for_selector("text=Final grade 2 saved")
    assert Adjudication.objects.get(item_id=disputed).grade == 2
    assert page.get_attribute(".review-entry.is-focused", "data-kind") == "contradiction"
    focused = page.text_content(".review-entry.is-focused")
    assert "is more relevant than" in focused and "is less relevant than" in focused
    assert "ann1" in focused and "ann2" in focused
    page.screenshot(path=SCREENSHOTS / "31-review-contradiction.png", full_page=True)

    # k goes back, j forward again; `0` decides the contradicted image.
    page.keyboard.press("k")
    assert page.get_attribute(".review-entry.is-focused", "data-kind") == "grades"
    page.keyboard.press("j")
    page.keyboard.press("0")
    page.wait_for_url("**/review/?at=2")
    page.wait_for_selector("text=Final grade 0 saved")
    assert Adjudication.objects.get(item=items[2]).grade == 0
    assert human_grades(query_ids=[items[2].query_id])[items[2].pk] == 0
    assert "decided: 0" in page.text_content('.review-entry[data-kind="contradiction"]')
    page.keyboard.press("?")
    assert not page.is_visible("#guidelines .muted")
    assert page.errors == []
