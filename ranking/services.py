"""Ranking on the database: embeddings, built-in upstream scores, training and activating versions.

Heavy models are loaded once per process (`builtin_rankers`). Training reads labels from
labeling (grades) and active_selection (pairs); it writes only RerankerVersion rows and weights.
"""

from __future__ import annotations

import hashlib
import logging
import math
import time
from collections import defaultdict
from dataclasses import asdict, dataclass, replace
from functools import lru_cache, partial
from pathlib import Path

import numpy as np
from celery import signature
from django.conf import settings
from django.db import transaction
from django.db.models import Max, Min
from django.utils import timezone
from PIL import Image

from active_selection.calibration import (
    Comparison,
    OffsetEstimate,
    estimate_offset,
    observations_from_comparisons,
)
from active_selection.models import ImpliedGrade, PairSource, PreferencePair
from active_selection.strategies import CALIBRATED_STRATEGIES
from labeling.models import CompareOutcome, Item, Judgment, Project, Query, Split, TaskKind
from labeling.selectors import budget_status, human_graded_item_count, human_grades
from labeling.services import recompute_upstream_ranks
from labeling.signals import announce, version_activated

from . import vlm_scoring
from .ml import baselines
from .ml.features import UNKNOWN_GRADE, TrainPage
from .ml.features import PreferencePair as PagePair
from .ml.losses import LossWeights
from .ml.metrics import evaluate_pages
from .ml.model import RerankerConfig, WholePageReranker
from .ml.trainer import score_pages, train
from .ml.vlm import vlm_feature_dim
from .models import ItemEmbedding, QueryEmbedding, RerankerVersion, from_bytes, to_bytes

log = logging.getLogger(__name__)


@lru_cache(maxsize=1)
def builtin_rankers():
    """The encoders and built-in rankers, loaded once per process (seconds, hundreds of MB)."""
    from .ml.rankers import BuiltinRankers

    return BuiltinRankers()


# --- embeddings and built-in scores ---------------------------------------------------------


def item_text(item: Item) -> str:
    return ". ".join(part for part in (item.title, item.text) if part) or item.external_id


def embed_items(*, project: Project, batch_size: int = 64, progress=None) -> int:
    """Encode every item and query of the project that has no embedding yet; return items done."""
    rankers = builtin_rankers()
    text_encoder = rankers.text_encoder
    done = 0
    pending = list(Item.objects.filter(project=project, embedding__isnull=True).order_by("pk"))
    for start in range(0, len(pending), batch_size):
        batch = pending[start : start + batch_size]
        text_vectors = text_encoder.encode([item_text(item) for item in batch])
        with_image = [i for i, item in enumerate(batch) if item.image]
        image_vectors, class_probs = {}, {}
        if with_image:
            images = []
            for i in with_image:
                with batch[i].image.open("rb") as handle, Image.open(handle) as image:
                    images.append(image.convert("RGB"))
            encoded = rankers.image_encoder.encode(images)
            for row, i in enumerate(with_image):
                image_vectors[i] = encoded.features[row]
                class_probs[i] = encoded.class_probs[row]
        image_name = (
            f"{rankers.image_encoder.name}@{rankers.image_encoder.version}" if with_image else ""
        )
        ItemEmbedding.objects.bulk_create(
            [
                ItemEmbedding(
                    item=item,
                    text_vector=to_bytes(text_vectors[i]),
                    image_vector=to_bytes(image_vectors[i]) if i in image_vectors else None,
                    class_probs=to_bytes(class_probs[i]) if i in class_probs else None,
                    text_encoder=f"{text_encoder.name}@{text_encoder.version}",
                    image_encoder=image_name if i in image_vectors else "",
                )
                for i, item in enumerate(batch)
            ],
            ignore_conflicts=True,  # a second worker on the same project wrote them first
        )
        done += len(batch)
        if progress:
            progress(done, len(pending))
    queries = list(Query.objects.filter(project=project, embedding__isnull=True))
    for start in range(0, len(queries), batch_size):
        batch = queries[start : start + batch_size]
        vectors = text_encoder.encode([q.text for q in batch])
        QueryEmbedding.objects.bulk_create(
            [
                QueryEmbedding(
                    query=q,
                    vector=to_bytes(v),
                    text_encoder=f"{text_encoder.name}@{text_encoder.version}",
                )
                for q, v in zip(batch, vectors, strict=True)
            ],
            ignore_conflicts=True,
        )
    fill_builtin_scores(project=project)
    return done


