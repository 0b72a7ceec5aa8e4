"""The lead's workflow in Chromium: create a project, import, invite someone who sets a password,
an API token shown once, a 403 that says why, and webhooks delivered to a local receiver.

Drives Debian's Chromium through Playwright against the live server; screenshots go to
test-artifacts/screenshots/.
"""

from __future__ import annotations

import json

import pytest
from django.contrib.auth import get_user_model
from django.contrib.auth.models import Permission

from labeling.models import Membership, Project
from tests.webhooks.receiver import start_receiver
from webhooks.models import Delivery

from .chromium import SCREENSHOTS, log_in, overlapping_chart_texts

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]


LINES = [
    {"type": "query", "id": "q1", "text": "red running shoes", "split": "train"},
    {"type": "item", "id": "t1", "query": "q1", "modality": "text", "title": "Trail runner review",
     "text": "A light red shoe.", "upstream_score": 0.9},
    {"type": "item", "id": "t2", "query": "q1", "modality": "text", "title": "Sock guide",
     "text": "Socks.", "upstream_score": 0.2},
]  # fmt: skip


def test_a_lead_creates_a_project_imports_and_invites_someone_who_gets_an_api_token(
    live_server, chromium, tmp_path, monkeypatch
):
    from labeling.tasks import run_import

    queued: list[int] = []  # the worker's queue: this test runs the task when it chooses
    monkeypatch.setattr(
        run_import, "apply_async", lambda args, kwargs=None, **kw: queued.append(args[0])
    )
    maria = get_user_model().objects.create_user("maria", password="pagewise-maria-1")
    maria.user_permissions.add(Permission.objects.get(codename="add_project"))
    context, page, errors = log_in(chromium, live_server, "maria", "pagewise-maria-1")

    page.click("#new-project-link")
    page.fill("#name", "Shoe search")
    page.fill("#modalities", "text, image")
    page.fill("#budget", "25")
    page.screenshot(path=SCREENSHOTS / "lead-new-project.png", full_page=True)
    page.click("#new-project button[type=submit]")
    page.wait_for_url(f"{live_server.url}/projects/shoe-search/import/")
    project = Project.objects.get(slug="shoe-search")
    assert str(project.budget) == "25.00" and project.modalities == ["text", "image"]
    data = tmp_path / "shoes.jsonl"
    data.write_text("".join(json.dumps(line) + "\n" for line in LINES))
    page.set_input_files("#file", str(data))
    page.click("#import-form button[type=submit]")
    # The request answers at once: the run's page shows it queued, nothing stored yet.
    page.wait_for_url(f"{live_server.url}/projects/shoe-search/import/runs/*/")
    assert page.text_content("#run-status").strip() == "queued"
    assert project.items.count() == 0
    assert page.is_visible("#run-cancel button")
    assert run_import(queued.pop()) == "succeeded"  # the worker runs it; the page polls
    page.wait_for_selector("#run-outcome >> text=Imported. 1 queries, 2 items")
    assert page.text_content("#run-status").strip() == "succeeded"
    assert page.text_content("#run-rows").strip() == "3"
    assert not page.is_visible("#run-cancel button")
    page.screenshot(path=SCREENSHOTS / "lead-import-run.png", full_page=True)
    assert project.items.count() == 2
    page.click("text=Back to the import page")
    assert "shoes.jsonl" in page.text_content("#import-runs")

    page.click(".lead-nav >> text=Members")
    page.fill("#invite-username", "newbie")
    page.select_option("#invite-role", "annotator")
    page.click("#invite button[type=submit]")
    link = page.input_value("#invite-link")
    assert "/accounts/set-password/" in link
    page.screenshot(path=SCREENSHOTS / "lead-invite-link.png", full_page=True)
    assert errors == []
    context.close()

    context = chromium.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(15_000)
    page.goto(link)
    page.fill("#id_new_password1", "tangerine-kite-93")
    page.fill("#id_new_password2", "tangerine-kite-93")
    page.screenshot(path=SCREENSHOTS / "invitee-set-password.png", full_page=True)
    page.click("button[type=submit]")
    page.wait_for_url(f"{live_server.url}/")
    assert "Shoe search" in page.text_content("main")
    assert Membership.objects.get(user__username="newbie").role == "annotator"

    page.goto(f"{live_server.url}/projects/shoe-search/settings/")
    assert "This needs the role lead in" in page.text_content("#forbidden")
    page.screenshot(path=SCREENSHOTS / "forbidden-with-reason.png", full_page=True)
    page.click("#forbidden >> text=Your projects")
    page.wait_for_url(f"{live_server.url}/")

    page.click("text=API token")
    page.click("#api-token button:has-text('Create a token')")
    key = page.input_value("#token-key")
    page.screenshot(path=SCREENSHOTS / "api-token-shown-once.png", full_page=True)
    api = context.request.get(
        f"{live_server.url}/api/projects/", headers={"Authorization": f"Token {key}"}
    )
    assert api.status == 200 and api.json()["results"][0]["slug"] == "shoe-search"
    page.goto(f"{live_server.url}/account/api-token/")
    assert key not in page.content()
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#api-token button:has-text('Revoke')")
    page.wait_for_selector("text=Token revoked")
    anonymous = chromium.new_context()
    refused = anonymous.request.get(
        f"{live_server.url}/api/projects/", headers={"Authorization": f"Token {key}"}
    )
    assert refused.status == 401
    anonymous.close()
    context.close()


