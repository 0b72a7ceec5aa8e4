"""Simulate before spending, for the lead: a simulation shaped like the project, run by a worker
and stored as a SimulationReport; the strategy that reaches full annotation's quality cheapest,
shown on the settings page with its curve, and applied through the settings path."""

from __future__ import annotations

import logging
import math
import uuid
from dataclasses import replace
from datetime import timedelta
from typing import Any

from celery import signature
from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from labeling.errors import Conflict, NotFound, PagewiseError
from labeling.models import Project, Strategy, Task, TaskKind, TaskStatus
from labeling.services import update_project_settings
from ranking.services import json_safe

from . import simulator
from .models import SimulationReport
from .simulator.statistics import paired_interval

logger = logging.getLogger(__name__)

# The plan of a settings-page simulation: every strategy, six budgets, single-modal supervision on
# (what the product trains with), and as many seeds as fit the lead's time budget, at least
# MIN_SEEDS: each seed its own world and held-out queries, so strategies are compared paired on
# the same seeds and a difference is told from noise (one seed once recommended `random`, then
# `iso_anchor` minutes later, on the demo).
STRATEGIES: tuple[str, ...] = simulator.STRATEGIES
BUDGETS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
MIN_SEEDS = 5
MAX_SEEDS = 20
SEEDS = MIN_SEEDS
DEFAULT_MINUTES = 10
MAX_MINUTES = 240
# Seconds per run before the project has a simulation of its own to time (a rough prior: a small
# world's run on one busy core); once it has, its own seconds per run are used.
PRIOR_SECONDS_PER_RUN = 5.0
# Held-out queries per seed at least: a small project's few gold queries make a noisy measure.
MIN_HELDOUT = 20
TRAINING = simulator.TrainingSpec()
# A large project's query count is capped at the default world's (160), so it still finishes in
# minutes; what decides between strategies is kept: modalities, items per modality, band, costs,
# grade mix and upstream quality.
MAX_QUERIES = simulator.WorldSpec().queries
# A queued or running report untouched this long lost its worker or its message (progress is
# stored after every run): it no longer blocks a new simulation.
STALE_AFTER = timedelta(hours=2)


# --- plan and runs --------------------------------------------------------------------------


def seconds_per_run(*, project: Project) -> tuple[float, bool]:
    """(seconds one run took in the project's latest finished simulation, True), else the prior."""
    report = latest_report(project=project, status=SimulationReport.Status.DONE)
    seconds = (report.results or {}).get("seconds") if report else None
    if report and seconds and report.runs_total:
        return float(seconds) / report.runs_total, True
    return PRIOR_SECONDS_PER_RUN, False


