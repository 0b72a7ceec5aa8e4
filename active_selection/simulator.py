"""The simulator behind `manage.py simulate`: every selection strategy run through the real loop
(database, services, the Celery task run eagerly) over a generated world with known truth, and the
reranker each budget buys measured on held-out queries.

Owns the default world's priors, the shared tuning grid, and the results file and plot. The world
itself is `ranking.ml.synthetic`; storing it and answering tasks is `active_selection.simulation`.
"""

from __future__ import annotations

import hashlib
import logging
import math
import statistics
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from decimal import Decimal
from pathlib import Path

import numpy as np
from django.contrib.auth import get_user_model
from django.db import transaction
from django.db.models import Count, Sum

from labeling.models import (
    Item,
    ItemGrade,
    Judgment,
    Project,
    Query,
    Split,
    Task,
    TaskKind,
    TaskStatus,
)
from ranking.ml.features import SCALAR_FEATURES, TrainPage
from ranking.ml.losses import LossWeights
from ranking.ml.model import RerankerConfig
from ranking.ml.synthetic import WorldConfig, make_world
from ranking.ml.trainer import train
from ranking.services import (
    _split_validation,
    baseline_metrics,
    evaluate,
    grade_calibration,
    project_pages,
)

from . import services, strategies
from .models import AnchorSearch, CalibrationCheck, PairSource, PreferencePair
from .simulation import MODALITY_NAMES, SimulatedAnnotator, answer_task, store_world
from .strategies import BREADTH_FIRST, PER_QUERY, POLICIES, plan_pages  # noqa: F401 (re-exported)

STRATEGIES = ("iso_anchor", "top_p", "random", "full")  # the default command's and the card's
# Every strategy the simulator can run: top_p_cal (top bands plus calibration comparisons) is the
# fair baseline of a world with a grading bias (`--grade-bias`), asked for by name.
KNOWN_STRATEGIES = (*STRATEGIES, "top_p_cal")
# What a lead is advised to buy: the cheapest strategy within 1% of full annotation's NDCG@10
# (its mean over seeds). Exact equality with full's mean is a coin toss of seed noise at 3 seeds
# (a spread of ~0.01), and full always matches itself; `cost_to_match_full` keeps the strict
# definition for the record.
NEAR_FULL = 0.99
DEFAULT_BUDGETS = (0.02, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0)


# --- the world ------------------------------------------------------------------------------


@dataclass(frozen=True)
class WorldSpec:
    """The simulated world and its annotators. Defaults are priors fixed before any strategy ran,
    each with its reason; none is tuned to favour a strategy.

    Size is set by the runtime target (all default runs in 10 minutes on 2 cores): 160 queries
    (120 train, 40 held out) of 3 modalities x 10 items; the held-out NDCG@10 is then a mean over
    40 queries x 3 seeds, which is why the results carry the spread over seeds.
    """

    queries: int = 160
    heldout_queries: int = 40  # the gold split: measured on, never tuned or early-stopped on
    modalities: int = 3  # text, image, video: the product's typical page
    items_per_modality: int = 10  # a result page's depth per vertical
    # Share of relevant items: web and product search studies find most retrieved candidates not
    # relevant; 0.35 gives ~65% of each modality's items grade 0 (the 60-70% prior).
    relevant_share: float = 0.35
    # Among relevant items, P(grade 1..4): higher grades are rarer (TREC-style graded pools).
    positive_grade_probs: tuple[float, ...] = (0.4, 0.3, 0.2, 0.1)
    # Kendall tau of a single-modal ranker against the truth within its modality: strong but
    # imperfect rankers (0.7-0.8 in published per-vertical evaluations); the middle is taken.
    upstream_tau: float = 0.75
    # Annotators: a grade off by one 10% of the time, a comparison flipped 5% (the issue's prior;
    # comparisons are easier than absolute grades).
    grade_noise: float = 0.10
    compare_noise: float = 0.05
    grade_cost: float = 1.0
    compare_cost: float = 0.5  # a comparison takes about half the time of a grade
    top_band: int = 3  # the top-p band of each modality on a candidate page (project default)
    page_size: int = 10  # project default
    # Embeddings: 32 dimensions and the synthetic world's noise (informative but noisy); each
    # modality shows relevance its own way.
    embedding_dim: int = 32
    # Noise of the grade signal in the embeddings (text and image, along the direction that shows
    # relevance; synthetic.WorldConfig): 0.2 is the synthetic world's default, where a grade step
    # moves the signal by 0.25. Raise it to simulate encoders that see relevance less well.
    embedding_noise: float = 0.2
    # (modality, grades): how far the annotators' absolute grades of a modality's items run above
    # the true scale (ranking.ml.synthetic.biased_grade: why, with references); comparisons stay
    # unbiased. Empty: no bias, the control world.
    grade_bias: tuple[tuple[str, float], ...] = ()

    @property
    def train_queries(self) -> int:
        return self.queries - self.heldout_queries

    @property
    def modality_names(self) -> list[str]:
        return list(MODALITY_NAMES[: self.modalities])

    def world_config(self, seed: int) -> WorldConfig:
        return WorldConfig(
            n_queries=self.queries,
            items_per_query=self.items_per_modality * self.modalities,
            modality_shares=tuple([1.0] * self.modalities),
            text_dim=self.embedding_dim,
            image_dim=self.embedding_dim,
            relevant_share=self.relevant_share,
            text_noise=self.embedding_noise,
            image_noise=self.embedding_noise,
            positive_grade_probs=tuple(self.positive_grade_probs),
            upstream_tau=self.upstream_tau,
            per_modality_image_direction=True,
            seed=seed,
        )


