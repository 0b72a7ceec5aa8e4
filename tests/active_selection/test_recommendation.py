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
from web import simulation_card


@pytest.fixture
def shaped(project):
    return shaped_project(project)


@pytest.fixture
def tiny_plan(monkeypatch):
    """Two strategies, two budgets, two epochs: the settings-page plan, small enough for a test."""
    monkeypatch.setattr(recommendation, "STRATEGIES", ("iso_anchor", "full"))
    monkeypatch.setattr(recommendation, "BUDGETS", (0.3, 1.0))
    monkeypatch.setattr(recommendation, "TRAINING", simulator.TrainingSpec(epochs=2))
    # Two seeds (the least that pair), whatever the time budget: a test's worlds are tiny.
    monkeypatch.setattr(recommendation, "MIN_SEEDS", 2)
    monkeypatch.setattr(recommendation, "PRIOR_SECONDS_PER_RUN", 600.0)


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


def _calibration(project, reference, **estimates):
    from active_selection.models import CalibrationCheck

    return CalibrationCheck.objects.create(
        project=project,
        reference_modality=reference,
        estimates={
            m: {"offset": o, "low": lo, "high": hi, "n": 12, "correction": round(o)}
            for m, (o, lo, hi) in estimates.items()
        },
        comparisons=12,
    )


def test_world_like_simulates_the_grading_bias_the_calibration_check_measured(shaped):
    spec, estimated = simulator.world_like(shaped)
    assert spec.grade_bias == () and estimated["grade_bias"]["source"] == "none"
    _calibration(shaped, "text", image=(0.8, 0.4, 1.2))
    spec, estimated = simulator.world_like(shaped)
    assert spec.grade_bias == (("image", 0.8),)
    assert estimated["grade_bias"]["simulated"] == {"image": 0.8}
    note = simulation_card._world_note({"queries": 24, "heldout_queries": 6}, estimated)
    assert "grading bias from the project's calibration check: image +0.8" in note


def test_world_like_never_invents_a_bias_the_check_could_not_tell_from_zero(shaped):
    _calibration(shaped, "text", image=(0.3, -0.2, 0.8))
    spec, estimated = simulator.world_like(shaped)
    assert spec.grade_bias == ()
    assert estimated["grade_bias"]["measured"]["image"]["offset"] == 0.3
    _calibration(shaped, "image", text=(-1.0, -1.4, -0.6))  # another reference: not mapped
    spec, estimated = simulator.world_like(shaped)
    assert spec.grade_bias == () and "against image" in estimated["grade_bias"]["note"]


def test_the_plan_caps_a_large_project_s_queries_and_keeps_its_shape(shaped, monkeypatch):
    monkeypatch.setattr(recommendation, "MAX_QUERIES", 16)
    monkeypatch.setattr(recommendation, "MIN_HELDOUT", 4)  # the cap's own share, not raised
    plan, estimated = recommendation.project_plan(project=shaped)
    assert (plan.world.queries, plan.world.heldout_queries) == (16, 4)
    assert estimated["queries_capped_from"] == 24
    assert (plan.world.modalities, plan.world.items_per_modality) == (2, 4)
    assert list(plan.strategies) == list(simulator.STRATEGIES)
    assert list(plan.budgets) == [0.05, 0.1, 0.2, 0.3, 0.5, 1.0]
    assert (plan.seeds, list(plan.single_modal)) == (5, [True])
    assert recommendation.runs_in(plan) == 5 * 24
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
    assert (report.runs_done, report.runs_total) == (8, 8)  # 2 seeds x 2 strategies x 2 budgets
    assert [f["runs_done"] for f in saved if "runs_done" in f and "status" not in f] == [
        1, 2, 3, 4, 5, 6, 7, 8,
    ]  # fmt: skip
    assert report.estimated["plan"]["seeds"] == 2
    results = report.results
    assert {"world", "full_ndcg10", "results", "cost_to_match_full"} <= set(results)
    # The project's 6 gold queries are too few to measure on: 20 simulated held-out queries.
    assert results["world"]["heldout_queries"] == 20 and results["world"]["modalities"] == 2
    assert report.estimated["heldout_raised_from"] == 6
    assert results["like_project"]["project"] == shaped.slug
    assert report.recommended_strategy == recommendation.recommended_in(results)
    assert report.recommended_strategy in {"", "iso_anchor", "full"}
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
    ) == (60, 60)  # 12 cells x 5 seeds
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
    # One seed cannot tell a difference from noise: nothing is recommended, and it says so.
    assert report.recommended_strategy == ""
    assert report.estimated["gold_queries"] == 6
    assert (
        json.loads((tmp_path / "r.json").read_text())["world"]["iso_anchor_policy"] == "per_query"
    )
    text = out.getvalue()
    assert f"Recommendation for '{shaped.slug}': none (keep random)." in text
    assert "One seed cannot tell a difference from noise" in text
    assert f"Stored as simulation report {report.pk}" in text