def simulation_estimate(*, project: Project, minutes: float = DEFAULT_MINUTES) -> dict[str, Any]:
    """How many seeds fit `minutes` (at least MIN_SEEDS, at most MAX_SEEDS) and how long they are
    expected to take, said to the lead before the simulation starts."""
    per_run, measured = seconds_per_run(project=project)
    runs_per_seed = len(STRATEGIES) * len(BUDGETS)
    fit = int(minutes * 60 // (runs_per_seed * per_run)) if per_run > 0 else MAX_SEEDS
    seeds = min(max(fit, MIN_SEEDS), MAX_SEEDS)
    seconds = seeds * runs_per_seed * per_run
    return {
        "minutes": minutes,
        "seeds": seeds,
        "runs": seeds * runs_per_seed,
        "seconds_per_run": round(per_run, 2),
        "measured": measured,
        "expected_seconds": round(seconds),
        "expected_minutes": max(1, math.ceil(seconds / 60)),
        "over_budget": seconds > minutes * 60,
    }


def project_plan(
    *, project: Project, seeds: int = SEEDS
) -> tuple[simulator.SimulationPlan, dict[str, Any]]:
    """The plan of a settings-page simulation of `project`, and what its world took from it."""
    spec, estimated = simulator.world_like(project)
    if spec.queries > MAX_QUERIES:
        estimated["queries_capped_from"] = spec.queries
        spec = replace(
            spec,
            queries=MAX_QUERIES,
            heldout_queries=min(spec.heldout_queries, MAX_QUERIES // 4),
        )
    if spec.heldout_queries < MIN_HELDOUT:
        # More simulated held-out queries, the training queries kept as the project has them.
        estimated["heldout_raised_from"] = spec.heldout_queries
        spec = replace(
            spec,
            queries=spec.queries + MIN_HELDOUT - spec.heldout_queries,
            heldout_queries=MIN_HELDOUT,
        )
    estimated.update(
        queries=spec.queries,
        heldout_queries=spec.heldout_queries,
        modalities=spec.modalities,
        items_per_modality=spec.items_per_modality,
    )
    plan = simulator.SimulationPlan(
        strategies=STRATEGIES, budgets=BUDGETS, seeds=seeds, single_modal=(True,), world=spec,
        training=TRAINING, policy=project.budget_policy,
    )  # fmt: skip
    return plan, estimated


def runs_in(plan: simulator.SimulationPlan) -> int:
    return plan.seeds * len(plan.single_modal) * len(plan.strategies) * len(set(plan.budgets))


def _save(report_id: int, **fields: Any) -> None:
    # An update, not save(): a worker's progress never overwrites fields it did not set.
    SimulationReport.objects.filter(pk=report_id).update(**fields, updated_at=timezone.now())


def _expire_stale(project: Project) -> None:
    SimulationReport.objects.filter(
        project=project,
        status__in=SimulationReport.OPEN,
        updated_at__lt=timezone.now() - STALE_AFTER,
    ).update(
        status=SimulationReport.Status.FAILED,
        error="No worker reported progress for two hours; run it again.",
        updated_at=timezone.now(),
    )


# --- services -------------------------------------------------------------------------------


@transaction.atomic
def queue_project_simulation(
    *, project: Project, requested_by, minutes: float = DEFAULT_MINUTES
) -> SimulationReport:
    """Store a queued report and queue its simulation after the commit.

    Locks the project row, so two leads pressing Run at once queue one simulation; the database's
    one-open-report-per-project constraint holds even without the lock.
    """
    Project.objects.select_for_update(no_key=True).filter(pk=project.pk).first()
    _expire_stale(project)
    if SimulationReport.objects.filter(project=project, status__in=SimulationReport.OPEN).exists():
        raise Conflict(
            "A simulation of this project is already queued or running; its progress is shown "
            "below."
        )
    task_id = str(uuid.uuid4())
    try:
        with transaction.atomic():
            estimate = simulation_estimate(project=project, minutes=minutes)
            report = SimulationReport.objects.create(
                project=project, requested_by=requested_by, celery_task_id=task_id,
                estimated={"plan": estimate}, runs_total=estimate["runs"],
            )  # fmt: skip
    except IntegrityError:
        raise Conflict("A simulation of this project is already queued or running.") from None

    # Named, not imported: active_selection.tasks runs this module's work (`run_project_simulation`).
    simulate = signature("active_selection.tasks.simulate_project", args=(report.pk,))
    transaction.on_commit(lambda: simulate.apply_async(task_id=task_id))
    return report


def run_project_simulation(*, report_id: int) -> SimulationReport | None:
    """Run a queued report's simulation, storing its progress after every run, then its results
    and recommendation. Safe to run twice: a done or failed report is left as it is (a running
    one is run again from the start: its worker died). A failure is stored on the report, never
    raised, so that Celery does not run it again and again.
    """
    claimed = SimulationReport.objects.filter(
        pk=report_id, status__in=SimulationReport.OPEN
    ).update(status=SimulationReport.Status.RUNNING, runs_done=0, updated_at=timezone.now())
    report = SimulationReport.objects.select_related("project").filter(pk=report_id).first()
    if not claimed or report is None:
        return report
    # simulate() quiets the services' expected warnings (re-asked comparisons) for the process;
    # a worker goes on serving the real loop afterwards, so the level is put back.
    services_log = logging.getLogger("active_selection.services")
    level = services_log.level
    try:
        planned = (report.estimated or {}).get("plan") or {}
        plan, estimated = project_plan(project=report.project, seeds=planned.get("seeds", SEEDS))
        estimated["plan"] = planned
        total = runs_in(plan)
        _save(report_id, estimated=json_safe(estimated), runs_total=total)
        results = simulator.simulate(
            plan,
            progress=lambda line: logger.info("simulation %s: %s", report_id, line),
            on_run=lambda done, runs_total: _save(report_id, runs_done=done, runs_total=runs_total),
        )
    except Exception as exc:
        logger.exception("simulation report %s failed", report_id)
        message = f"{type(exc).__name__}: {exc}"
        _save(report_id, status=SimulationReport.Status.FAILED, error=message[:2000])
    else:
        results["like_project"] = {"project": report.project.slug, "estimated": estimated}
        _save(
            report_id, status=SimulationReport.Status.DONE, results=json_safe(results),
            recommended_strategy=recommended_in(results), runs_done=total, runs_total=total,
        )  # fmt: skip
    finally:
        services_log.setLevel(level)
    report.refresh_from_db()
    return report


def record_finished_simulation(
    *, project: Project, results: dict, estimated: dict | None
) -> SimulationReport:
    """Store a simulation run elsewhere (`manage.py simulate --like-project`) as a done report, so
    the lead's settings page shows it."""
    runs = sum(int(row.get("seeds", 1)) for row in results.get("results", []))
    return SimulationReport.objects.create(
        project=project, status=SimulationReport.Status.DONE, runs_done=runs, runs_total=runs,
        results=json_safe(results), estimated=json_safe(estimated or {}),
        recommended_strategy=recommended_in(results),
    )  # fmt: skip


def recommended_in(results: dict) -> str:
    """The strategy a results file recommends: only one whose paired difference with full
    annotation, over the seeds, shows it reaches full's quality (`verdict`); never one picked
    from the noise of a single seed."""
    return verdict(results=results)["recommended"]


def apply_recommendation(*, project: Project, report: SimulationReport) -> str:
    """Set the project's strategy to the one the report recommends, through the settings path
    (`labeling.services.update_project_settings`: its checks and its row lock). Returns it."""
    if report.project_id != project.pk:
        raise NotFound(f"No simulation report {report.pk} in '{project.name}'.")
    if report.status != SimulationReport.Status.DONE:
        raise Conflict("This simulation has not finished; its recommendation can be applied then.")
    strategy = report.recommended_strategy
    if not strategy:
        raise Conflict(
            "No strategy reached full annotation's quality in this simulation; there is nothing "
            "to apply."
        )
    latest = latest_report(project=project, status=SimulationReport.Status.DONE)
    if latest is not None and latest.pk != report.pk:
        raise Conflict(
            "A newer simulation of this project has finished; reload the page to apply it."
        )
    label = Strategy(strategy).label
    if project.strategy == strategy:
        raise Conflict(f"'{project.name}' already uses {label}.")
    try:
        update_project_settings(project=project, changes={"strategy": strategy})
    except ValidationError as exc:
        raise PagewiseError(
            "The project's settings are not valid; fix them in the form first.",
            fields=getattr(exc, "message_dict", {}),
        ) from None
    return strategy


# --- selectors ------------------------------------------------------------------------------


def latest_report(*, project: Project, status: str | None = None) -> SimulationReport | None:
    reports = SimulationReport.objects.filter(project=project)
    if status is not None:
        reports = reports.filter(status=status)
    return reports.select_related("requested_by").order_by("-created_at", "-pk").first()


def report_of(*, project: Project, report_id: int) -> SimulationReport:
    report = SimulationReport.objects.filter(project=project, pk=report_id).first()
    if report is None:
        raise NotFound(f"No simulation report {report_id} in '{project.name}'.")
    return report


def strategy_label(strategy: str) -> str:
    return Strategy(strategy).label if strategy in Strategy.values else strategy


def percent(fraction: float) -> str:
    return f"{fraction:.0%}" if fraction >= 0.01 else f"{fraction:.1%}"


def apply_changes(*, project: Project, strategy: str) -> list[str]:
    """What applying `strategy` changes, in plain words, for the confirmation the lead sees."""
    open_tasks = Task.objects.filter(
        project=project, status__in=[TaskStatus.OPEN, TaskStatus.LEASED]
    )
    pages = open_tasks.filter(kind=TaskKind.GRADE_PAGE).count()
    compares = open_tasks.count() - pages
    changes = [
        f"The strategy changes from {strategy_label(project.strategy)} to {strategy_label(strategy)}."
    ]
    if pages or compares:
        changes.append(
            f"The {pages} open page{'s' if pages != 1 else ''} and {compares} open "
            f"comparison{'s' if compares != 1 else ''} stay open and are judged as they are; "
            "nothing already judged is lost."
        )
    else:
        changes.append("No task is open, so none is affected.")
    if strategy != Strategy.ISO_ANCHOR and project.strategy == Strategy.ISO_ANCHOR:
        changes.append("No new anchor search starts; the searches already open finish.")
    changes.append(
        f"Pages planned from now on follow {strategy_label(strategy)}, within the budget left."
    )
    return changes


def report_status(*, project: Project) -> dict[str, Any]:
    """The latest report's progress, for the settings page's poll."""
    report = latest_report(project=project)
    if report is None:
        return {"report": None, "status": None, "runs_done": 0, "runs_total": 0}
    return {
        "report": report.pk,
        "status": report.status,
        "runs_done": report.runs_done,
        "runs_total": report.runs_total,
    }


# --- savings --------------------------------------------------------------------------------


def full_fraction_to_reach(*, results: dict, quality: float) -> dict[str, Any] | None:
    """What share of grading every training item full annotation needed, in a simulation, to
    reach `quality` (NDCG@10), seed by seed: on each seed's curve of `full` (single-modal on),
    the cost fraction where it first reaches the quality, interpolated linearly between the two
    budgets around it. None when the results hold no curve of full annotation.

    {"seeds", "reached" (seeds whose curve reaches it), "mean", "low", "high" (over the seeds
    that reach it), "best" (full's highest NDCG@10 in any seed)}.
    """
    curves: dict[int, list[tuple[float, float]]] = {}
    for row in results.get("results") or []:
        if row.get("strategy") != "full" or not row.get("single_modal", True):
            continue
        # Files without per-seed scores hold one curve: their means.
        runs = row.get("per_seed") or [{"seed": 0, "ndcg10": row.get("ndcg10_mean")}]
        for run in runs:
            if run.get("ndcg10") is not None:
                curves.setdefault(run["seed"], []).append((row["cost_fraction"], run["ndcg10"]))
    if not curves:
        return None
    fractions = []
    for points in curves.values():
        points.sort()
        previous = (0.0, None)
        for fraction, ndcg in points:
            if ndcg >= quality:
                before, before_ndcg = previous
                if before_ndcg is None or ndcg == before_ndcg:
                    fractions.append(fraction)
                else:
                    share = (quality - before_ndcg) / (ndcg - before_ndcg)
                    fractions.append(before + max(0.0, share) * (fraction - before))
                break
            previous = (fraction, ndcg)
    best = max(ndcg for points in curves.values() for _, ndcg in points)
    return {
        "seeds": len(curves),
        "reached": len(fractions),
        "mean": sum(fractions) / len(fractions) if fractions else None,
        "low": min(fractions, default=None),
        "high": max(fractions, default=None),
        "best": best,
    }


# --- the verdict: paired on the same seeds, never a winner from noise --------------------------


def _per_seed(results: dict) -> tuple[dict[tuple[str, float], dict[int, float]], dict]:
    """NDCG@10 per (strategy, budget) and seed (single-modal on), and each cell's cost fraction."""
    scores: dict[tuple[str, float], dict[int, float]] = {}
    cost: dict[tuple[str, float], float] = {}
    for row in results.get("results") or []:
        if not row.get("single_modal", True):
            continue
        key = (row["strategy"], float(row["budget"]))
        cost[key] = row["cost_fraction"]
        runs = row.get("per_seed") or [{"seed": 0, "ndcg10": row.get("ndcg10_mean")}]
        scores[key] = {
            run["seed"]: run["ndcg10"]
            for run in runs
            if run.get("ndcg10") is not None and not math.isnan(run["ndcg10"])
        }
    return scores, cost


def _diff(a: dict[int, float], b: dict[int, float]) -> list[float]:
    return [a[seed] - b[seed] for seed in sorted(set(a) & set(b))]


def verdict(*, results: dict, current: str | None = None) -> dict[str, Any]:
    """What a simulation can say, paired on the same seeds (each seed its own world):

    - "reaches": the cheapest (strategy, budget) whose paired difference with full annotation
      (every item graded) has a 95% interval whose low end is within NEAR_FULL of full's NDCG@10
      (non-inferiority): "X reaches full annotation's quality at N% of its cost (...)";
    - "beats": none does, but a strategy is better than `current` (the project's strategy) at some
      budget with an interval above 0;
    - "indistinguishable": "no strategy is distinguishable from Y within the noise of this
      project" (Y: the project's strategy, or the best mean);
    - "one_seed" / "no_full": nothing can be said.
    Only "reaches" recommends a strategy.
    """
    scores, cost = _per_seed(results)
    full = scores.get(("full", 1.0), {})
    seeds = max((len(v) for v in scores.values()), default=0)
    base = {"recommended": "", "seeds": seeds, "difference": None}
    if not full:
        return {**base, "kind": "no_full", "sentence": (
            "Full annotation's quality could not be measured, so nothing is recommended.")}  # fmt: skip
    if len(full) < 2:
        return {**base, "kind": "one_seed", "sentence": (
            "One seed cannot tell a difference from noise: nothing is recommended. Run it with "
            "more seeds.")}  # fmt: skip
    full_mean = sum(full.values()) / len(full)
    tolerance = (1 - simulator.NEAR_FULL) * full_mean
    candidates = []
    for (strategy, budget), by_seed in scores.items():
        if (strategy, budget) == ("full", 1.0):
            continue
        diffs = _diff(by_seed, full)
        if len(diffs) < 2:
            continue
        interval = paired_interval(diffs)
        if interval["low"] >= -tolerance:
            candidates.append((cost[(strategy, budget)], -interval["mean"], strategy, interval))
    if candidates:
        fraction, _, strategy, interval = min(candidates, key=lambda c: c[:3])
        return {
            **base, "kind": "reaches", "recommended": strategy, "difference": interval,
            "cost_fraction": fraction,
            "sentence": (
                f"{strategy_label(strategy)} reaches full annotation's quality at {percent(fraction)} of "
                f"its cost (paired difference {interval['mean']:+.3f} NDCG@10, 95% interval "
                f"{interval['low']:+.3f} to {interval['high']:+.3f}, over {interval['seeds']} "
                f"seeds; within {1 - simulator.NEAR_FULL:.0%} of full's {full_mean:.3f})."
            ),
        }  # fmt: skip
    strategies = sorted({s for s, _ in scores})
    budgets = sorted({b for _, b in scores if b < 1.0})
    if current not in strategies:
        means = {
            s: sum(sum(scores[(s, b)].values()) / len(scores[(s, b)]) for b in budgets
                   if scores.get((s, b))) for s in strategies
        }  # fmt: skip
        current = max(means, key=lambda s: means[s]) if means else strategies[0]
    better = []
    worse = 0
    widest = 0.0
    for budget in budgets:
        mine = scores.get((current, budget))
        if not mine:
            continue
        for other in strategies:
            theirs = scores.get((other, budget))
            if other == current or not theirs or len(_diff(theirs, mine)) < 2:
                continue
            interval = paired_interval(_diff(theirs, mine))
            widest = max(widest, interval["high"] - interval["low"])
            if interval["low"] > 0:
                better.append((budget, other, interval))
            elif interval["high"] < 0:
                worse += 1
    if better:
        budget, other, interval = max(better, key=lambda b: b[2]["low"])
        return {
            **base, "kind": "beats", "difference": interval,
            "sentence": (
                f"None reaches full annotation's quality below its full cost within the noise of "
                f"this project; {strategy_label(other)} beats {strategy_label(current)} at budget "
                f"{percent(budget)} by {interval['mean']:+.3f} NDCG@10 (95% interval "
                f"{interval['low']:+.3f} to {interval['high']:+.3f}, {interval['seeds']} seeds)."
            ),
        }  # fmt: skip
    if worse:
        return {
            **base, "kind": "not_beaten",
            "sentence": (
                f"No strategy does better than {strategy_label(current)} within the noise of this project "
                f"({seeds} seeds, paired), and none reaches full annotation's quality below its "
                "full cost."
            ),
        }  # fmt: skip
    return {
        **base, "kind": "indistinguishable",
        "sentence": (
            f"No strategy is distinguishable from {strategy_label(current)} within the noise of this "
            f"project ({seeds} seeds; paired 95% intervals up to {widest:.3f} NDCG@10 wide), and "
            "none reaches full annotation's quality below its full cost."
        ),
    }  # fmt: skip
