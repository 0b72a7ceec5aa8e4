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

from django.core.exceptions import ValidationError
from django.db import IntegrityError, transaction
from django.utils import timezone

from labeling.errors import Conflict, NotFound, PagewiseError
from labeling.models import Project, Strategy
from ranking.services import json_safe

from . import simulator
from .models import SimulationReport

logger = logging.getLogger(__name__)

# The plan of a settings-page simulation: every strategy, six budgets, one seed, single-modal
# supervision on (what the product trains with). One seed keeps it to a few minutes on 2 cores;
# the curve is then one draw, not a mean, which the page says.
STRATEGIES: tuple[str, ...] = simulator.STRATEGIES
BUDGETS: tuple[float, ...] = (0.05, 0.1, 0.2, 0.3, 0.5, 1.0)
SEEDS = 1
TRAINING = simulator.TrainingSpec()
# A large project's query count is capped at the default world's (160), so it still finishes in
# minutes; what decides between strategies is kept: modalities, items per modality, band, costs,
# grade mix and upstream quality.
MAX_QUERIES = simulator.WorldSpec().queries
# A queued or running report untouched this long lost its worker or its message (progress is
# stored after every run): it no longer blocks a new simulation.
STALE_AFTER = timedelta(hours=2)

# Colours of the strategies, as in the simulator's PNG plot.
COLOURS = {"iso_anchor": "#dc2626", "top_p": "#2563eb", "random": "#16a34a", "full": "#111827"}


# --- plan and runs --------------------------------------------------------------------------


