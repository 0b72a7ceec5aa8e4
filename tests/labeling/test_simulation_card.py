"""The "Simulate before spending" card of the lead's settings page, in each of its states, and
its Run and Apply buttons (bad input gives a message, never a 500)."""

from __future__ import annotations

from xml.etree import ElementTree

import pytest
from django.contrib.messages import get_messages
from django.urls import reverse

from active_selection import recommendation, simulator
from active_selection.models import SimulationReport
from labeling.models import Project, Strategy

from .lead_factories import shaped_project, simulation_results

SVG = "{http://www.w3.org/2000/svg}"


@pytest.fixture(autouse=True)
def _fast_password_hashing(settings):
    settings.PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]


@pytest.fixture
def lead_client(client, project, make_user):
    client.force_login(make_user("lead", role="lead", project=project))
    return client


def settings_page(client, project) -> str:
    response = client.get(reverse("lead-settings", args=[project.slug]))
    assert response.status_code == 200
    return response.content.decode()


def card(html: str) -> str:
    start = html.index('id="simulate"')
    return html[start : html.index("</section>", start)]


def post(client, name: str, project, data=None):
    response = client.post(reverse(name, args=[project.slug]), data or {})
    assert response.status_code == 302
    assert response["Location"].endswith(
        reverse("lead-settings", args=[project.slug]) + "#simulate"
    )
    return [str(m) for m in get_messages(response.wsgi_request)]


def test_without_a_report_the_card_explains_itself_and_offers_to_run(lead_client, project):
    html = card(settings_page(lead_client, project))
    assert "Simulate before spending" in html
    assert "which strategy reaches the quality of grading every item" in html
    assert reverse("lead-simulation-run", args=[project.slug]) in html
    assert "Run simulation" in html and "csrfmiddlewaretoken" in html


def test_run_queues_one_simulation_and_a_second_press_is_explained(lead_client, project):
    assert post(lead_client, "lead-simulation-run", project) == [
        "Simulation queued: 5 seeds, 120 runs, about 10 minutes once a worker takes it."
    ]
    report = SimulationReport.objects.get(project=project)
    assert report.status == "queued" and report.requested_by.username == "lead"
    assert "already queued or running" in post(lead_client, "lead-simulation-run", project)[-1]
    assert SimulationReport.objects.filter(project=project).count() == 1


def test_a_running_simulation_shows_its_progress_and_is_polled(lead_client, project):
    report = SimulationReport.objects.create(
        project=project, status="running", runs_done=6, runs_total=24
    )
    html = card(settings_page(lead_client, project))
    assert (
        'role="progressbar"' in html
        and 'aria-valuenow="6"' in html
        and 'aria-valuemax="24"' in html
    )
    assert "width: 25%" in html and "6 of 24" in html and "Running." in html
    assert 'data-status="running"' in html and f'data-report="{report.pk}"' in html
    assert "Run simulation" not in html
    assert "js/simulation.js" in settings_page(lead_client, project)
    status = lead_client.get(reverse("lead-simulation-status", args=[project.slug])).json()
    assert status == {"report": report.pk, "status": "running", "runs_done": 6, "runs_total": 24}


def test_the_status_of_a_project_without_simulations_is_empty(lead_client, project):
    status = lead_client.get(reverse("lead-simulation-status", args=[project.slug])).json()
    assert status == {"report": None, "status": None, "runs_done": 0, "runs_total": 0}


def test_a_failed_simulation_shows_its_error_and_a_retry(lead_client, project):
    SimulationReport.objects.create(
        project=project, status="failed", error="RuntimeError: out of memory"
    )
    html = card(settings_page(lead_client, project))
    assert "The simulation failed: RuntimeError: out of memory" in html
    assert (
        "Retry simulation" in html and reverse("lead-simulation-run", args=[project.slug]) in html
    )
    assert post(lead_client, "lead-simulation-run", project)[0].startswith("Simulation queued")


def test_a_done_simulation_shows_the_curve_the_verdict_and_applies_it(lead_client, project):
    project.strategy = Strategy.TOP_P
    project.save()
    report = recommendation.record_finished_simulation(
        project=project, results=simulation_results(), estimated={"gold_queries": 12}
    )
    html = card(settings_page(lead_client, project))
    assert (
        "Iso-label anchor search reaches full annotation&#x27;s quality at 20% of its cost "
        "(paired difference "
        in html
        and "over 5 seeds" in html
    )
    svg = ElementTree.fromstring(html[html.index("<svg") : html.index("</svg>") + 6])
    assert len(svg.findall(f".//{SVG}g[@class='series']")) == 4  # one line per strategy
    assert len(svg.findall(f".//{SVG}g[@class='reference']")) == 1  # full's NDCG@10
    assert len(svg.findall(f".//{SVG}use[@class='point']")) == 12
    assert len(svg.findall(f".//{SVG}g[@class='spread']")) == 12  # the range over seeds
    assert html.count("<tr") == 1 + 12 and "0.700" in html and "0.679–0.720" in html
    assert "Apply: use Iso-label anchor search" in html
    assert f'name="report" value="{report.pk}"' in html
    assert "from the shell" in html and "Simulated on 160 queries (40 held out)" in html

    # Apply asks first, saying what will change; nothing changes until the lead confirms.
    first = lead_client.post(
        reverse("lead-simulation-apply", args=[project.slug]), {"report": report.pk}
    )
    assert first["Location"].endswith(f"?apply={report.pk}#simulate")
    project.refresh_from_db()
    assert project.strategy == Strategy.TOP_P
    html = card(lead_client.get(first["Location"]).content.decode())
    assert 'id="simulate-confirm"' in html
    assert (
        "The strategy changes from Grade the top band of each modality to Iso-label anchor search."
        in html
    )
    assert "No task is open, so none is affected." in html
    messages = post(
        lead_client, "lead-simulation-apply", project, {"report": report.pk, "confirm": "yes"}
    )
    assert messages == ["The project now uses Iso-label anchor search; new pages follow it."]
    project.refresh_from_db()
    assert project.strategy == Strategy.ISO_ANCHOR
    html = card(settings_page(lead_client, project))
    assert "Apply: use" not in html and "The project already uses Iso-label anchor search." in html
    assert (
        "already uses"
        in post(
            lead_client, "lead-simulation-apply", project, {"report": report.pk, "confirm": "yes"}
        )[-1]
    )