def fill_builtin_scores(*, project: Project) -> int:
    """Give items imported without an upstream score one from the built-in ranker of their modality.

    Where a query's modality has imported scores for some items, the built-in scores of the
    others are placed below the lowest imported one: the two scales are unrelated, and the
    imported ranker is trusted over the built-in one. A project that takes its upstream scores
    from the vision-language scorer leaves them to it (ranking.vlm_scoring).
    """
    if project.vlm_upstream:
        return 0
    missing = list(
        Item.objects.filter(
            project=project,
            upstream_score__isnull=True,
            embedding__isnull=False,
            query__embedding__isnull=False,
        ).select_related("embedding", "query__embedding")
    )
    if not missing:
        return 0
    rankers = builtin_rankers()
    lowest = {
        (query_id, modality): low
        for query_id, modality, low in Item.objects.filter(
            project=project, upstream_score__isnull=False, is_score_builtin=False
        )
        .values("query_id", "modality")
        .annotate(low=Min("upstream_score"))
        .values_list("query_id", "modality", "low")
    }
    for item in missing:
        query_vector = from_bytes(item.query.embedding.vector)
        probs = from_bytes(item.embedding.class_probs)
        if probs is not None:
            score = _image_score(rankers, query_vector, probs)
        else:
            score = float(np.dot(query_vector, from_bytes(item.embedding.text_vector)))
        low = lowest.get((item.query_id, item.modality))
        # Both built-in scores are cosines in [-1, 1]: shifting by 2 keeps them below `low`.
        item.upstream_score = score if low is None else low - 2.0 + score
        item.is_score_builtin = True
    Item.objects.bulk_update(missing, ["upstream_score", "is_score_builtin"], batch_size=500)
    recompute_upstream_ranks(project=project)
    return len(missing)


def _image_score(rankers, query_vector: np.ndarray, probs: np.ndarray) -> float:
    from .ml.rankers import image_upstream_scores

    return float(
        image_upstream_scores(
            query_vector, probs[None, :], rankers.class_name_embs, top_k=rankers.top_k
        )[0]
    )


# --- training pages ---------------------------------------------------------------------------


@dataclass
class TrainingSettings:
    """A project's `training_settings`, with defaults: loss mix, epochs and model size."""

    epochs: int = 40
    patience: int = 6
    lr: float = 2e-3
    batch_size: int = 16
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    ce: float = 1.0
    listmle: float = 1.0
    pair_human: float = 1.0
    pair_implied: float = 0.3
    gamma: float = 0.5
    default_beta: float = 0.1
    single_modal: bool = True
    val_fraction: float = 0.2
    # Distillation from the vision-language scorer (project.vlm_distill): its weight is chosen
    # from `distill_grid` by validation NDCG@10, or is `distill` without validation pages.
    distill: float = 0.3
    distill_grid: tuple[float, ...] = (0.0, 0.3, 1.0)

    @classmethod
    def of(cls, project: Project) -> TrainingSettings:
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in (project.training_settings or {}).items() if k in known})

    def loss_weights(self) -> LossWeights:
        return LossWeights(
            ce=self.ce, listmle=self.listmle, pair_human=self.pair_human, pair_implied=self.pair_implied,
            gamma=self.gamma, default_beta=self.default_beta, single_modal=self.single_modal,
        )  # fmt: skip


