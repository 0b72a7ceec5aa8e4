"""python manage.py simulate: run the selection strategies through the real loop over a generated
world with known truth, and report which reaches the quality of full annotation cheapest."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from active_selection import recommendation, simulator
from labeling.models import Project


def _floats(text: str) -> list[float]:
    try:
        return [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise CommandError(f"not a comma-separated list of numbers: {text!r}") from exc


def _switches(text: str) -> list[bool]:
    values = {"on": True, "off": False, "true": True, "false": False}
    try:
        return list(dict.fromkeys(values[part.strip().lower()] for part in text.split(",")))
    except KeyError as exc:
        raise CommandError(f"--single-modal takes on, off or on,off; not {text!r}") from exc


def _grade_bias(text: str, modality_names: list[str]) -> tuple[tuple[str, float], ...]:
    """`image=+1,text=0`, or one number: the bias of the second modality (image), the first one
    that is not the reference of calibration and of the searches (the first modality, text)."""
    text = text.strip()
    try:
        if "=" not in text:
            if len(modality_names) < 2:
                raise CommandError(
                    "--grade-bias as one number needs a world of 2 modalities or more"
                )
            pairs = [(modality_names[1], float(text))]
        else:
            pairs = []
            for part in text.split(","):
                name, _, value = part.partition("=")
                pairs.append((name.strip(), float(value)))
    except ValueError as exc:
        raise CommandError(
            f"--grade-bias takes MODALITY=GRADES[,...] or one number, not {text!r}"
        ) from exc
    for name, value in pairs:
        if name not in modality_names:
            raise CommandError(
                f"--grade-bias: no modality {name!r} in this world ({', '.join(modality_names)})"
            )
        if not -4 <= value <= 4 or value != value:
            raise CommandError(f"--grade-bias of {name} must be in [-4, 4] grades, not {value:g}")
    return tuple((name, value) for name, value in dict(pairs).items() if value)


class Command(BaseCommand):
    help = (
        "Simulate annotation strategies on a generated world (or one shaped like a project): "
        "NDCG@10 on held-out queries against cost, as JSON and a plot."
    )

    def add_arguments(self, parser):
        defaults = simulator.WorldSpec()
        parser.add_argument(
            "--strategies", default=",".join(simulator.STRATEGIES),
            help=f"of {', '.join(simulator.KNOWN_STRATEGIES)}",
        )  # fmt: skip
        parser.add_argument(
            "--budgets", default=",".join(str(b) for b in simulator.DEFAULT_BUDGETS),
            help="fractions of the cost of grading every training item",
        )  # fmt: skip
        parser.add_argument(
            "--strategy-budgets", default=None,
            help="budgets of some strategies instead of --budgets: 'full=1.0;random=0.1,0.3'",
        )  # fmt: skip
        parser.add_argument("--seeds", type=int, default=3)
        parser.add_argument(
            "--first-seed", type=int, default=0,
            help="seeds FIRST .. FIRST+SEEDS-1 (default 0): more seeds for an earlier run's",
        )  # fmt: skip
        parser.add_argument("--single-modal", default="on", help="on, off or on,off")
        parser.add_argument("--out", default="var/sim/results.json")
        parser.add_argument("--plot", default=None, help="PNG path (default: beside --out)")
        parser.add_argument("--like-project", default=None, help="shape the world like PROJECT")
        parser.add_argument(
            "--queries", type=int, default=None, help=f"all queries ({defaults.queries})"
        )
        parser.add_argument(
            "--heldout-queries", type=int, default=None,
            help=f"held-out (gold) queries ({defaults.heldout_queries}; default a quarter)",
        )  # fmt: skip
        parser.add_argument("--items-per-modality", type=int, default=None)
        parser.add_argument("--modalities", type=int, default=None, choices=[1, 2, 3])
        parser.add_argument("--upstream-tau", type=float, default=None)
        parser.add_argument("--relevant-share", type=float, default=None)
        parser.add_argument(
            "--embedding-noise", type=float, default=None,
            help=f"noise of the grade signal in the embeddings ({defaults.embedding_noise})",
        )  # fmt: skip
        parser.add_argument("--grade-noise", type=float, default=None)
        parser.add_argument(
            "--grade-bias", default=None,
            help="grades the annotators' absolute grades of a modality run off the true scale: "
            "image=+1,text=0; one number is the image (second) modality's (default 0)",
        )  # fmt: skip
        parser.add_argument("--compare-noise", type=float, default=None)
        parser.add_argument(
            "--compare-cost", type=float, default=None, help="in grades (default 0.5)"
        )
        parser.add_argument("--epochs", type=int, default=None)
        parser.add_argument(
            "--policy", default=None, choices=simulator.POLICIES,
            help="how iso_anchor spreads the budget over queries (default: the project's "
            "budget policy with --like-project, else breadth_first)",
        )  # fmt: skip
        parser.add_argument(
            "--layers",
            type=int,
            default=None,
            help="page transformer layers (1; 0 = the item tower alone)",
        )

    def handle(self, *args, **options):
        spec, estimated, project = simulator.WorldSpec(), None, None
        if options["like_project"]:
            project = Project.objects.filter(slug=options["like_project"]).first()
            if project is None:
                raise CommandError(f"No project '{options['like_project']}'.")
            spec, estimated = simulator.world_like(project)
            self.stdout.write(f"World shaped like '{project.slug}': {estimated}")
        changes = {
            "queries": options["queries"],
            "items_per_modality": options["items_per_modality"],
            "modalities": options["modalities"],
            "upstream_tau": options["upstream_tau"],
            "relevant_share": options["relevant_share"],
            "embedding_noise": options["embedding_noise"],
            "grade_noise": options["grade_noise"],
            "compare_noise": options["compare_noise"],
            "compare_cost": options["compare_cost"],
            "heldout_queries": options["heldout_queries"],
        }
        spec = replace(spec, **{k: v for k, v in changes.items() if v is not None})
        if options["grade_bias"] is not None:
            spec = replace(spec, grade_bias=_grade_bias(options["grade_bias"], spec.modality_names))
        if options["queries"] is not None and options["heldout_queries"] is None:
            spec = replace(spec, heldout_queries=max(spec.queries // 4, 1))
        if not 0 < spec.heldout_queries < spec.queries:
            raise CommandError("held-out queries must be fewer than all queries and at least one")
        ranges = {
            "--upstream-tau": (spec.upstream_tau, -1.0, 1.0),
            "--relevant-share": (spec.relevant_share, 0.0, 1.0),
            "--grade-noise": (spec.grade_noise, 0.0, 1.0),
            "--compare-noise": (spec.compare_noise, 0.0, 1.0),
            "--embedding-noise": (spec.embedding_noise, 0.0, float("inf")),
            "--compare-cost": (spec.compare_cost, 0.0, float("inf")),
        }
        for flag, (value, low, high) in ranges.items():
            if not low <= value <= high:
                bound = f"at least {low:g}" if high == float("inf") else f"in [{low:g}, {high:g}]"
                raise CommandError(f"{flag} must be {bound}, not {value:g}")
        training = simulator.TrainingSpec()
        if options["epochs"] is not None:
            training = replace(training, epochs=options["epochs"])
        if options["layers"] is not None:
            training = replace(training, layers=options["layers"])
        strategies = [s.strip() for s in options["strategies"].split(",") if s.strip()]
        unknown = set(strategies) - set(simulator.KNOWN_STRATEGIES)
        if unknown:
            raise CommandError(f"unknown strategies: {', '.join(sorted(unknown))}")
        if options["seeds"] < 1 or options["first_seed"] < 0:
            raise CommandError("--seeds must be at least 1 and --first-seed at least 0")
        budgets = _floats(options["budgets"])
        if not budgets or any(not 0 < b <= 1 for b in budgets):
            raise CommandError("budgets are fractions in (0, 1]")
        strategy_budgets = {}
        for part in (options["strategy_budgets"] or "").split(";"):
            if part.strip():
                name, _, values = part.partition("=")
                if name.strip() not in strategies:
                    raise CommandError(f"--strategy-budgets: {name.strip()!r} is not simulated")
                strategy_budgets[name.strip()] = _floats(values)
                if not strategy_budgets[name.strip()] or any(
                    not 0 < b <= 1 for b in strategy_budgets[name.strip()]
                ):
                    raise CommandError("budgets are fractions in (0, 1]")
        plan = simulator.SimulationPlan(
            strategy_budgets=strategy_budgets,
            strategies=strategies, budgets=budgets, seeds=options["seeds"],
            first_seed=options["first_seed"],
            single_modal=_switches(options["single_modal"]), world=spec, training=training,
            policy=options["policy"]
            or (project.budget_policy if project is not None else simulator.BREADTH_FIRST),
        )  # fmt: skip
        results = simulator.simulate(plan, progress=lambda line: self.stdout.write(line))
        if estimated is not None:
            results["like_project"] = {"project": options["like_project"], "estimated": estimated}
        out = Path(options["out"])
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(results, indent=2, allow_nan=False, default=str))
        plot = Path(options["plot"]) if options["plot"] else out.with_suffix(".png")
        simulator.write_plot(results, plot)
        self.stdout.write(simulator.format_table(results))
        self.stdout.write(
            f"baselines {results['baselines']}; full NDCG@10 {results['full_ndcg10']}; "
            f"cost to match full {results['cost_to_match_full']}"
        )
        best = results["cheapest_to_match_full"]
        self.stdout.write(
            f"Cheapest to reach full annotation's NDCG@10: {best} at "
            f"{results['cost_to_match_full'][best]:.0%} of its cost"
            if best
            else "No strategy reached full annotation's NDCG@10 at the budgets tried."
        )
        advised = results["recommended"]
        self.stdout.write(
            f"Recommended: {advised}, within {1 - simulator.NEAR_FULL:.0%} of full annotation's "
            f"NDCG@10 at {results['cost_to_near_full'][advised]:.0%} of its cost"
            if advised
            else "Recommended: none (no strategy came within "
            f"{1 - simulator.NEAR_FULL:.0%} of full annotation's NDCG@10)."
        )
        said = recommendation.verdict(
            results=results, current=project.strategy if project is not None else None
        )
        self.stdout.write(f"Paired on the seeds: {said['sentence']}")
        if project is not None:
            report = recommendation.record_finished_simulation(
                project=project, results=results, estimated=estimated
            )
            self.stdout.write(self._recommendation_line(project, report.recommended_strategy))
            self.stdout.write(
                f"Stored as simulation report {report.pk}: the lead's settings page shows it."
            )
        self.stdout.write(f"Wrote {out} and {plot} in {results['seconds']:.0f}s")

    @staticmethod
    def _recommendation_line(project: Project, best: str | None) -> str:
        if not best:
            return f"Recommendation for '{project.slug}': none (keep {project.strategy})."
        if best == project.strategy:
            return f"Recommendation for '{project.slug}': {best}, which it already uses."
        return (
            f"Recommendation for '{project.slug}': use {best} (it uses {project.strategy} now); "
            "the lead can apply it on the settings page."
        )