# --- the model and its tuning ---------------------------------------------------------------


@dataclass(frozen=True)
class TrainingSpec:
    """One model, one epoch budget and one tuning grid for every strategy.

    The model is small and early-stopped on validation NDCG@10 so that 84 runs with their grids
    fit in 10 minutes on 2 cores. 40 epochs with patience 8: at 12 epochs with patience 3 every
    strategy was under-trained (on seed 0, full annotation scored below top_p's top bands, 0.796
    against 0.838; at 40 epochs 0.872 against 0.869), which measured the optimiser, not the
    labels; 100 epochs changed nothing more (within 0.003). The model is the product's whole-page
    reranker with one transformer layer across the page (the product trains two, at hidden 128):
    on the default world (seeds 0-2) full annotation scored 0.913 with it against 0.896 with the
    item tower alone (`--layers 0`), and the default command took 391 s on this 2-core machine
    with another simulation on the other core. One torch thread: two threads
    on two busy cores were 6x slower. The grid holds the SMAR weights the issue names: the single-modal
    weight beta and the weight of implied supervision (pairs and grade intervals) against human
    labels; gamma stays at half a grade.
    A grid point that cannot change the loss (pair_implied for a run without implied pairs) gives
    the same model as its neighbour and is not trained twice.
    """

    hidden: int = 32
    layers: int = 1
    heads: int = 2
    epochs: int = 40
    patience: int = 8
    lr: float = 3e-3
    batch_size: int = 16
    val_fraction: float = 0.2  # of the labelled TRAIN queries; the held-out ones are never seen
    gamma: float = 0.5
    betas: tuple[float, ...] = (0.05, 0.2)
    pair_implied: tuple[float, ...] = (0.1, 0.3)
    # Without enough labelled queries to validate on, the product's defaults are used untuned.
    fallback_beta: float = 0.1
    fallback_pair_implied: float = 0.3
    threads: int = 1


# --- the loop of one run --------------------------------------------------------------------


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


def search_share(spec: WorldSpec, policy: str = BREADTH_FIRST) -> float:
    """iso_anchor's share of the budget kept for comparisons in the world `spec`
    (strategies.search_share)."""
    return strategies.search_share(
        policy, top_band=spec.top_band, modalities=spec.modalities,
        items_per_modality=spec.items_per_modality, grade_cost=spec.grade_cost,
        compare_cost=spec.compare_cost,
    )  # fmt: skip


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


def supervision_fingerprint(pages: list[TrainPage]) -> str:
    """A digest of everything the training reads from the labels of a run's pages."""
    digest = hashlib.sha256()
    for page in pages:
        digest.update(repr(page.query_id).encode())
        digest.update(page.grades.tobytes())
        digest.update(
            repr(sorted((p.better, p.worse, p.source, p.weight) for p in page.pairs)).encode()
        )
        if page.grade_intervals is not None:
            digest.update(page.grade_intervals.tobytes())
    return digest.hexdigest()


