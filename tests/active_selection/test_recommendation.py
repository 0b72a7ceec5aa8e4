"""Simulate before spending: a simulation shaped like the project, run by a worker, stored as a
report with the strategy that reaches full annotation's quality cheapest, and applied."""

from __future__ import annotations

import io
import json
import logging
from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from active_selection import recommendation, simulator
from active_selection.models import SimulationReport
from labeling.errors import Conflict, NotFound
from labeling.models import Project, Strategy
from tests.labeling.lead_factories import shaped_project, simulation_results


@pytest.fixture
def shaped(project):
    return shaped_project(project)


@pytest.fixture
def tiny_plan(monkeypatch):
    """Two strategies, two budgets, two epochs: the settings-page plan, small enough for a test."""
    monkeypatch.setattr(recommendation, "STRATEGIES", ("iso_anchor", "full"))
    monkeypatch.setattr(recommendation, "BUDGETS", (0.3, 1.0))
    monkeypatch.setattr(recommendation, "TRAINING", simulator.TrainingSpec(epochs=2))


@pytest.fixture
def lead(make_user, project):
    return make_user("lead", role="lead", project=project)


def test_world_like_estimates_relevant_share_and_upstream_tau_from_gold_grades(shaped):
    spec, estimated = simulator.world_like(shaped)
    assert (spec.modalities, spec.items_per_modality) == (2, 4)
    assert (spec.queries, spec.heldout_queries) == (24, 6)
    assert estimated["gold_queries"] == 6
    assert estimated["relevant_share"] == pytest.approx(0.5)
    assert spec.relevant_share == pytest.approx(0.5)
    # Upstream order agrees with the grades but for one swap in every third list: a good ranker.
    assert 0.5 < estimated["tau_b_against_gold_grades"] < 1.0
    assert 0.5 <= spec.upstream_tau <= 0.95


@pytest.mark.parametrize("noise", [0.2, 1.0])
def test_world_like_estimates_the_embedding_noise_from_embedded_gold_items(db, noise):
    # A generated world stored as a project (embeddings in the cache, gold grades on held-out
    # queries): the estimate finds the noise it was made with, to the neighbouring grid step.
    spec = simulator.WorldSpec(queries=30, heldout_queries=20, embedding_noise=noise)
    world = simulator.store_seed_world(spec, 0, label="noise")
    got, estimated = simulator.world_like(world.project)
    assert estimated["embedding_noise"] == got.embedding_noise
    grid = (0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.5, 2.0)
    assert abs(grid.index(got.embedding_noise) - grid.index(noise)) <= 1
    assert (estimated["cosine_tau_b_against_gold_grades"] > 0.4) == (noise < 0.5)


def test_world_like_keeps_the_embedding_noise_prior_without_embeddings(shaped):
    spec, estimated = simulator.world_like(shaped)
    assert spec.embedding_noise == simulator.WorldSpec().embedding_noise
    assert "embedding_noise" not in estimated


def test_the_plan_caps_a_large_project_s_queries_and_keeps_its_shape(shaped, monkeypatch):
    monkeypatch.setattr(recommendation, "MAX_QUERIES", 16)
    plan, estimated = recommendation.project_plan(project=shaped)
    assert (plan.world.queries, plan.world.heldout_queries) == (16, 4)
    assert estimated["queries_capped_from"] == 24
    assert (plan.world.modalities, plan.world.items_per_modality) == (2, 4)
    assert list(plan.strategies) == list(simulator.STRATEGIES)
    assert list(plan.budgets) == [0.05, 0.1, 0.2, 0.3, 0.5, 1.0]
    assert (plan.seeds, list(plan.single_modal)) == (1, [True])
    assert recommendation.runs_in(plan) == 24
    assert plan.policy == "breadth_first"
    shaped.budget_policy = "per_query"
    assert recommendation.project_plan(project=shaped)[0].policy == "per_query", "its own policy"