def test_a_lead_registers_a_webhook_sends_a_test_delivery_and_replays_it(live_server, chromium):
    project = Project.objects.create(slug="shoes", name="Shoe search")
    lead = get_user_model().objects.create_user("lead", password="pagewise-lead-1")
    Membership.objects.create(project=project, user=lead, role="lead")
    receiver, server = start_receiver([500])
    try:
        context, page, errors = log_in(chromium, live_server, "lead", "pagewise-lead-1")
        page.goto(f"{live_server.url}/projects/shoes/webhooks/")
        page.fill("#url", "ftp://example.org/hook")
        page.click("#add-webhook button[type=submit]")
        assert "Only http:// and https:// URLs can receive webhooks" in page.text_content("main")
        page.fill("#url", receiver.url)
        page.click("#add-webhook button[type=submit]")
        page.wait_for_selector("#secret")
        page.click("text=Send a test delivery")
        page.wait_for_selector("#deliveries tr.delivery[data-status=succeeded]")
        assert len(receiver.requests) == 2, "the receiver refused the first attempt (500)"
        page.click("#deliveries >> text=Replay")
        page.wait_for_selector("text=replay of")
        assert len(receiver.requests) == 3
        rows = page.locator("#deliveries tr.delivery")
        assert rows.count() == 2
        page.click("#deliveries details summary >> nth=1")
        page.click("#secret summary")
        page.screenshot(path=SCREENSHOTS / "lead-webhooks.png", full_page=True)
        original = Delivery.objects.get(replay_of__isnull=True)
        assert original.attempts == 2
        assert list(original.attempt_log.values_list("response_status", flat=True)) == [500, 200]
        page.goto(f"{live_server.url}/projects/shoes/webhooks/")
        assert "ping · Delivered" in page.text_content("#webhooks")
        assert errors == []
        context.close()
    finally:
        server.shutdown()
        server.server_close()


def test_a_scientist_browses_queries_and_reads_the_judgments_behind_an_items_label(
    live_server, chromium, project, make_user
):
    from tests.labeling.lead_factories import small_project

    small_project(project, make_user)
    make_user("sci", role="scientist", project=project, password="pagewise-sci-1")
    context, page, errors = log_in(chromium, live_server, "sci", "pagewise-sci-1")
    page.goto(f"{live_server.url}/projects/{project.slug}/data/")
    assert page.locator("#queries tbody tr").count() == 3
    page.select_option("#status", "disagreements")
    page.click("#query-filters button[type=submit]")
    page.wait_for_selector("text=1 query match")
    page.screenshot(path=SCREENSHOTS / "data-browser-queries.png", full_page=True)
    page.click("#queries >> text=q1")
    row = page.locator('tr[data-item="q1-d1"]')
    assert "2 by ann1" in row.text_content() and "1 by ann2" in row.text_content()
    assert "disagreement" in row.text_content()
    assert page.locator("table.modality-table").count() == 2
    page.screenshot(path=SCREENSHOTS / "data-browser-query.png", full_page=True)
    page.select_option("#only", "disagreements")
    page.wait_for_url("**only=disagreements")
    assert page.locator("tr.item-row").count() == 1
    assert errors == []
    context.close()