def train_and_measure(
    train_pages: list[TrainPage],
    gold_pages: list[TrainPage],
    *,
    dims: tuple[int, int],
    n_modalities: int,
    n_grades: int,
    single_modal: bool,
    training: TrainingSpec,
    seed: int,
) -> tuple[float, float, dict[str, float]]:
    """Tune on a validation split of TRAIN queries, then measure NDCG@10 on the held-out ones.

    Returns (held-out NDCG@10, validation NDCG@10 of the chosen point, the chosen point).
    """
    if not single_modal:
        train_pages = [p for p in train_pages if (p.grades >= 0).any() or p.pairs]
    if not train_pages:
        # Nothing was bought: the model would be its initial weights; say so with the worst score.
        return float("nan"), float("nan"), {}
    fit_pages, val_pages = _split_validation(train_pages, training.val_fraction, seed)
    has_implied = any(pair.source == "implied" for p in fit_pages for pair in p.pairs)
    if val_pages:
        grid = [
            (beta, implied)
            for beta in training.betas
            for implied in (training.pair_implied if has_implied else training.pair_implied[:1])
        ]
    else:
        grid = [(training.fallback_beta, training.fallback_pair_implied)]
    if not single_modal:
        grid = sorted({(training.betas[0], implied) for _, implied in grid})  # beta unused
    config = RerankerConfig(
        text_dim=dims[0], image_dim=dims[1], n_modalities=n_modalities, n_grades=n_grades,
        hidden=training.hidden, layers=training.layers, heads=training.heads, seed=seed,
    )  # fmt: skip
    best = None
    for beta, implied in grid:
        weights = LossWeights(
            pair_implied=implied, gamma=training.gamma, default_beta=beta, single_modal=single_modal
        )
        result = train(
            config, fit_pages, val_pages, weights=weights, epochs=training.epochs,
            lr=training.lr, batch_size=training.batch_size, patience=training.patience,
            seed=seed, threads=training.threads, verbose=False,
        )  # fmt: skip
        metric = result.val_metric if not math.isnan(result.val_metric) else -1.0
        if best is None or metric > best[0]:
            best = (metric, result, {"beta": beta, "pair_implied": implied})
    _, result, chosen = best
    chosen = {**chosen, "gamma": training.gamma}
    return evaluate(result.model, gold_pages)["ndcg@10"], result.val_metric, chosen


@dataclass
class SeedWorld:
    """One seed's world, stored once as a project; runs happen in transactions rolled back."""

    project: Project
    truth: dict[int, int]
    gold_pages: list[TrainPage]
    baselines: dict[str, float]
    full_cost: float  # cost of grading every training item
    dims: tuple[int, int]
    modality: dict[int, str] = field(default_factory=dict)  # item id -> modality name