def embedding_dims(*, project: Project) -> tuple[int, int]:
    """(text_dim, image_dim) of the project's cached embeddings."""
    row = ItemEmbedding.objects.filter(item__project=project).first()
    if row is None:
        raise ValueError(f"project '{project.slug}' has no embeddings yet: run embed_items first")
    image = ItemEmbedding.objects.filter(item__project=project, image_vector__isnull=False).first()
    text_dim = len(from_bytes(row.text_vector))
    image_dim = len(from_bytes(image.image_vector)) if image else 0
    return text_dim, max(image_dim, 1)


def grade_calibration(*, project: Project) -> dict[str, OffsetEstimate]:
    """Each other modality's grade offset against the reference modality (the project's first),
    measured by the comparisons judged between human-graded items of the two on training queries
    (active_selection.calibration). Empty with one modality."""
    modalities = list(project.modalities)
    if len(modalities) < 2:
        return {}
    reference = modalities[0]
    rows = list(
        Judgment.objects.filter(
            project=project, kind=TaskKind.COMPARE, outcome__isnull=False,
            task__anchor__query__split=Split.TRAIN, superseded_by__isnull=True,
        ).values_list(
            "task__anchor_id", "task__anchor__modality", "task__other_id",
            "task__other__modality", "task__anchor__query_id", "outcome",
        )
    )  # fmt: skip
    grades = human_grades(query_ids={row[4] for row in rows}) if rows else {}
    flipped = {
        CompareOutcome.OTHER_BETTER: CompareOutcome.ANCHOR_BETTER,
        CompareOutcome.ANCHOR_BETTER: CompareOutcome.OTHER_BETTER,
        CompareOutcome.EQUAL: CompareOutcome.EQUAL,
    }
    comparisons: dict[str, list[Comparison]] = defaultdict(list)
    for anchor, anchor_modality, other, other_modality, _, outcome in rows:
        if anchor not in grades or other not in grades:
            continue
        if anchor_modality == reference and other_modality != reference:
            comparisons[other_modality].append(Comparison(grades[anchor], grades[other], outcome))
        elif other_modality == reference and anchor_modality != reference:
            comparisons[anchor_modality].append(
                Comparison(grades[other], grades[anchor], str(flipped[outcome]))
            )
    return {
        modality: estimate_offset(
            observations_from_comparisons(comparisons.get(modality, [])),
            max_grade=project.max_grade,
        )
        for modality in modalities[1:]
    }


def grade_corrections(*, project: Project) -> dict[str, int]:
    """Whole grades to subtract from each modality's human grades for training: measured for the
    strategies that calibrate (iso_anchor, top_p_cal), none for the others (they train on the
    grades as given, which is what they buy)."""
    if project.strategy not in CALIBRATED_STRATEGIES:
        return {}
    corrections = {m: e.correction for m, e in grade_calibration(project=project).items()}
    return {m: c for m, c in corrections.items() if c}


