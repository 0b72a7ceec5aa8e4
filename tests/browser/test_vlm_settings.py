"""The vision-language scorer's switches on the settings page, in Chromium: refused with the
reason while no model is configured, then scoring the project's items once one is."""

from __future__ import annotations

import pytest
from django.contrib.auth import get_user_model

from labeling.models import Item, Membership, Project, Query
from ranking.ml.vlm_tiny import build_tiny_vlm

from .chromium import SCREENSHOTS

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


def test_a_lead_turns_the_scorer_on_and_sees_the_items_scored(
    live_server, chromium, settings, tmp_path
):
    settings.PAGEWISE_VLM_PATH = ""
    lead = get_user_model().objects.create_user("lena", password="pagewise-lena-1")
    project = Project.objects.create(slug="vlm", name="VLM", modalities=["text"])
    Membership.objects.create(project=project, user=lead, role="lead")
    query = Query.objects.create(project=project, external_id="q", text="red cat")
    for i, title in enumerate(["red cat", "a dog", "the city"]):
        Item.objects.create(
            project=project, query=query, external_id=f"t{i}", modality="text", title=title
        )

    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(30_000)
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{live_server.url}/accounts/login/")
    page.fill("input[name=username]", "lena")
    page.fill("input[name=password]", "pagewise-lena-1")
    page.keyboard.press("Enter")
    page.wait_for_url(f"{live_server.url}/")

    page.goto(f"{live_server.url}/projects/vlm/settings/")
    assert "No model is configured" in page.text_content("#vlm-settings")
    page.check("#vlm_upstream")
    page.click("#settings-form button[type=submit]")
    assert "set PAGEWISE_VLM_PATH" in page.text_content("#vlm-settings")
    project.refresh_from_db()
    assert not project.vlm_upstream

    settings.PAGEWISE_VLM_PATH = str(build_tiny_vlm(tmp_path / "tiny-vlm"))
    page.goto(f"{live_server.url}/projects/vlm/settings/")
    page.check("#vlm_upstream")
    page.click("#settings-form button[type=submit]")
    page.wait_for_selector("#vlm-run")
    assert "Done, 3 of 3 items" in page.text_content("#vlm-run")
    page.locator("#vlm-settings").screenshot(path=SCREENSHOTS / "lead-vlm-settings.png")
    assert page.is_checked("#vlm_upstream")
    assert not Item.objects.filter(project=project, upstream_score__isnull=True).exists()
    assert errors == []
    context.close()