def store_seed_world(spec: WorldSpec, seed: int, *, label: str) -> SeedWorld:
    world = make_world(spec.world_config(seed))
    project = Project.objects.create(
        slug=f"sim-{label}-s{seed}"[:64], name=f"Simulation {label} seed {seed}",
        modalities=spec.modality_names, page_size=spec.page_size, top_band=spec.top_band,
        grade_cost=Decimal(str(spec.grade_cost)), compare_cost=Decimal(str(spec.compare_cost)),
        budget=Decimal("0"), retrain_threshold=10**9,  # the simulator trains; no worker retrains
    )  # fmt: skip
    truth = store_world(project=project, world=world, gold_queries=spec.heldout_queries)
    gold_pages = project_pages(project=project, split=Split.GOLD)
    train_items = Item.objects.filter(project=project, query__split=Split.TRAIN).count()
    from ranking.services import embedding_dims

    return SeedWorld(
        project=project,
        truth=truth,
        gold_pages=gold_pages,
        baselines=baseline_metrics(gold_pages),
        full_cost=train_items * spec.grade_cost,
        dims=embedding_dims(project=project),
        modality=dict(Item.objects.filter(project=project).values_list("pk", "modality")),
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


# --- the whole simulation -------------------------------------------------------------------


@dataclass
class SimulationPlan:
    strategies: Sequence[str] = STRATEGIES
    budgets: Sequence[float] = DEFAULT_BUDGETS
    seeds: int = 3
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
    for seed in range(plan.seeds):
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


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values))


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def summarise(
    plan: SimulationPlan,
    runs: list[RunResult],
    baselines: list[dict[str, float]],
    *,
    seconds: float,
) -> dict:
    rows = []
    keys = sorted(
        {(r.strategy, r.budget, r.single_modal) for r in runs},
        key=lambda k: (list(plan.strategies).index(k[0]), not k[2], k[1]),
    )
    for strategy, budget, single_modal in keys:
        group = [
            r
            for r in runs
            if (r.strategy, r.budget, r.single_modal) == (strategy, budget, single_modal)
        ]
        mean, std = _mean_std([r.ndcg10 for r in group])
        judgment_keys = sorted({k for r in group for k in r.judgments})
        rows.append(
            {
                "strategy": strategy,
                "budget": budget,
                "single_modal": single_modal,
                "ndcg10_mean": mean,
                "ndcg10_std": std,
                "cost": float(np.mean([r.cost for r in group])),
                "cost_fraction": float(np.mean([r.cost_fraction for r in group])),
                "judgments": {
                    k: float(np.mean([r.judgments.get(k, 0) for r in group])) for k in judgment_keys
                },
                "supervision": {
                    k: float(np.mean([r.supervision.get(k, 0) for r in group]))
                    for k in sorted({k for r in group for k in r.supervision})
                },
                "seeds": len(group),
                "per_seed": [
                    {
                        "seed": r.seed,
                        "ndcg10": _finite(r.ndcg10),
                        "cost": r.cost,
                        "val_ndcg10": _finite(r.val_ndcg10),
                        "chosen": r.chosen,
                        "seconds": round(r.seconds, 2),
                        "reused_from": r.reused_from,
                        "calibration": r.calibration,
                    }  # fmt: skip
                    for r in group
                ],
            }
        )
    full_rows = [
        r for r in rows if r["strategy"] == "full" and r["single_modal"] and r["budget"] == 1.0
    ] or [r for r in rows if r["strategy"] == "full" and r["budget"] == 1.0]
    full_ndcg10 = full_rows[0]["ndcg10_mean"] if full_rows else None

    def cost_to_reach(level: float | None) -> dict[str, float | None]:
        """Per strategy, the smallest cost fraction whose mean NDCG@10 (single-modal on) reaches
        `level`."""
        return {
            strategy: min(
                (
                    r["cost_fraction"]
                    for r in rows
                    if r["strategy"] == strategy
                    and r["single_modal"]
                    and level is not None
                    and r["ndcg10_mean"] is not None
                    and r["ndcg10_mean"] >= level - 1e-12
                ),
                default=None,
            )
            for strategy in plan.strategies
        }

    cost_to_match = cost_to_reach(full_ndcg10)
    cost_to_near = cost_to_reach(None if full_ndcg10 is None else NEAR_FULL * full_ndcg10)
    baseline_names = sorted({k for b in baselines for k in b})
    return {
        "world": {
            **asdict(plan.world),
            "train_queries": plan.world.train_queries,
            "iso_anchor_policy": plan.policy,
            "iso_anchor_search_share": search_share(plan.world, plan.policy),
            "seeds": plan.seeds,
        },
        "training": asdict(plan.training),
        "full_ndcg10": full_ndcg10,
        "baselines": {
            name: float(np.mean([b[name] for b in baselines if name in b]))
            for name in baseline_names
        },
        "results": rows,
        "cost_to_match_full": cost_to_match,
        "cheapest_to_match_full": cheapest(cost_to_match),
        "near_full": NEAR_FULL,
        "cost_to_near_full": cost_to_near,
        "recommended": cheapest(cost_to_near),
        "paired": paired_differences(runs),
        "seconds": round(seconds, 1),
    }


def paired_differences(runs: Sequence[RunResult], subject: str = "iso_anchor") -> list[dict]:
    """`subject`'s NDCG@10 minus each other strategy's at the same budget, seed and supervision.

    Paired on the seed's world, the spread is that of the difference: worlds differ in how hard
    they are, which moves every strategy together and widens each one's own spread.
    """
    scores = {(r.strategy, r.budget, r.single_modal, r.seed): r.ndcg10 for r in runs}
    rows = []
    for against, budget, single_modal in sorted(
        {(r.strategy, r.budget, r.single_modal) for r in runs if r.strategy != subject},
        key=lambda k: (k[0], not k[2], k[1]),
    ):
        diffs = [
            mine - theirs
            for seed in sorted({r.seed for r in runs})
            if (mine := scores.get((subject, budget, single_modal, seed))) is not None
            and (theirs := scores.get((against, budget, single_modal, seed))) is not None
            and not math.isnan(mine) and not math.isnan(theirs)
        ]  # fmt: skip
        if diffs:
            rows.append(
                {
                    "strategy": subject,
                    "against": against,
                    "budget": budget,
                    "single_modal": single_modal,
                    "diff_mean": float(np.mean(diffs)),
                    "diff_std": float(np.std(diffs)),
                    "wins": sum(d > 0 for d in diffs),
                    "seeds": len(diffs),
                }  # fmt: skip
            )
    return rows