def project_pages(*, project: Project, split: str, query_ids=None) -> list[TrainPage]:
    """One page per query of the split: all its embedded items, labels and pairs as indices.

    Train pages carry human grades (less the modality's measured offset, `grade_corrections`) and
    human / implied pairs; gold pages carry the gold grades.
    """
    text_dim, image_dim = embedding_dims(project=project)
    queries = Query.objects.filter(project=project, split=split, embedding__isnull=False)
    if query_ids is not None:
        queries = queries.filter(pk__in=query_ids)
    query_vectors = dict(queries.values_list("pk", "embedding__vector"))
    items_by_query: dict[int, list] = defaultdict(list)
    rows = (
        Item.objects.filter(query_id__in=list(query_vectors), embedding__isnull=False)
        .order_by("query_id", "modality", "upstream_rank", "pk")
        .values_list("pk", "query_id", "modality", "upstream_score", "gold_grade",
                     "embedding__text_vector", "embedding__image_vector")
    )  # fmt: skip
    for row in rows.iterator(chunk_size=2000):
        items_by_query[row[1]].append(row)
    grades = human_grades(query_ids=list(query_vectors)) if split == Split.TRAIN else {}
    pairs_by_query: dict[int, list] = defaultdict(list)
    if split == Split.TRAIN:
        for query_id, better, worse, source in PreferencePair.objects.filter(
            query_id__in=list(query_vectors), source__in=[PairSource.HUMAN, PairSource.IMPLIED]
        ).values_list("query_id", "better_id", "worse_id", "source"):
            pairs_by_query[query_id].append((better, worse, source))
    intervals = (
        implied_grade_intervals(query_ids=list(query_vectors)) if split == Split.TRAIN else {}
    )
    modality_index = {m: i for i, m in enumerate(project.modalities)}
    if split == Split.TRAIN and (corrections := grade_corrections(project=project)):
        modality_of = {row[0]: row[2] for items in items_by_query.values() for row in items}
        grades = {
            item: min(max(grade - corrections.get(modality_of.get(item), 0), 0), project.max_grade)
            for item, grade in grades.items()
        }
    pages = []
    for query_id, items in sorted(items_by_query.items()):
        position = {row[0]: i for i, row in enumerate(items)}
        image_embs = np.zeros((len(items), image_dim), dtype=np.float32)
        for i, row in enumerate(items):
            if row[6] is not None:
                image_embs[i] = from_bytes(row[6])
        page_grades = [
            (row[4] if row[4] is not None else UNKNOWN_GRADE)
            if split == Split.GOLD
            else grades.get(row[0], UNKNOWN_GRADE)
            for row in items
        ]
        pages.append(
            TrainPage.from_items(
                query_id=query_id,
                query_emb=from_bytes(query_vectors[query_id]),
                text_embs=np.stack([from_bytes(row[5]) for row in items]),
                image_embs=image_embs,
                modalities=[modality_index.get(row[2], 0) for row in items],
                upstream_scores=[np.nan if row[3] is None else row[3] for row in items],
                grades=page_grades,
                pairs=[
                    PagePair(position[b], position[w], source)
                    for b, w, source in pairs_by_query[query_id]
                    if b in position and w in position
                ],
                item_ids=[row[0] for row in items],
                image_dim=image_dim,
                grade_intervals=np.array(
                    [intervals.get(row[0], (-1, -1)) for row in items], dtype=np.int64
                )
                if any(row[0] in intervals for row in items)
                else None,
            )
        )
    assert all(p.features.shape[1] == text_dim + image_dim + 3 for p in pages)
    return pages


def implied_grade_intervals(*, query_ids) -> dict[int, tuple[int, int]]:
    """Each searched item's implied grade interval; where two searches bound the same item, their
    intersection, and nothing where they disagree (an empty intersection is a contradiction)."""
    bounds: dict[int, tuple[int, int]] = {}
    disagreeing: set[int] = set()
    rows = ImpliedGrade.objects.filter(item__query_id__in=query_ids).values_list(
        "item_id", "low", "high"
    )
    for item_id, low, high in rows.iterator():
        if item_id in bounds:
            low, high = max(low, bounds[item_id][0]), min(high, bounds[item_id][1])
            if low > high:
                disagreeing.add(item_id)
        bounds[item_id] = (low, high)
    return {item: bound for item, bound in bounds.items() if item not in disagreeing}


def _split_validation(pages: list[TrainPage], fraction: float, seed: int) -> tuple[list, list]:
    """Hold out a stable share of the labelled train queries for early stopping (never gold)."""
    labelled = [p for p in pages if (p.grades >= 0).sum() >= 2]
    if len(labelled) < 5 or fraction <= 0:
        return pages, []

    def bucket(page: TrainPage) -> float:
        digest = hashlib.sha256(f"{seed}:{page.query_id}".encode()).digest()
        return int.from_bytes(digest[:4], "big") / 2**32

    val_ids = {
        p.query_id for p in sorted(labelled, key=bucket)[: max(1, int(len(labelled) * fraction))]
    }
    return [p for p in pages if p.query_id not in val_ids], [
        validation_page(p) for p in pages if p.query_id in val_ids
    ]


