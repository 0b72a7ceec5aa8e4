"""Driving the selection loop: every (seed, strategy, budget) run through the real loop (database,
services, the Celery task's service called in process) with simulated annotators, each run in a
transaction rolled back afterwards, then measured; `simulate` runs a whole plan and summarises."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from decimal import Decimal

from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Sum

from labeling.models import ItemGrade, Judgment, Project, Split, Task, TaskKind, TaskStatus
from ranking.services import grade_calibration, project_pages

from .. import services, strategies
from ..models import AnchorSearch, PairSource, PreferencePair
from ..strategies import BREADTH_FIRST, plan_pages
from .annotator import SimulatedAnnotator, answer_task
from .measure import TrainingSpec, supervision_fingerprint, train_and_measure
from .statistics import summarise
from .world import SeedWorld, WorldSpec, store_seed_world

STRATEGIES = ("iso_anchor", "top_p", "random", "full")  # the default command's and the card's
# Every strategy the simulator can run: top_p_cal (top bands plus calibration comparisons) is the
# fair baseline of a world with a grading bias (`--grade-bias`), asked for by name.
KNOWN_STRATEGIES = (*STRATEGIES, "top_p_cal")
DEFAULT_BUDGETS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


@dataclass
class RunResult:
    strategy: str
    budget: float
    seed: int
    single_modal: bool
    ndcg10: float
    cost: float
    cost_fraction: float
    judgments: dict[str, int]
    supervision: dict[str, int]
    chosen: dict[str, float]
    val_ndcg10: float
    seconds: float
    is_saturated: (
        bool  # the strategy asked for everything it ever would: more budget changes nothing
    )
    reused_from: float | None = None
    # Calibrating strategies: each modality's measured offset and the correction applied.
    calibration: dict[str, dict] = field(default_factory=dict)


def _next_open_task(project: Project) -> Task | None:
    # Pages first (their grades are the anchors); then comparisons by priority (richest searches
    # first) and, within one priority, query by query, so that the searches of one query finish
    # before the next query's start: a budget that runs out leaves at most a few searches
    # unfinished, and an unfinished search yields no pairs.
    return (
        Task.objects.filter(project=project, status=TaskStatus.OPEN)
        .select_related("page", "project")
        .order_by("-priority", "anchor__query_id", "pk")
        .first()
    )


def drive_loop(*, project: Project, oracle: SimulatedAnnotator, annotator, seed: int) -> bool:
    """Run the labeling loop until no task is open and planning creates nothing more.

    Each judgment is followed by what the worker does with it: `handle_judgment`, the service
    the Celery task `judgment_recorded` calls (called here directly: the same code, in process).
    Returns whether the first page planning planned every page (needed to call a run saturated).
    """
    services.create_page_tasks(project=project, seed=seed)
    pages_first_pass = Task.objects.filter(project=project, kind=TaskKind.GRADE_PAGE).count()
    while True:
        task = _next_open_task(project)
        if task is None:
            # Budget the searches did not use goes to more pages (and their searches).
            if services.create_page_tasks(project=project, seed=seed) == 0:
                break
            continue
        judgment = answer_task(task=task, annotator_user=annotator, oracle=oracle)
        services.handle_judgment(judgment_id=judgment.pk)
    pages_total = Task.objects.filter(project=project, kind=TaskKind.GRADE_PAGE).count()
    return pages_first_pass == pages_total


def _is_saturated(project: Project, *, seed: int, first_pass_complete: bool) -> bool:
    """Whether the strategy got everything it would ask for with an unlimited budget."""
    queries = services.training_queries(project=project)
    wanted = plan_pages(
        project.strategy, queries, top_band=project.top_band, page_size=project.page_size,
        max_items=10**9, seed=seed,
    )  # fmt: skip
    created = Task.objects.filter(project=project, kind=TaskKind.GRADE_PAGE).count()
    searches_open = AnchorSearch.objects.filter(project=project).exclude(
        status=AnchorSearch.Status.DONE
    )
    share = strategies.calibration_share(project.strategy, modalities=len(project.modalities))
    asked = Task.objects.filter(project=project, dedupe_key__startswith=services.CALIBRATION_KEY)
    # Calibration that stopped at its reserve would ask more with more budget.
    calibration_capped = bool(share) and (asked.count() + 1) * project.compare_cost > (
        project.budget * Decimal(str(share))
    )
    return (
        first_pass_complete
        and created == len(wanted)
        and not searches_open.exists()
        and not calibration_capped
    )


def _spending(project: Project) -> tuple[float, dict[str, int], dict[str, int]]:
    judgments = Judgment.objects.filter(project=project)
    cost = float(judgments.aggregate(s=Sum("cost"))["s"] or 0)
    by_kind = dict(judgments.values_list("kind").annotate(n=Count("pk")).values_list("kind", "n"))
    graded = ItemGrade.objects.filter(judgment__project=project).count()
    pairs = PreferencePair.objects.filter(project=project)
    return (
        cost,
        {
            "grade": graded,
            "compare": by_kind.get(TaskKind.COMPARE, 0),
            "pages": by_kind.get(TaskKind.GRADE_PAGE, 0),
        },
        {
            "pairs_human": pairs.filter(source=PairSource.HUMAN).count(),
            "pairs_implied": pairs.filter(source=PairSource.IMPLIED).count(),
        },
    )


def run_once(
    seed_world: SeedWorld,
    *,
    strategy: str,
    budget: float,
    seed: int,
    single_modal: bool,
    spec: WorldSpec,
    training: TrainingSpec,
    annotator,
    policy: str = BREADTH_FIRST,
    trained: dict | None = None,
) -> RunResult:
    """One (strategy, budget, seed, single_modal) run: the loop in a transaction that is rolled
    back afterwards (the stored world stays as it was), then tuning, training and measuring."""
    started = time.perf_counter()
    project = seed_world.project
    budget_cost = Decimal(str(round(budget * seed_world.full_cost, 2)))
    with transaction.atomic():
        Project.objects.filter(pk=project.pk).update(
            strategy=strategy, budget=budget_cost, budget_policy=policy
        )
        project.refresh_from_db()
        oracle = SimulatedAnnotator(
            seed_world.truth, project.max_grade, grade_noise=spec.grade_noise,
            compare_noise=spec.compare_noise, seed=seed, modality=seed_world.modality,
            grade_bias=dict(spec.grade_bias),
        )  # fmt: skip
        first_pass_complete = drive_loop(
            project=project, oracle=oracle, annotator=annotator, seed=seed
        )
        cost, judgments, pairs = _spending(project)
        is_saturated = _is_saturated(project, seed=seed, first_pass_complete=first_pass_complete)
        train_pages = project_pages(project=project, split=Split.TRAIN)
        graded = sum(int((p.grades >= 0).sum()) for p in train_pages)
        calibration = (
            {m: e.as_dict() for m, e in grade_calibration(project=project).items()}
            if strategy in strategies.CALIBRATED_STRATEGIES
            else {}
        )
        transaction.set_rollback(True)  # nothing of the run stays in the database
    key = (seed, single_modal, supervision_fingerprint(train_pages))
    if trained is not None and key in trained:
        # Another strategy's loop bought exactly these labels (iso_anchor and top_p buy the same
        # pages until the searches start): training is deterministic, so the result is the same.
        ndcg10, val_ndcg10, chosen = trained[key]
    else:
        ndcg10, val_ndcg10, chosen = train_and_measure(
            train_pages, seed_world.gold_pages, dims=seed_world.dims,
            n_modalities=spec.modalities, n_grades=len(project.grade_names),
            single_modal=single_modal, training=training, seed=seed,
        )  # fmt: skip
        if trained is not None:
            trained[key] = (ndcg10, val_ndcg10, chosen)
    return RunResult(
        strategy=strategy, budget=budget, seed=seed, single_modal=single_modal, ndcg10=ndcg10,
        cost=cost, cost_fraction=cost / seed_world.full_cost, judgments=judgments,
        supervision={"graded_items": graded, **pairs}, chosen=chosen, val_ndcg10=val_ndcg10,
        seconds=time.perf_counter() - started, is_saturated=is_saturated, calibration=calibration,
    )  # fmt: skip


@dataclass
class SimulationPlan:
    strategies: Sequence[str] = STRATEGIES
    budgets: Sequence[float] = DEFAULT_BUDGETS
    seeds: int = 3
    # Seeds first_seed .. first_seed + seeds - 1: a later run adds seeds to an earlier one's.
    first_seed: int = 0
    single_modal: Sequence[bool] = (True,)
    world: WorldSpec = field(default_factory=WorldSpec)
    training: TrainingSpec = field(default_factory=TrainingSpec)
    policy: str = BREADTH_FIRST  # iso_anchor's budget policy
    # Budgets of one strategy when not `budgets` (e.g. full at 1.0 only: the reference level).
    strategy_budgets: dict[str, Sequence[float]] = field(default_factory=dict)

    def budgets_of(self, strategy: str) -> list[float]:
        return sorted(set(self.strategy_budgets.get(strategy, self.budgets)))


def simulate(
    plan: SimulationPlan,
    *,
    progress: Callable[[str], None] = print,
    on_run: Callable[[int, int], None] | None = None,
) -> dict:
    """Run every (seed, single_modal, strategy, budget) and summarise; the results file's dict.

    `on_run(runs_done, runs_total)` is called after each run (e.g. to store a report's progress).
    """
    for strategy in plan.strategies:
        if strategy not in KNOWN_STRATEGIES:
            raise ValueError(
                f"unknown strategy {strategy!r}; choose from {', '.join(KNOWN_STRATEGIES)}"
            )
    # Re-asks after flipped comparisons are expected here (compare noise); one progress line per
    # run says more than a warning per contradiction.
    logging.getLogger("active_selection.services").setLevel(logging.ERROR)
    started = time.perf_counter()
    label = uuid.uuid4().hex[:8]
    annotator, _ = get_user_model().objects.get_or_create(username="pagewise-simulated-annotator")
    runs: list[RunResult] = []
    baselines: list[dict[str, float]] = []
    total = (
        plan.seeds * len(plan.single_modal) * sum(len(plan.budgets_of(s)) for s in plan.strategies)
    )
    for seed in range(plan.first_seed, plan.first_seed + plan.seeds):
        seed_world = store_seed_world(plan.world, seed, label=label)
        trained: dict = {}  # this seed's results by the supervision they were trained on
        try:
            baselines.append(seed_world.baselines)
            for single_modal in plan.single_modal:
                for strategy in plan.strategies:
                    saturated: RunResult | None = None
                    for budget in plan.budgets_of(strategy):
                        if saturated is not None:
                            # The loop is deterministic and asked for nothing more at a lower
                            # budget: a larger one runs the same loop and trains the same model.
                            run = replace(saturated, budget=budget, seconds=0.0,
                                          reused_from=saturated.budget)  # fmt: skip
                        else:
                            run = run_once(
                                seed_world, strategy=strategy, budget=budget, seed=seed,
                                single_modal=single_modal, spec=plan.world,
                                training=plan.training, annotator=annotator,
                                policy=plan.policy, trained=trained,
                            )  # fmt: skip
                            if run.is_saturated:
                                saturated = run
                        runs.append(run)
                        if on_run is not None:
                            on_run(len(runs), total)
                        note = f" (same as budget {run.reused_from})" if run.reused_from else ""
                        progress(
                            f"[{len(runs)}/{total}] seed {seed} {strategy:<10} budget {budget:<5} "
                            f"single_modal={'on' if single_modal else 'off'}: NDCG@10 "
                            f"{run.ndcg10:.4f} cost {run.cost:.1f} ({run.cost_fraction:.3f}) "
                            f"judgments {run.judgments} {run.seconds:.1f}s{note}; "
                            f"elapsed {time.perf_counter() - started:.0f}s"
                        )
        finally:
            seed_world.project.delete()
    return summarise(plan, runs, baselines, seconds=time.perf_counter() - started)