def test_a_queued_simulation_runs_after_commit_stores_results_and_a_recommendation_once(
    shaped, lead, tiny_plan, monkeypatch, django_capture_on_commit_callbacks
):
    saved = []
    save = recommendation._save
    monkeypatch.setattr(
        recommendation,
        "_save",
        lambda report_id, **fields: (saved.append(fields), save(report_id, **fields)),
    )
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        report = recommendation.queue_project_simulation(project=shaped, requested_by=lead)
    assert len(callbacks) == 1  # the Celery task, run eagerly here as a worker would
    report.refresh_from_db()
    assert report.status == SimulationReport.Status.DONE, report.error
    assert (report.runs_done, report.runs_total) == (4, 4)
    assert [f["runs_done"] for f in saved if "runs_done" in f and "status" not in f] == [1, 2, 3, 4]
    results = report.results
    assert {"world", "full_ndcg10", "results", "cost_to_match_full"} <= set(results)
    assert results["world"]["queries"] == 24 and results["world"]["modalities"] == 2
    assert results["like_project"]["project"] == shaped.slug
    assert report.recommended_strategy == results["recommended"]
    # The cheapest within 1% of full; full always comes within it, so there is one.
    assert report.recommended_strategy in {"iso_anchor", "full"}
    assert report.estimated["relevant_share"] == pytest.approx(0.5)
    assert report.celery_task_id
    assert Project.objects.filter(slug__startswith="sim-").count() == 0, "worlds are removed"

    def must_not_run(*args, **kwargs):
        raise AssertionError("a done report is not simulated again")

    monkeypatch.setattr(simulator, "simulate", must_not_run)
    again = recommendation.run_project_simulation(report_id=report.pk)
    assert again.status == SimulationReport.Status.DONE and again.results == results


def test_a_second_simulation_is_refused_while_one_is_queued_or_running(shaped, lead):
    first = recommendation.queue_project_simulation(project=shaped, requested_by=lead)
    with pytest.raises(Conflict, match="already queued or running"):
        recommendation.queue_project_simulation(project=shaped, requested_by=lead)
    SimulationReport.objects.filter(pk=first.pk).update(status=SimulationReport.Status.RUNNING)
    with pytest.raises(Conflict):
        recommendation.queue_project_simulation(project=shaped, requested_by=lead)
    SimulationReport.objects.filter(pk=first.pk).update(status=SimulationReport.Status.DONE)
    second = recommendation.queue_project_simulation(project=shaped, requested_by=lead)
    assert second.status == SimulationReport.Status.QUEUED and second.pk != first.pk


def test_a_stale_open_report_no_longer_blocks_a_new_one(shaped, lead):
    first = recommendation.queue_project_simulation(project=shaped, requested_by=lead)
    long_ago = timezone.now() - recommendation.STALE_AFTER - timedelta(minutes=1)
    SimulationReport.objects.filter(pk=first.pk).update(updated_at=long_ago)
    recommendation.queue_project_simulation(project=shaped, requested_by=lead)
    first.refresh_from_db()
    assert first.status == SimulationReport.Status.FAILED and "two hours" in first.error


def test_a_failing_simulation_is_stored_as_failed_and_not_raised(shaped, lead, monkeypatch):
    def boom(plan, **kwargs):
        raise RuntimeError("the world could not be built")

    monkeypatch.setattr(simulator, "simulate", boom)
    services_log = logging.getLogger("active_selection.services")
    level = services_log.level
    report = recommendation.queue_project_simulation(project=shaped, requested_by=lead)
    recommendation.run_project_simulation(report_id=report.pk)  # does not raise
    report.refresh_from_db()
    assert report.status == SimulationReport.Status.FAILED
    assert report.error == "RuntimeError: the world could not be built"
    assert report.results is None and report.recommended_strategy == ""
    assert services_log.level == level
    recommendation.run_project_simulation(report_id=report.pk)  # a failed one is not re-run
    assert SimulationReport.objects.get(pk=report.pk).status == SimulationReport.Status.FAILED


def test_apply_sets_the_strategy_through_the_settings_path_and_only_once(project):
    project.strategy = Strategy.TOP_P
    project.save()
    report = recommendation.record_finished_simulation(
        project=project, results=simulation_results(), estimated={}
    )
    assert report.status == SimulationReport.Status.DONE and (
        report.runs_done,
        report.runs_total,
    ) == (12, 12)
    assert recommendation.apply_recommendation(project=project, report=report) == "iso_anchor"
    project.refresh_from_db()
    assert project.strategy == Strategy.ISO_ANCHOR
    with pytest.raises(Conflict, match="already uses"):
        recommendation.apply_recommendation(project=project, report=report)