def validation_page(page: TrainPage) -> TrainPage:
    """A held-out train page as early stopping and tuning read it: an item nobody graded counts as
    the low end of the grade interval an anchor search implied for it, else as not relevant (the
    TREC convention for unjudged documents).

    Graded items alone (a condensed list) cannot tell a model that lifts an irrelevant tail item
    into the top ten from one that does not: top-band labels alone then chose, on one simulated
    seed, a model that scored 0.37 on the held-out queries (0.71 with this view).
    """
    grades = page.grades.copy()
    unknown = grades < 0
    if page.grade_intervals is not None:
        low = page.grade_intervals[:, 0]
        implied = unknown & (low >= 0)
        grades[implied] = low[implied]
        unknown &= ~implied
    grades[unknown] = 0
    return replace(page, grades=grades)


def evaluate(model: WholePageReranker, pages: list[TrainPage]) -> dict[str, float | str]:
    """The quality figures of `model` on the pages that have a judged item, with trec_eval's
    figures (`trec_ndcg@k`) computed on the items' external ids, as the run export names them."""
    pages = [p for p in pages if (p.grades >= 0).any()]
    if not pages:
        return {}
    scores = score_pages(model, pages)
    external = dict(
        Item.objects.filter(pk__in=[i for p in pages for i in p.item_ids or ()]).values_list(
            "pk", "external_id"
        )
    )
    return evaluate_pages(
        scores,
        [p.grades for p in pages],
        [p.modalities for p in pages],
        [p.upstream_scores for p in pages],
        docnos_per_query=[[external[i] for i in p.item_ids] for p in pages],
    )


def baseline_metrics(
    pages: list[TrainPage], *, vlm_grades: dict[int, float] | None = None
) -> dict[str, float]:
    """NDCG@10 of the label-free merges on the same pages, the bar every version must clear.

    With `vlm_grades` (item id -> the vision-language scorer's expected grade), also the scorer
    alone as `vlm_zero_shot`; items it has not scored go last.
    """
    pages = [p for p in pages if (p.grades >= 0).any()]
    if not pages:
        return {}
    merges = {
        "zscore_merge": lambda p: baselines.zscore_merge(p.upstream_scores, p.modalities),
        "minmax_merge": lambda p: baselines.minmax_merge(p.upstream_scores, p.modalities),
        "round_robin": lambda p: baselines.round_robin_merge(p.upstream_scores, p.modalities),
    }
    if vlm_grades and any(i in vlm_grades for p in pages for i in p.item_ids or ()):
        merges["vlm_zero_shot"] = lambda p: np.array(
            [vlm_grades.get(i, -np.inf) for i in p.item_ids], dtype=np.float64
        )
    return {
        name: evaluate_pages(
            [merge(p) for p in pages], [p.grades for p in pages], [p.modalities for p in pages]
        )["ndcg@10"]
        for name, merge in merges.items()
    }


# --- versions ---------------------------------------------------------------------------------


def training_stalled(version: RerankerVersion, *, now=None) -> bool:
    """A `training` version whose worker gave no heartbeat for PAGEWISE_TRAINING_STALL_SECONDS."""
    last = version.heartbeat_at or version.created_at
    now = now or timezone.now()
    return (now - last).total_seconds() > settings.PAGEWISE_TRAINING_STALL_SECONDS


def heartbeat(version: RerankerVersion) -> None:
    """Renew the training lease: the sweep leaves a version with a recent heartbeat alone."""
    version.heartbeat_at = timezone.now()  # kept in memory too: the version is saved at the end
    RerankerVersion.objects.filter(pk=version.pk, status=RerankerVersion.Status.TRAINING).update(
        heartbeat_at=version.heartbeat_at
    )