def project_plan(*, project: Project) -> tuple[simulator.SimulationPlan, dict[str, Any]]:
    """The plan of a settings-page simulation of `project`, and what its world took from it."""
    spec, estimated = simulator.world_like(project)
    if spec.queries > MAX_QUERIES:
        estimated["queries_capped_from"] = spec.queries
        spec = replace(
            spec,
            queries=MAX_QUERIES,
            heldout_queries=min(spec.heldout_queries, MAX_QUERIES // 4),
        )
    estimated.update(
        queries=spec.queries,
        heldout_queries=spec.heldout_queries,
        modalities=spec.modalities,
        items_per_modality=spec.items_per_modality,
    )
    plan = simulator.SimulationPlan(
        strategies=STRATEGIES, budgets=BUDGETS, seeds=SEEDS, single_modal=(True,), world=spec,
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
def queue_project_simulation(*, project: Project, requested_by) -> SimulationReport:
    """Store a queued report and queue its simulation after the commit.

    Locks the project row, so two leads pressing Run at once queue one simulation; the database's
    one-open-report-per-project constraint holds even without the lock.
    """
    Project.objects.select_for_update().filter(pk=project.pk).first()
    _expire_stale(project)
    if SimulationReport.objects.filter(project=project, status__in=SimulationReport.OPEN).exists():
        raise Conflict(
            "A simulation of this project is already queued or running; its progress is shown "
            "below."
        )
    task_id = str(uuid.uuid4())
    try:
        with transaction.atomic():
            report = SimulationReport.objects.create(
                project=project, requested_by=requested_by, celery_task_id=task_id
            )
    except IntegrityError:
        raise Conflict("A simulation of this project is already queued or running.") from None

    from . import tasks

    transaction.on_commit(lambda: tasks.simulate_project.apply_async((report.pk,), task_id=task_id))
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
        plan, estimated = project_plan(project=report.project)
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
    """The strategy a results file recommends (the cheapest within `simulator.NEAR_FULL` of full
    annotation's NDCG@10); files written before that field fall back to the strict match."""
    if "recommended" in results:
        return results["recommended"] or ""
    return results.get("cheapest_to_match_full") or ""


def apply_recommendation(*, project: Project, report: SimulationReport) -> str:
    """Set the project's strategy to the one the report recommends, through the settings path
    (`labeling.dashboard.update_project_settings`: its checks and its row lock). Returns it."""
    from labeling import dashboard

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
        dashboard.update_project_settings(project=project, changes={"strategy": strategy})
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


def _label(strategy: str) -> str:
    return Strategy(strategy).label if strategy in Strategy.values else strategy


def _percent(fraction: float) -> str:
    return f"{fraction:.0%}" if fraction >= 0.01 else f"{fraction:.1%}"


def report_summary(*, report: SimulationReport) -> dict[str, Any]:
    """What the settings page shows of a done report: the sentence, the chart, the table rows."""
    from labeling import charts

    results = report.results or {}
    full = results.get("full_ndcg10")
    rows = [
        {
            "strategy": row["strategy"],
            "label": _label(row["strategy"])
            + ("" if row.get("single_modal", True) else " (single-modal off)"),
            "single_modal": row.get("single_modal", True),
            "budget": row["budget"],
            "cost_fraction": row["cost_fraction"],
            "cost_percent": _percent(row["cost_fraction"]),
            "ndcg10": row["ndcg10_mean"],
        }
        for row in results.get("results", [])
    ]
    measured = [r for r in rows if r["ndcg10"] is not None]
    recommended = report.recommended_strategy
    others = [r for r in measured if r["strategy"] != "full" and r["single_modal"]]
    closest = max(others, key=lambda r: (r["ndcg10"], -r["cost_fraction"]), default=None)
    closest_text = (
        f"closest: {closest['label']}, {closest['ndcg10']:.3f} at {closest['cost_percent']} of "
        "its cost."
        if closest
        else ""
    )
    if recommended:
        strict = (results.get("cost_to_match_full") or {}).get(recommended)
        near = (results.get("cost_to_near_full") or {}).get(recommended)
        if strict is not None and (near is None or strict <= near):
            sentence = (
                f"{_label(recommended)} reaches full annotation's quality at "
                f"{_percent(strict)} of its cost."
            )
        else:
            share = results.get("near_full", simulator.NEAR_FULL)
            sentence = (
                f"{_label(recommended)} comes within {_percent(1 - share)} of full annotation's "
                f"NDCG@10 ({full:.3f}) at {_percent(near or 0.0)} of its cost."
            )
        if recommended == "full" and closest:
            sentence += f" No cheaper strategy matched it; {closest_text}"
    elif full is None:
        sentence = "Full annotation's quality could not be measured, so nothing is recommended."
    else:
        sentence = (
            f"No strategy reached full annotation's NDCG@10 ({full:.3f}) at the budgets tried"
            + (f"; {closest_text}" if closest else ".")
        )
    chart = None
    if measured:
        values = [r["ndcg10"] for r in measured] + ([full] if full is not None else [])
        low = max(0.0, math.floor((min(values) - 0.02) * 20) / 20)
        high = min(1.0, math.ceil((max(values) + 0.02) * 20) / 20)
        series = []
        for strategy in dict.fromkeys(r["strategy"] for r in measured):
            for single_modal in (True, False):
                points = [
                    (r["cost_fraction"] * 100, r["ndcg10"])
                    for r in measured
                    if r["strategy"] == strategy and r["single_modal"] == single_modal
                ]
                if points:
                    label = strategy if single_modal else f"{strategy} (sm off)"
                    series.append(
                        charts.Series(
                            label, points, color=COLOURS.get(strategy), is_dashed=not single_modal
                        )
                    )
        chart = charts.lines_chart(
            series,
            references=[("full annotation", full)] if full is not None else [],
            title="NDCG@10 on held-out queries against cost, one line per strategy",
            x_label="Cost, % of grading every training item",
            y_label="NDCG@10",
            x_unit="%",
            x_max=100.0,
            y_range=(low, high if high > low else low + 0.1),
        )
    world = results.get("world") or {}
    return {
        "world_note": _world_note(world, report.estimated or {}),
        "sentence": sentence,
        "chart": chart,
        "rows": rows,
        "full_ndcg10": full,
        "recommended": recommended,
        "recommended_label": _label(recommended) if recommended else "",
        "seeds": world.get("seeds"),
        "world": world,
        "seconds": results.get("seconds"),
    }


def _world_note(world: dict, estimated: dict) -> str:
    if not world:
        return ""
    note = (
        f"Simulated on {world.get('queries')} queries ({world.get('heldout_queries')} held out), "
        f"{world.get('modalities')} modalities × {world.get('items_per_modality')} items"
    )
    if estimated.get("queries_capped_from"):
        note += f" (the project's {estimated['queries_capped_from']} queries capped)"
    if "relevant_share" in estimated:
        note += (
            f"; from the grades of {estimated.get('gold_queries')} gold queries: relevant share "
            f"{world.get('relevant_share', 0):.2f}, upstream tau {world.get('upstream_tau', 0):.2f}"
        )
        if estimated.get("tau_b_against_gold_grades") is None:
            note += " (a prior: too few graded items per list to measure it)"
        if estimated.get("embedding_noise") is not None:
            note += f", embedding noise {estimated['embedding_noise']:.2f}"
        else:
            note += ", embedding noise a prior (no embedded gold items)"
    else:
        note += (
            "; no graded gold items yet, so the grade mix, upstream quality and embedding noise "
            "are priors"
        )
    if world.get("iso_anchor_policy") == "per_query":
        note += "; iso_anchor under the project's budget policy, whole queries"
    seeds = world.get("seeds")
    return note + (f"; {seeds} seed{'s' if seeds != 1 else ''}." if seeds else ".")


def settings_card(*, project: Project) -> dict[str, Any]:
    """The "Simulate before spending" card of the settings page: the latest report in its state."""
    report = latest_report(project=project)
    card: dict[str, Any] = {"report": report, "summary": None, "percent": 0}
    if report is None:
        return card
    if report.runs_total:
        card["percent"] = round(100 * report.runs_done / report.runs_total)
    if report.status == SimulationReport.Status.DONE:
        summary = report_summary(report=report)
        card["summary"] = summary
        card["is_applied"] = (
            bool(summary["recommended"]) and project.strategy == summary["recommended"]
        )
        card["can_apply"] = bool(summary["recommended"]) and not card["is_applied"]
    return card


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