def test_apply_refuses_reports_it_cannot_apply(project):
    other = Project.objects.create(slug="other", name="Other")
    theirs = recommendation.record_finished_simulation(
        project=other, results=simulation_results(), estimated={}
    )
    with pytest.raises(NotFound):
        recommendation.apply_recommendation(project=project, report=theirs)
    with pytest.raises(NotFound):
        recommendation.report_of(project=project, report_id=theirs.pk)
    running = SimulationReport.objects.create(project=project, status="running")
    with pytest.raises(Conflict, match="not finished"):
        recommendation.apply_recommendation(project=project, report=running)
    running.delete()
    nothing = recommendation.record_finished_simulation(
        project=project, results=simulation_results(recommended=None, full=0.75), estimated={}
    )
    assert nothing.recommended_strategy == ""
    with pytest.raises(Conflict, match="nothing to apply"):
        recommendation.apply_recommendation(project=project, report=nothing)
    older = SimulationReport.objects.create(
        project=project, status="done", recommended_strategy="top_p", results=simulation_results()
    )
    SimulationReport.objects.filter(pk=older.pk).update(
        created_at=timezone.now() - timedelta(days=1)
    )
    older.refresh_from_db()
    with pytest.raises(Conflict, match="newer simulation"):
        recommendation.apply_recommendation(project=project, report=older)
    assert Project.objects.get(pk=project.pk).strategy == Strategy.ISO_ANCHOR  # unchanged


def test_simulate_like_project_stores_a_done_report_and_prints_the_recommendation(shaped, tmp_path):
    shaped.strategy, shaped.budget_policy = Strategy.RANDOM, "per_query"
    shaped.save()
    out = io.StringIO()
    call_command(
        "simulate", "--like-project", shaped.slug, "--strategies", "top_p,full",
        "--budgets", "0.3,1.0", "--seeds", "1", "--epochs", "2",
        "--out", str(tmp_path / "r.json"), "--plot", str(tmp_path / "r.png"), stdout=out,
    )  # fmt: skip
    report = SimulationReport.objects.get(project=shaped)
    assert report.status == SimulationReport.Status.DONE and report.requested_by is None
    assert (report.runs_done, report.runs_total) == (4, 4)
    assert report.recommended_strategy in {"top_p", "full"}
    assert report.estimated["gold_queries"] == 6
    assert (
        json.loads((tmp_path / "r.json").read_text())["world"]["iso_anchor_policy"] == "per_query"
    )
    text = out.getvalue()
    assert f"Recommendation for '{shaped.slug}': use {report.recommended_strategy}" in text
    assert f"Stored as simulation report {report.pk}" in text


def test_a_report_recommends_a_strategy_within_one_percent_of_full_and_says_so(db):
    from active_selection.models import SimulationReport
    from active_selection.recommendation import recommended_in, report_summary
    from labeling.models import Project

    project = Project.objects.create(slug="near", name="Near", modalities=["text", "image"])
    rows = [
        {"strategy": s, "budget": b, "single_modal": True, "ndcg10_mean": n, "ndcg10_std": 0.0,
         "cost_fraction": b, "judgments": {}}
        for s, b, n in (("iso_anchor", 0.45, 0.887), ("top_p", 0.3, 0.880), ("full", 1.0, 0.8955))
    ]  # fmt: skip
    results = {
        "results": rows, "full_ndcg10": 0.8955, "baselines": {}, "near_full": 0.99,
        "cost_to_match_full": {"iso_anchor": None, "top_p": None, "full": 1.0},
        "cost_to_near_full": {"iso_anchor": 0.45, "top_p": None, "full": 1.0},
        "cheapest_to_match_full": "full", "recommended": "iso_anchor",
    }  # fmt: skip
    assert recommended_in(results) == "iso_anchor"
    assert recommended_in({"cheapest_to_match_full": "full"}) == "full"  # an older file
    report = SimulationReport.objects.create(
        project=project, status=SimulationReport.Status.DONE, results=results,
        recommended_strategy=recommended_in(results),
    )  # fmt: skip
    sentence = report_summary(report=report)["sentence"]
    assert "within 1% of full annotation's NDCG@10 (0.895) at 45% of its cost" in sentence