def cheapest(cost_to_match: dict[str, float | None]) -> str | None:
    reached = {s: c for s, c in cost_to_match.items() if c is not None}
    return min(reached, key=lambda s: (reached[s], s)) if reached else None


# --- the plot -------------------------------------------------------------------------------


def write_plot(results: dict, path: Path) -> None:
    """NDCG@10 against cost fraction, one line per strategy (solid: single-modal on, dashed: off),
    error bars one std over seeds; label-free baselines as grey lines, full's level dotted."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colours = {
        "iso_anchor": "tab:red", "top_p": "tab:blue", "top_p_cal": "tab:purple",
        "random": "tab:green", "full": "k",
    }  # fmt: skip
    strategies = list(dict.fromkeys(r["strategy"] for r in results["results"]))

    lines: dict[tuple[str, bool], list[dict]] = {}
    for r in sorted(results["results"], key=lambda r: r["cost_fraction"]):
        if r["ndcg10_mean"] is not None:
            lines.setdefault((r["strategy"], r["single_modal"]), []).append(r)
    points = {
        key: {(round(r["cost_fraction"], 6), round(r["ndcg10_mean"], 6)) for r in rows}
        for key, rows in lines.items()
    }
    for order, strategy in enumerate(strategies):
        for single_modal in (True, False):
            rows = lines.get((strategy, single_modal))
            if not rows:
                continue
            # Strategies that buy the same labels draw the same points (iso_anchor is top_p below
            # the cost of every top band): the one drawn first is drawn wider, so both show.
            mine = points[(strategy, single_modal)]
            under = sum(
                1 for later in strategies[order + 1 :]
                if mine & points.get((later, single_modal), set())
            )  # fmt: skip
            width = 1.5 + 2.0 * under
            ax.errorbar(
                [r["cost_fraction"] for r in rows], [r["ndcg10_mean"] for r in rows],
                yerr=[r["ndcg10_std"] or 0.0 for r in rows], marker="o", capsize=3,
                linewidth=width, markersize=2 + width, elinewidth=1, alpha=0.85,
                linestyle="-" if single_modal else "--", color=colours.get(strategy),
                label=f"{strategy} (single-modal {'on' if single_modal else 'off'})",
            )  # fmt: skip
    for i, (name, value) in enumerate(sorted(results["baselines"].items())):
        ax.axhline(value, color="grey", linewidth=1, linestyle=(0, (6, 2 + 2 * i)),
                   label=f"{name} (no labels) {value:.3f}")  # fmt: skip
    if results.get("full_ndcg10") is not None:
        ax.axhline(
            results["full_ndcg10"], color="k", linestyle=":",
            label=f"full at budget 1.0: {results['full_ndcg10']:.3f}",
        )  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("cost spent / cost of grading every training item (log)")
    ax.set_ylabel("NDCG@10 on held-out queries")
    ax.set_title("Reranker quality against annotation cost")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)


# --- a world shaped like a project ----------------------------------------------------------


def world_like(project: Project, base: WorldSpec | None = None) -> tuple[WorldSpec, dict]:
    """A WorldSpec with the project's shape, and grade mix and upstream tau from its gold queries.

    Returns the spec and what was estimated (with how many gold queries it rests on).
    """
    base = base or WorldSpec()
    modalities = [m for m in project.modalities][: len(MODALITY_NAMES)] or ["text"]
    queries = Query.objects.filter(project=project)
    n_queries = queries.count()
    counts = list(
        Item.objects.filter(project=project)
        .values("query_id", "modality")
        .annotate(n=Count("pk"))
        .values_list("n", flat=True)
    )
    per_modality = int(round(statistics.median(counts))) if counts else base.items_per_modality
    gold_queries = queries.filter(split=Split.GOLD).count()
    estimated: dict = {"gold_queries": gold_queries}
    spec = replace(
        base,
        queries=max(n_queries, 20),
        heldout_queries=max(min(gold_queries or n_queries // 4, n_queries // 2), 5),
        modalities=len(modalities),
        items_per_modality=max(per_modality, 2),
        grade_cost=float(project.grade_cost) / float(project.grade_cost or 1),
        compare_cost=float(project.compare_cost) / float(project.grade_cost or 1),
        top_band=project.top_band,
        page_size=project.page_size,
    )
    rows = list(
        Item.objects.filter(project=project, gold_grade__isnull=False)
        .order_by("query_id", "modality")
        .values_list("query_id", "modality", "upstream_score", "gold_grade")
    )
    if rows:
        grades = np.array([r[3] for r in rows])
        max_grade = len(project.grade_names) - 1
        positive = np.bincount(grades[grades > 0] - 1, minlength=max_grade).astype(float)
        if positive.sum() > 0:
            positive_probs = tuple((positive / positive.sum()).tolist())
        else:
            positive_probs = base.positive_grade_probs
        by_query: dict[int, list[tuple[str, float, int]]] = {}
        for query_id, modality, score, grade in rows:
            by_query.setdefault(query_id, []).append(
                (modality, np.nan if score is None else score, grade)
            )
        lists = [
            (np.array([r[1] for r in q], dtype=float), np.array([r[0] for r in q]),
             np.array([r[2] for r in q]))
            for q in by_query.values()
        ]  # fmt: skip
        # Tau-b against tied integer grades is lower than the tau against fine relevance the world
        # is generated with; `_world_tau_for` inverts that on a small generated world.
        measured_tau = _mean_tau_b(lists)
        spec = replace(
            spec,
            relevant_share=float(np.clip((grades > 0).mean(), 0.02, 0.98)),
            positive_grade_probs=positive_probs
            if len(positive_probs) == 4
            else spec.positive_grade_probs,
        )
        if measured_tau is not None:
            spec = replace(spec, upstream_tau=_world_tau_for(measured_tau, spec))
        estimated.update(
            relevant_share=spec.relevant_share,
            positive_grade_probs=list(spec.positive_grade_probs),
            tau_b_against_gold_grades=measured_tau,
            upstream_tau=spec.upstream_tau,
        )
        cosine_tau = _gold_cosine_tau(project)
        if cosine_tau is not None:
            spec = replace(spec, embedding_noise=_world_noise_for(cosine_tau, spec))
            estimated.update(
                cosine_tau_b_against_gold_grades=cosine_tau, embedding_noise=spec.embedding_noise
            )
    bias, estimated["grade_bias"] = _measured_grade_bias(project, modalities)
    return replace(spec, grade_bias=bias), estimated


def _measured_grade_bias(
    project: Project, modalities: Sequence[str]
) -> tuple[tuple[tuple[str, float], ...], dict]:
    """The grading bias of the project's latest calibration check, in the world's modality names
    (the project's modalities in order), and what the card says of it. An offset whose interval
    holds 0 is not told apart from 0 and is simulated as 0: the world never invents a bias."""
    check = CalibrationCheck.objects.filter(project=project).order_by("-created_at").first()
    if check is None:
        return (), {"source": "none", "note": "no calibration check: no grading bias simulated"}
    if not modalities or check.reference_modality != modalities[0]:
        return (), {
            "source": "none",
            "note": f"the calibration check is against {check.reference_modality}, not the "
            "first modality the world is built on: no grading bias simulated",
        }
    bias, measured = [], {}
    for name, modality in zip(MODALITY_NAMES, modalities, strict=False):
        estimate = (check.estimates or {}).get(modality)
        if not estimate:
            continue
        low, high = float(estimate["low"]), float(estimate["high"])
        offset = float(estimate["offset"]) if low > 0 or high < 0 else 0.0
        measured[modality] = {"offset": float(estimate["offset"]), "low": low, "high": high}
        if offset:
            bias.append((name, offset))
    return tuple(bias), {
        "source": "calibration_check",
        "check_id": check.pk,
        "measured": measured,
        "simulated": {modalities[MODALITY_NAMES.index(n)]: b for n, b in bias},
    }


def _mean_tau_b(
    lists: Sequence[tuple[np.ndarray, np.ndarray, np.ndarray]], *, min_items: int = 3
) -> float | None:
    """Mean Kendall tau-b, per query and modality, of a score against the grades.

    `lists` holds (scores, modalities, grades) per query; a grade of -1 or a NaN score leaves the
    item out, and a list needs `min_items` items, 2 grades and 2 scores to count. None if none does.
    """
    from scipy.stats import kendalltau

    taus = []
    for scores, modalities, grades in lists:
        for modality in np.unique(modalities):
            idx = (modalities == modality) & (grades >= 0) & ~np.isnan(scores)
            if (
                idx.sum() >= min_items
                and len(set(grades[idx].tolist())) > 1
                and np.ptp(scores[idx]) > 0
            ):
                tau = kendalltau(scores[idx], grades[idx]).statistic
                if not math.isnan(tau):
                    taus.append(tau)
    return float(np.mean(taus)) if taus else None


def _gold_cosine_tau(project: Project) -> float | None:
    """How well the project's own embeddings see relevance: the query-item cosine (a feature the
    reranker reads) against the gold grades. None without embedded gold items."""
    try:
        pages = project_pages(project=project, split=Split.GOLD)
    except ValueError:  # nothing embedded yet
        return None
    cosine = SCALAR_FEATURES.index("query_cosine") - len(SCALAR_FEATURES)
    return _mean_tau_b([(p.features[:, cosine], p.modalities, p.grades) for p in pages])


def _closest_world(candidates, measured: float, statistic) -> float:
    """The candidate whose small generated world (60 queries, seed 0) gives the statistic nearest
    the measured one; `statistic(value)` -> (WorldSpec for the value, the world -> its statistic)."""
    gaps = []
    for value in candidates:
        spec, measure = statistic(value)
        got = measure(make_world(replace(spec.world_config(0), n_queries=60)))
        gaps.append(abs(got - measured) if got is not None else math.inf)
    return float(candidates[int(np.argmin(gaps))])


def _world_noise_for(measured: float, spec: WorldSpec) -> float:
    """The world's embedding noise whose cosine tau-b against grades matches the measured one."""

    def cosine_tau(world) -> float | None:
        return _mean_tau_b(
            [
                (q.text_embs @ q.query_emb / np.maximum(
                    np.linalg.norm(q.text_embs, axis=1) * np.linalg.norm(q.query_emb), 1e-12
                 ), q.modalities, q.grades)
                for q in world.queries
            ]
        )  # fmt: skip

    noises = (0.05, 0.1, 0.2, 0.3, 0.45, 0.6, 0.8, 1.0, 1.5, 2.0)
    return _closest_world(
        noises, measured, lambda noise: (replace(spec, embedding_noise=noise), cosine_tau)
    )


