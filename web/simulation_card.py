"""The "Simulate before spending" card of the lead's settings page: a simulation report as the
page shows it (the verdict, the chart of quality against cost, the rows, the world it ran on)."""

from __future__ import annotations

import math
from typing import Any

from active_selection import recommendation
from active_selection.models import SimulationReport
from labeling.models import Project

from . import charts

# Colours of the strategies, as in the simulator's PNG plot.
COLOURS = {"iso_anchor": "#dc2626", "top_p": "#2563eb", "random": "#16a34a", "full": "#111827"}


def report_summary(*, report: SimulationReport) -> dict[str, Any]:
    """What the settings page shows of a done report: the verdict (paired on the seeds, said
    against the project's current strategy), the chart with the spread over seeds, the rows."""
    results = report.results or {}
    full = results.get("full_ndcg10")

    def spread(row: dict) -> tuple[float | None, float | None]:
        values = [r["ndcg10"] for r in row.get("per_seed") or [] if r.get("ndcg10") is not None]
        return (min(values), max(values)) if len(values) > 1 else (None, None)

    rows = []
    for row in results.get("results", []):
        low, high = spread(row)
        rows.append(
            {
                "strategy": row["strategy"],
                "label": recommendation.strategy_label(row["strategy"])
                + ("" if row.get("single_modal", True) else " (single-modal off)"),
                "single_modal": row.get("single_modal", True),
                "budget": row["budget"],
                "cost_fraction": row["cost_fraction"],
                "cost_percent": recommendation.percent(row["cost_fraction"]),
                "ndcg10": row["ndcg10_mean"],
                "std": row.get("ndcg10_std"),
                "low": low,
                "high": high,
            }
        )
    measured = [r for r in rows if r["ndcg10"] is not None]
    said = recommendation.verdict(results=results, current=report.project.strategy)
    recommended = report.recommended_strategy
    sentence = said["sentence"]
    chart = None
    if measured:
        values = [r["ndcg10"] for r in measured] + ([full] if full is not None else [])
        values += [v for r in measured for v in (r["low"], r["high"]) if v is not None]
        low = max(0.0, math.floor((min(values) - 0.02) * 20) / 20)
        high = min(1.0, math.ceil((max(values) + 0.02) * 20) / 20)
        series = []
        for strategy in dict.fromkeys(r["strategy"] for r in measured):
            for single_modal in (True, False):
                mine = [
                    r
                    for r in measured
                    if r["strategy"] == strategy and r["single_modal"] == single_modal
                ]
                if mine:
                    label = strategy if single_modal else f"{strategy} (sm off)"
                    series.append(
                        charts.Series(
                            label,
                            [(r["cost_fraction"] * 100, r["ndcg10"]) for r in mine],
                            color=COLOURS.get(strategy),
                            is_dashed=not single_modal,
                            spread=[
                                (r["cost_fraction"] * 100, r["low"], r["high"])
                                for r in mine
                                if r["low"] is not None
                            ],
                        )
                    )
        chart = charts.lines_chart(
            series,
            references=[("full annotation", full)] if full is not None else [],
            title="NDCG@10 on held-out queries against cost: mean and range over seeds",
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
        "verdict": said,
        "chart": chart,
        "rows": rows,
        "full_ndcg10": full,
        "recommended": recommended,
        "recommended_label": recommendation.strategy_label(recommended) if recommended else "",
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
    bias = estimated.get("grade_bias") or {}
    if bias.get("source") == "calibration_check":
        simulated = bias.get("simulated") or {}
        note += "; grading bias from the project's calibration check: " + (
            ", ".join(f"{m} {b:+.1f}" for m, b in simulated.items())
            if simulated
            else "none told apart from 0"
        )
    elif bias.get("note"):
        note += f"; {bias['note']}"
    if world.get("iso_anchor_policy") == "per_query":
        note += "; iso_anchor under the project's budget policy, whole queries"
    seeds = world.get("seeds")
    return note + (f"; {seeds} seed{'s' if seeds != 1 else ''}." if seeds else ".")


def settings_card(*, project: Project) -> dict[str, Any]:
    """The "Simulate before spending" card of the settings page: the latest report in its state."""
    report = recommendation.latest_report(project=project)
    card: dict[str, Any] = {
        "report": report,
        "summary": None,
        "percent": 0,
        "estimate": recommendation.simulation_estimate(project=project),
        "max_minutes": recommendation.MAX_MINUTES,
    }
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
        if card["can_apply"]:
            card["apply_changes"] = recommendation.apply_changes(
                project=project, strategy=summary["recommended"]
            )
    return card