def test_a_lead_raises_the_overlap_and_the_dashboard_explains_its_numbers(
    live_server, chromium, project, make_user
):
    from decimal import Decimal

    from labeling.models import Task
    from ranking.models import RerankerVersion
    from tests.labeling.lead_factories import small_project
    from tests.labeling.task_factories import make_page_task

    small_project(project, make_user)
    from labeling.models import Query

    open_pages = [
        make_page_task(
            project, query=Query.objects.create(project=project, external_id=f"o{i}", text="shoes")
        )
        for i in range(3)
    ]
    RerankerVersion.objects.create(
        project=project, number=1, status="retired", cost_spent=Decimal("0.6"), gold_ndcg10=0.962,
    )  # fmt: skip
    RerankerVersion.objects.create(
        project=project, number=2, status="active", cost_spent=Decimal("1.4"), gold_ndcg10=0.971,
        metrics={"measured_on": "gold", "baselines": {
            "round_robin": 0.975, "zscore_merge": 0.974, "vlm_zero_shot": 0.973}},
    )  # fmt: skip
    make_user("boss", role="lead", project=project, password="pagewise-boss-1")
    make_user("sci", role="scientist", project=project, password="pagewise-sci-1")

    context, page, errors = log_in(chromium, live_server, "boss", "pagewise-boss-1")
    page.goto(f"{live_server.url}/projects/{project.slug}/settings/")
    page.fill("#judgments_per_task", "2")
    page.check("#overlap_comparisons")
    page.click("#settings-form button[type=submit]")
    page.wait_for_selector("text=open page tasks now need 2 judgments each")
    assert "open comparisons too" in page.text_content(".messages")
    page.screenshot(path=SCREENSHOTS / "lead-settings-overlap.png")
    assert all(Task.objects.get(pk=t.pk).judgments_required == 2 for t in open_pages)

    page.goto(f"{live_server.url}/projects/{project.slug}/dashboard/")
    assert "round_robin" in page.text_content("#below-baseline")
    assert "α runs from −1 to 1" in page.text_content("#agreement-scale")
    assert "Too few to trust yet" in page.text_content("#agreement-warning")
    ticks = page.locator("#quality svg g.ytick text").all_text_contents()
    assert ticks[0] != "0" and float(ticks[0]) >= 0.9, ticks
    # Three baselines within 0.002 of each other and two versions near them: every label of
    # every chart stands clear of every other (matplotlib draws them; Chromium lays them out).
    labels = page.locator("#quality svg g.baseline-label text").all_text_contents()
    assert labels == ["round_robin 0.975", "vlm_zero_shot 0.973", "zscore_merge 0.974"], labels
    assert page.locator("#quality svg g.point-label text").all_text_contents() == ["v2", "v1"]
    assert overlapping_chart_texts(page) == []
    page.locator("#quality").screenshot(path=SCREENSHOTS / "dashboard-quality-fitted-axis.png")
    page.screenshot(path=SCREENSHOTS / "lead-dashboard-clarity.png", full_page=True)
    assert errors == []
    context.close()

    context, page, errors = log_in(chromium, live_server, "sci", "pagewise-sci-1")
    page.click(f"a[href='/projects/{project.slug}/dashboard/']")
    page.wait_for_selector("#quality svg")
    page.screenshot(path=SCREENSHOTS / "scientist-dashboard.png", full_page=True)
    assert errors == []
    context.close()