def _world_tau_for(measured: float, spec: WorldSpec) -> float:
    """The world's upstream tau whose tau-b against integer grades matches the measured one."""

    def upstream_tau(world) -> float | None:
        lists = [(q.upstream_scores, q.modalities, q.grades) for q in world.queries]
        return _mean_tau_b(lists, min_items=2)  # a world may have 2 items per modality

    taus = [round(float(t), 2) for t in np.arange(0.05, 0.96, 0.05)]
    return _closest_world(
        taus, measured, lambda tau: (replace(spec, upstream_tau=tau), upstream_tau)
    )


def format_table(results: dict) -> str:
    lines = [
        f"{'strategy':<11}{'sm':<4}{'budget':>7}{'cost_frac':>10}{'ndcg10':>9}{'std':>7}"
        f"{'grades':>8}{'compares':>9}"
    ]
    for r in results["results"]:
        mean = "n/a" if r["ndcg10_mean"] is None else f"{r['ndcg10_mean']:.4f}"
        std = "" if r["ndcg10_std"] is None else f"{r['ndcg10_std']:.4f}"
        lines.append(
            f"{r['strategy']:<11}{'on' if r['single_modal'] else 'off':<4}{r['budget']:>7}"
            f"{r['cost_fraction']:>10.3f}{mean:>9}{std:>7}"
            f"{r['judgments'].get('grade', 0):>8.0f}{r['judgments'].get('compare', 0):>9.0f}"
        )
    paired = results.get("paired") or []
    if paired:
        lines.append("paired on the same seeds (NDCG@10 difference, mean ± std, seeds won):")
    for p in paired:
        lines.append(
            f"  {p['strategy']} - {p['against']:<7} sm {'on ' if p['single_modal'] else 'off'} "
            f"budget {p['budget']:<5}: {p['diff_mean']:+.4f} ± {p['diff_std']:.4f} "
            f"({p['wins']}/{p['seeds']})"
        )
    return "\n".join(lines)