def _results(per_seed: dict[tuple[str, float], list[float]]) -> dict:
    """Results rows with per-seed NDCG@10 (cost fraction = budget)."""
    return {
        "results": [
            {"strategy": s, "budget": b, "single_modal": True, "cost_fraction": b,
             "ndcg10_mean": sum(v) / len(v),
             "per_seed": [{"seed": i, "ndcg10": x} for i, x in enumerate(v)]}
            for (s, b), v in per_seed.items()
        ]
    }  # fmt: skip


def test_the_verdict_needs_the_paired_interval_to_say_a_strategy_reaches_full():
    from active_selection.recommendation import paired_interval, verdict

    worlds = [0.80, 0.86, 0.90, 0.84, 0.88]  # full annotation's NDCG@10 on five seeds' worlds
    full = {("full", 1.0): worlds}
    # top_p tracks full within 0.002 on every seed at 20%: it reaches full's quality there.
    close = {("top_p", 0.2): [w - 0.002 + 0.001 * (i % 2) for i, w in enumerate(worlds)]}
    said = verdict(results=_results({**full, **close}), current="iso_anchor")
    assert said["kind"] == "reaches" and said["recommended"] == "top_p"
    assert said["difference"]["low"] > -0.0086 and said["difference"]["seeds"] == 5
    assert said["sentence"].startswith(
        "Grade the top band of each modality reaches full annotation's quality at 20% of its "
        "cost (paired difference -0.002 NDCG@10, 95% interval"
    )
    # The same mean difference, but noisy seed to seed: its interval reaches below 1% of full.
    noisy = {("top_p", 0.2): [w + d for w, d in zip(worlds, [-0.05, 0.04, -0.03, 0.05, -0.02], strict=True)]}  # fmt: skip
    said = verdict(results=_results({**full, **noisy}), current="top_p")
    assert said["recommended"] == "" and said["kind"] in ("indistinguishable", "not_beaten")
    # Noise never picks a winner: a mean ahead by 0.004 within a wide interval is no winner.
    rivals = {
        ("top_p", 0.1): [w - 0.05 for w in worlds],
        ("random", 0.1): [w - 0.05 + d for w, d in zip(worlds, [0.03, -0.02, 0.01, -0.03, 0.03], strict=True)],
    }  # fmt: skip
    said = verdict(results=_results({**full, **rivals}), current="top_p")
    assert said["kind"] == "indistinguishable" and said["recommended"] == ""
    assert said["sentence"].startswith(
        "No strategy is distinguishable from Grade the top band of each modality within the "
        "noise of this project (5 seeds"
    )
    # One seed says nothing.
    single = verdict(results=_results({("full", 1.0): [0.9], ("top_p", 0.2): [0.95]}))
    assert single["kind"] == "one_seed" and single["recommended"] == ""
    interval = paired_interval([0.01, 0.03])
    assert interval["mean"] == pytest.approx(0.02)
    assert interval["high"] - interval["low"] == pytest.approx(2 * 12.706 * 0.01414213 / 1.41421356)


def test_the_time_budget_decides_the_seeds_and_the_card_says_how_long(db, project):
    estimate = recommendation.simulation_estimate(project=project, minutes=10)
    runs_per_seed = len(recommendation.STRATEGIES) * len(recommendation.BUDGETS)
    assert estimate["seeds"] == max(5, int(600 // (runs_per_seed * 5.0)))
    assert estimate["measured"] is False and estimate["expected_minutes"] >= 1
    assert recommendation.simulation_estimate(project=project, minutes=1)["seeds"] == 5
    assert recommendation.simulation_estimate(project=project, minutes=1)["over_budget"]
    long = recommendation.simulation_estimate(project=project, minutes=240)
    assert long["seeds"] == recommendation.MAX_SEEDS
    # Once the project has a simulation of its own, its seconds per run are used.
    SimulationReport.objects.create(
        project=project, status="done", results={"seconds": 240.0}, runs_done=24, runs_total=24
    )
    measured = recommendation.simulation_estimate(project=project, minutes=10)
    assert measured["measured"] and measured["seconds_per_run"] == 10.0
    assert measured["seeds"] == 5 and measured["expected_minutes"] == 20