def _mark_stalled(version: RerankerVersion) -> None:
    now = timezone.now()
    last = version.heartbeat_at or version.created_at
    version.status = RerankerVersion.Status.FAILED
    version.finished_at = now
    version.message = (
        f"training stalled (no heartbeat since {last:%Y-%m-%d %H:%M:%S} UTC), "
        f"restarted at {now:%Y-%m-%d %H:%M:%S} UTC"
    )
    version.save(update_fields=["status", "finished_at", "message"])


def supervision_count(*, project: Project) -> dict[str, int]:
    pairs = PreferencePair.objects.filter(project=project)
    return {
        "graded_items": human_graded_item_count(project=project, split=Split.TRAIN),
        "pairs_human": pairs.filter(source=PairSource.HUMAN).count(),
        "pairs_implied": pairs.filter(source=PairSource.IMPLIED).count(),
    }


def _supervision_upper_bound(project: Project) -> int:
    """At least `sum(supervision_count(...).values())`, from plain counts on indexed keys: every
    grade row of the project (an item graded twice counts twice, gold items too), adjudications,
    and human and implied pairs."""
    from labeling.models import Adjudication, ItemGrade

    return (
        ItemGrade.objects.filter(judgment__project=project).count()
        + Adjudication.objects.filter(item__project=project).count()
        + PreferencePair.objects.filter(
            project=project, source__in=[PairSource.HUMAN, PairSource.IMPLIED]
        ).count()
    )


def _claim_training(project: Project, celery_task_id: str) -> RerankerVersion | None:
    """Create this project's one `training` version row, or take over our own after a redelivery.

    Holds a row lock on the project, so two workers never train the same project at once.
    """
    with transaction.atomic():
        Project.objects.select_for_update(no_key=True).get(pk=project.pk)
        running = RerankerVersion.objects.filter(
            project=project, status=RerankerVersion.Status.TRAINING
        ).first()
        if running is not None:
            if celery_task_id and running.celery_task_id == celery_task_id:
                heartbeat(running)
                return running  # the same Celery task, delivered again after its worker died
            if not training_stalled(running):
                return None
            _mark_stalled(running)
        number = (
            RerankerVersion.objects.filter(project=project).aggregate(n=Max("number"))["n"] or 0
        ) + 1
        return RerankerVersion.objects.create(
            project=project, number=number, celery_task_id=celery_task_id,
            heartbeat_at=timezone.now(),
        )  # fmt: skip


def weights_path_for(version: RerankerVersion) -> Path:
    return (
        Path(settings.MEDIA_ROOT)
        / "rerankers"
        / str(version.project_id)
        / f"v{version.number}.safetensors"
    )