def test_a_done_simulation_without_a_recommendation_says_so_and_offers_nothing(
    lead_client, project
):
    recommendation.record_finished_simulation(
        project=project, results=simulation_results(recommended=None, full=0.75), estimated={}
    )
    html = card(settings_page(lead_client, project))
    assert (
        "No strategy does better than Iso-label anchor search within the noise of this project "
        "(5 seeds, paired), and none reaches full annotation&#x27;s quality below its full cost."
        in html
    )
    assert "Apply: use" not in html and "<svg" in html


@pytest.mark.parametrize(
    ("report", "message"),
    [
        ("", "Choose the simulation whose recommendation to apply."),
        ("abc", "Choose the simulation whose recommendation to apply."),
        ("999999", "No simulation report 999999 in 'Test project'."),
        ("theirs", "No simulation report {theirs} in 'Test project'."),
        ("running", "This simulation has not finished; its recommendation can be applied then."),
    ],
)
def test_apply_with_a_bad_report_gives_a_message_not_a_500(lead_client, project, report, message):
    other = Project.objects.create(slug="other", name="Other")
    theirs = recommendation.record_finished_simulation(
        project=other, results=simulation_results(), estimated={}
    )
    running = SimulationReport.objects.create(project=project, status="running")
    value = {"theirs": theirs.pk, "running": running.pk}.get(report, report)
    messages = post(
        lead_client, "lead-simulation-apply", project, {"report": value, "confirm": "yes"}
    )
    assert messages == [message.format(theirs=theirs.pk)]
    assert Project.objects.get(pk=project.pk).strategy == Strategy.ISO_ANCHOR


def test_the_simulation_buttons_take_posts_only(lead_client, project):
    for name in ("lead-simulation-run", "lead-simulation-apply"):
        assert lead_client.get(reverse(name, args=[project.slug])).status_code == 405
    assert not SimulationReport.objects.exists()


def test_run_simulate_and_apply_from_the_page(
    lead_client, project, monkeypatch, django_capture_on_commit_callbacks
):
    """The whole path: Run, the worker's task (eager here) on the project's shape, the chart,
    Apply."""
    shaped_project(project)
    monkeypatch.setattr(recommendation, "MIN_SEEDS", 2)  # two seeds: the least that pair
    monkeypatch.setattr(recommendation, "PRIOR_SECONDS_PER_RUN", 600.0)
    monkeypatch.setattr(recommendation, "STRATEGIES", ("top_p", "full"))
    monkeypatch.setattr(recommendation, "BUDGETS", (0.3, 1.0))
    monkeypatch.setattr(recommendation, "TRAINING", simulator.TrainingSpec(epochs=2))
    with django_capture_on_commit_callbacks(execute=True):
        post(lead_client, "lead-simulation-run", project)
    report = SimulationReport.objects.get(project=project)
    assert report.status == "done", report.error
    html = card(settings_page(lead_client, project))
    assert "<svg" in html and "full annotation&#x27;s quality" in html and "2 seeds" in html
    assert "from the grades of 6 gold queries" in html and "by lead" in html
    if report.recommended_strategy and report.recommended_strategy != project.strategy:
        post(lead_client, "lead-simulation-apply", project, {"report": report.pk, "confirm": "yes"})
        project.refresh_from_db()
        assert project.strategy == report.recommended_strategy


@pytest.mark.parametrize("minutes", ["0", "abc", "241", "1e9"])
def test_a_bad_time_budget_gives_a_message_and_queues_nothing(lead_client, project, minutes):
    messages = post(lead_client, "lead-simulation-run", project, {"minutes": minutes})
    assert messages == ["The time budget is a whole number of minutes from 1 to 240."]
    assert not SimulationReport.objects.exists()


def test_the_card_says_how_long_the_simulation_takes_before_it_starts(lead_client, project):
    html = card(settings_page(lead_client, project))
    assert 'name="minutes"' in html
    assert "With 10 minutes: 5 seeds (at least 5; each its own simulated world" in html
    assert "about 10 minutes once a worker takes it" in html
    post(lead_client, "lead-simulation-run", project, {"minutes": "30"})
    report = SimulationReport.objects.get(project=project)
    assert report.estimated["plan"]["seeds"] == 15 and report.runs_total == 15 * 24
    assert "Planned: 15 seeds, about 30 minutes" in card(settings_page(lead_client, project))