def train_version(
    *,
    project: Project,
    seed: int = 0,
    celery_task_id: str = "",
    threads: int | None = None,
    verbose: bool = False,
) -> RerankerVersion | None:
    """Train a new reranker version on the project's labels and activate it if not worse on gold.

    Returns None when another training of the project is running. Safe to run again after a crash.
    """
    version = _claim_training(project, celery_task_id)
    if version is None:
        return None
    started = time.perf_counter()
    try:
        options = TrainingSettings.of(project)
        counts = supervision_count(project=project)
        spent = budget_status(project=project)["spent"]
        pages = project_pages(project=project, split=Split.TRAIN)
        if not options.single_modal:
            pages = [p for p in pages if (p.grades >= 0).any() or p.pairs]
        if not pages:
            raise ValueError("no training pages: embed the items and collect labels first")
        gold = project_pages(project=project, split=Split.GOLD)
        use_features, use_teacher = project.vlm_features, project.vlm_distill
        if use_features or use_teacher:
            vlm_scoring.attach_to_pages(
                pages, project=project, features=use_features, teacher=use_teacher
            )
            vlm_scoring.attach_to_pages(gold, project=project, features=use_features, teacher=False)
        train_pages, val_pages = _split_validation(pages, options.val_fraction, seed)
        text_dim, image_dim = embedding_dims(project=project)
        config = RerankerConfig(
            text_dim=text_dim, image_dim=image_dim, n_modalities=max(len(project.modalities), 1),
            n_grades=len(project.grade_names), hidden=options.hidden, layers=options.layers,
            heads=options.heads, seed=seed,
            extra_dim=vlm_feature_dim(len(project.grade_names)) if use_features else 0,
        )  # fmt: skip
        grid: list[float | None] = [None]
        if use_teacher:
            grid = [float(w) for w in options.distill_grid] if val_pages else [options.distill]
        result, distill_weight, tried = None, None, {}
        for weight in grid:
            loss_weights = options.loss_weights()
            if weight is not None:
                loss_weights = replace(loss_weights, distill=weight)
            candidate = train(
                config, train_pages, val_pages, weights=loss_weights, epochs=options.epochs,
                lr=options.lr, batch_size=options.batch_size, patience=options.patience,
                seed=seed, threads=threads, device=resolve_device(), verbose=verbose,
                progress=lambda report: heartbeat(version),
            )  # fmt: skip
            if weight is not None:
                tried[str(weight)] = candidate.val_metric
            # The distillation weight is tuned like an early stop: on validation, never on gold.
            if result is None or candidate.val_metric > result.val_metric:
                result, distill_weight = candidate, weight
        path = result.model.save(weights_path_for(version))
        metrics = evaluate(result.model, gold) if gold else evaluate(result.model, val_pages)
        metrics["measured_on"] = "gold" if gold else "validation"
        vlm_grades = vlm_scoring.expected_grades(project=project) if project.vlm_baseline else None
        metrics["baselines"] = baseline_metrics(gold, vlm_grades=vlm_grades) if gold else {}
        version.graded_items = counts["graded_items"]
        version.pairs_human = counts["pairs_human"]
        version.pairs_implied = counts["pairs_implied"]
        version.labels_used = sum(counts.values())
        version.cost_spent = spent
        metrics = json_safe(metrics)
        version.gold_ndcg10 = metrics.get("ndcg@10")
        version.metrics = metrics
        version.training = json_safe({
            "epochs_run": len(result.history), "best_epoch": result.best_epoch,
            "val_ndcg10": result.val_metric, "seconds": round(time.perf_counter() - started, 2),
            "train_pages": len(train_pages), "val_pages": len(val_pages), "gold_pages": len(gold),
            "settings": asdict(options), "seed": seed, "vlm_features": use_features,
            "distill_weight": distill_weight, "distill_val_ndcg10": tried,
            # Each modality's measured grade offset, and the correction its grades got.
            "grade_calibration": {
                modality: {**estimate.as_dict(), "applied": project.strategy in CALIBRATED_STRATEGIES}
                for modality, estimate in grade_calibration(project=project).items()
            },
        })  # fmt: skip
        version.weights_path = str(path)
        _finish_version(version)
    except Exception as exc:
        version.status = RerankerVersion.Status.FAILED
        version.message = str(exc)[:2000]
        version.finished_at = timezone.now()
        version.save()
        raise
    return version


def json_safe(value):
    """A copy of `value` for a JSON column: tuples as lists, keys as strings, and every NaN or
    infinity as None (JSON has no such numbers and the database's JSON columns refuse them; a
    version trained without validation pages has a NaN validation NDCG@10)."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {str(key): json_safe(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_safe(item) for item in value]
    return value


def _finish_version(version: RerankerVersion) -> None:
    """Activate atomically if not worse on gold than the active version; otherwise reject."""
    with transaction.atomic():
        Project.objects.select_for_update(no_key=True).get(pk=version.project_id)
        active = RerankerVersion.objects.filter(
            project_id=version.project_id, status=RerankerVersion.Status.ACTIVE
        ).first()
        is_better = (
            active is None
            or active.gold_ndcg10 is None
            or (
                version.gold_ndcg10 is not None and version.gold_ndcg10 >= active.gold_ndcg10 - 1e-9
            )
        )
        if is_better and active is not None:
            active.status = RerankerVersion.Status.RETIRED
            active.save(update_fields=["status"])
        version.status = (
            RerankerVersion.Status.ACTIVE if is_better else RerankerVersion.Status.REJECTED
        )
        if not is_better:
            version.message = f"NDCG@10 {version.gold_ndcg10:.4f} < active v{active.number}'s {active.gold_ndcg10:.4f}"
        version.finished_at = timezone.now()
        version.save()
        if is_better:
            transaction.on_commit(
                partial(
                    announce,
                    version_activated,
                    project_id=version.project_id,
                    version_id=version.pk,
                )
            )


def active_version(*, project: Project) -> RerankerVersion | None:
    return RerankerVersion.objects.filter(
        project=project, status=RerankerVersion.Status.ACTIVE
    ).first()


def resolve_device() -> str:
    from .ml.encoders import resolve_device as resolve

    return str(resolve(settings.PAGEWISE_TORCH_DEVICE or None))


def _queue_retrain(project_id: int) -> None:
    # Named, not imported: ranking.tasks runs this module's work (`train_version`).
    signature("ranking.tasks.retrain_reranker", args=(project_id,)).delay()


def maybe_queue_retrain(*, project: Project) -> bool:
    """Queue a retrain (after commit) when new supervision since the last version passes the threshold."""
    latest = (
        RerankerVersion.objects.filter(project=project)
        .exclude(status=RerankerVersion.Status.FAILED)
        .first()
    )
    if latest is not None and latest.status == RerankerVersion.Status.TRAINING:
        if not training_stalled(latest):
            return False
        # Its worker died (no heartbeat for minutes): take the work over now rather than wait
        # for the broker to redeliver the task (CELERY_VISIBILITY_TIMEOUT, an hour).
        with transaction.atomic():
            Project.objects.select_for_update(no_key=True).get(pk=project.pk)
            latest.refresh_from_db()
            if latest.status != RerankerVersion.Status.TRAINING or not training_stalled(latest):
                return False
            _mark_stalled(latest)
        transaction.on_commit(lambda: _queue_retrain(project.pk))
        return True
    if not ItemEmbedding.objects.filter(item__project=project).exists():
        return False
    used = latest.labels_used if latest else 0
    # Counting graded items takes every item's median grade; most judgments leave the total far
    # from the threshold, which three plain counts (never below that total) already show.
    if _supervision_upper_bound(project) - used < project.retrain_threshold:
        return False
    if sum(supervision_count(project=project).values()) - used < project.retrain_threshold:
        return False
    transaction.on_commit(lambda: _queue_retrain(project.pk))
    return True


def rerank_scores(*, project: Project, version: RerankerVersion | None = None):
    """(query external id, item external id, score) of every embedded item, by the active version."""
    version = version or active_version(project=project)
    if version is None:
        raise ValueError(f"project '{project.slug}' has no active reranker version")
    model = WholePageReranker.load(version.weights_path)
    ids = dict(Item.objects.filter(project=project).values_list("pk", "external_id"))
    qids = dict(Query.objects.filter(project=project).values_list("pk", "external_id"))
    for split in (Split.TRAIN, Split.GOLD):
        pages = project_pages(project=project, split=split)
        if model.config.extra_dim:
            # A version trained on the vision-language scorer's features reads them again.
            vlm_scoring.attach_to_pages(pages, project=project, features=True, teacher=False)
        for page, scores in zip(pages, score_pages(model, pages), strict=True):
            for item_id, score in zip(page.item_ids, scores, strict=True):
                yield qids[page.query_id], ids[item_id], float(score)
