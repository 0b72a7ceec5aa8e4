"""The vision-language scorer on the database: score a project's items (cached by model identity
and content), give unscored items an upstream score from it, and read its grades back.

Runs in a worker (ranking.tasks.score_project_with_vlm); progress is a VlmScoringRun row.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import defaultdict
from functools import lru_cache
from pathlib import Path

import numpy as np
from celery import signature
from django.conf import settings
from django.db import transaction
from django.db.models import Min, Q
from django.utils import timezone
from PIL import Image

from active_selection.models import PairSource, PreferencePair
from labeling.models import Item, Project, Split, VlmMode
from labeling.selectors import human_grades
from labeling.services import recompute_upstream_ranks

from .ml.encoders import resolve_device
from .ml.metrics import evaluate_pages
from .ml.vlm import VlmItem, VlmScorer, files_signature, vlm_feature_columns
from .models import ItemVlmScore, VlmScorerVersion, VlmScoringRun, from_bytes, to_bytes

log = logging.getLogger(__name__)

# Items handed to the scorer at once: progress is saved after each chunk.
CHUNK_ITEMS = 64


class VlmNotConfigured(ValueError):
    """The project asks for the scorer but no model directory is set or present."""


def model_dir(*, project: Project) -> Path:
    """The project's model directory, or VlmNotConfigured saying what to set."""
    path = project.vlm_model_dir
    if path is None:
        raise VlmNotConfigured(
            "no vision-language model is configured: set PAGEWISE_VLM_PATH on the server, or "
            "name a model directory under PAGEWISE_VLM_ROOT in the project's settings"
        )
    if not path.is_dir():
        raise VlmNotConfigured(f"the vision-language model directory {path} does not exist")
    return path


@lru_cache(maxsize=2)
def _load_scorer(path: str, grade_names: tuple[str, ...], device: str, batch_size: int, files):
    return VlmScorer(path, grade_names=grade_names, device=device, batch_size=batch_size)


def scorer_for(*, project: Project):
    """The project's VlmScorer, loaded once per process (per model directory and grade scale)."""
    path = model_dir(project=project)
    # The files' sizes and mtimes in the key: weights replaced in place are loaded again (and
    # hashed again, so their scores are cached apart from the old weights').
    return _load_scorer(
        str(path),
        tuple(project.grade_names),
        str(resolve_device(settings.PAGEWISE_TORCH_DEVICE or None)),
        settings.PAGEWISE_VLM_BATCH_SIZE,
        files_signature(path),
    )


def item_text(item: Item) -> str:
    return ". ".join(part for part in (item.title, item.text) if part)


def _open_image(item: Item) -> Image.Image | None:
    if not item.image:
        return None
    with item.image.open("rb") as handle, Image.open(handle) as image:
        return image.convert("RGB")


def _item_key(item: Item) -> str:
    # Image files are named by their content hash on import, so the name stands for the pixels.
    return f"{item_text(item)}\x1f{item.image.name if item.image else ''}"


def _content_key(query_text: str, items: list[Item]) -> str:
    digest = hashlib.sha256(query_text.encode())
    for item in items:
        digest.update(b"\x1e" + _item_key(item).encode())
    return digest.hexdigest()


def _vlm_item(item: Item) -> VlmItem:
    return VlmItem(text=item_text(item), image=_open_image(item))


def _units(project: Project, mode: str) -> list[tuple[str, list[Item], str]]:
    """What one prompt reads: (query text, items, content key) per item, or per page listwise.

    Listwise pages are a query's items in import order, `page_size` at a time: the upstream
    order may be exactly what is missing.
    """
    items = list(
        Item.objects.filter(project=project).select_related("query").order_by("query_id", "pk")
    )
    by_query: dict[int, list[Item]] = defaultdict(list)
    for item in items:
        by_query[item.query_id].append(item)
    units = []
    for group in by_query.values():
        query_text = group[0].query.text
        if mode == VlmMode.LISTWISE:
            size = max(project.page_size, 1)
            for start in range(0, len(group), size):
                page = group[start : start + size]
                units.append((query_text, page, _content_key(query_text, page)))
        else:
            units.extend((query_text, [item], _content_key(query_text, [item])) for item in group)
    return units


def _store(scorer, mode: str, rows: list[tuple[Item, str, float, np.ndarray]]) -> None:
    ItemVlmScore.objects.bulk_create(
        [
            ItemVlmScore(
                item=item,
                scorer=scorer.identity,
                mode=mode,
                content_key=key,
                expected_grade=max(float(expected), 0.0),
                distribution=to_bytes(distribution),
            )
            for item, key, expected, distribution in rows
        ],
        update_conflicts=True,
        unique_fields=["item", "scorer", "mode"],
        update_fields=["content_key", "expected_grade", "distribution", "created_at"],
    )


def score_items(*, project: Project, run: VlmScoringRun | None = None) -> VlmScoringRun:
    """Score every item of the project whose cached score is missing or stale; then, if the
    project says so, give items without an imported upstream score the scorer's expected grade.
    """
    run = run or VlmScoringRun.objects.create(project=project)
    started = time.perf_counter()
    try:
        scorer = scorer_for(project=project)
        mode = project.vlm_mode
        units = _units(project, mode)
        cached = dict(
            ItemVlmScore.objects.filter(
                item__project=project, scorer=scorer.identity, mode=mode
            ).values_list("item_id", "content_key")
        )
        stale = [u for u in units if any(cached.get(i.pk) != u[2] for i in u[1])]
        run.status = VlmScoringRun.Status.RUNNING
        run.scorer, run.mode = scorer.identity, mode
        run.items_total = sum(len(u[1]) for u in units)
        run.items_done = run.items_total - sum(len(u[1]) for u in stale)
        run.save()
        chunk: list = []
        for index, unit in enumerate(stale):
            chunk.append(unit)
            if sum(len(u[1]) for u in chunk) < CHUNK_ITEMS and index < len(stale) - 1:
                continue
            if mode == VlmMode.LISTWISE:
                results = scorer.score_pages(
                    [(q, [_vlm_item(i) for i in items]) for q, items, _ in chunk]
                )
            else:
                pointwise = scorer.score_pairs(
                    [q for q, _, _ in chunk], [_vlm_item(items[0]) for _, items, _ in chunk]
                )
                results = [
                    type(pointwise)(
                        pointwise.expected[[i]], pointwise.distribution[[i]], pointwise.mode
                    )
                    for i in range(len(chunk))
                ]
            rows = []
            for (_, items, key), result in zip(chunk, results, strict=True):
                rows.extend(
                    (item, key, result.expected[i], result.distribution[i])
                    for i, item in enumerate(items)
                )
            _store(scorer, mode, rows)
            run.items_done += len(rows)
            run.items_scored += len(rows)
            run.save(update_fields=["items_done", "items_scored"])
            chunk = []
        if project.vlm_upstream:
            fill_upstream_scores(project=project, scorer_identity=scorer.identity, mode=mode)
        run.status = VlmScoringRun.Status.DONE
    except Exception as exc:
        run.status = VlmScoringRun.Status.FAILED
        run.message = str(exc)[:2000]
        log.exception("vision-language scoring of project %s failed", project.pk)
    run.seconds = round(time.perf_counter() - started, 3)
    run.finished_at = timezone.now()
    run.save()
    return run


def expected_grades(
    *, project: Project, scorer_identity: str | None = None, mode: str | None = None
) -> dict[int, float]:
    """Item id -> the scorer's expected grade, for the project's current model and mode.

    Without `scorer_identity`, the latest finished run's scorer (so a read needs no model).
    """
    if scorer_identity is None:
        run = (
            VlmScoringRun.objects.filter(project=project, status=VlmScoringRun.Status.DONE)
            .exclude(scorer="")
            .first()
        )
        if run is None:
            return {}
        scorer_identity, mode = run.scorer, run.mode
    return dict(
        ItemVlmScore.objects.filter(
            item__project=project, scorer=scorer_identity, mode=mode or project.vlm_mode
        ).values_list("item_id", "expected_grade")
    )


def attach_to_pages(pages, *, project: Project, features: bool, teacher: bool) -> int:
    """Give training or gold pages the scorer's grade distributions of their items (the latest
    finished run): as feature columns (`features`), as a distillation target (`teacher`).
    Items it has not scored get zero feature rows and no target. Returns items that had one."""
    grades = len(project.grade_names)
    ids = [item_id for page in pages for item_id in page.item_ids or ()]
    found = grade_distributions(project=project, item_ids=ids)
    for page in pages:
        dist = np.full((len(page.item_ids), grades), np.nan, dtype=np.float64)
        for row, item_id in enumerate(page.item_ids):
            value = found.get(item_id)
            if value is not None and len(value) == grades:
                dist[row] = value
        if features:
            page.features = np.concatenate([page.features, vlm_feature_columns(dist)], axis=1)
        if teacher:
            page.soft_grades = dist.astype(np.float32)
    return len(found)


def grade_distributions(*, project: Project, item_ids) -> dict[int, np.ndarray]:
    """Item id -> grade distribution of the latest finished run's scorer."""
    run = (
        VlmScoringRun.objects.filter(project=project, status=VlmScoringRun.Status.DONE)
        .exclude(scorer="")
        .first()
    )
    if run is None:
        return {}
    wanted = set(item_ids)
    return {
        item_id: from_bytes(data)
        for item_id, data in ItemVlmScore.objects.filter(
            item__project=project, scorer=run.scorer, mode=run.mode
        ).values_list("item_id", "distribution")
        if item_id in wanted
    }


@transaction.atomic
def fill_upstream_scores(*, project: Project, scorer_identity: str, mode: str) -> int:
    """Items imported without an upstream score (or given a built-in one) take the scorer's
    expected grade. Where a query's modality has imported scores, they go below the lowest one,
    as the built-in rankers' do: the imported ranker is trusted over any built-in one."""
    grades = expected_grades(project=project, scorer_identity=scorer_identity, mode=mode)
    items = list(
        Item.objects.filter(project=project, pk__in=list(grades)).filter(
            Q(is_score_builtin=True) | Q(upstream_score__isnull=True)
        )
    )
    if not items:
        return 0
    lowest = {
        (query_id, modality): low
        for query_id, modality, low in Item.objects.filter(
            project=project, upstream_score__isnull=False, is_score_builtin=False
        )
        .values("query_id", "modality")
        .annotate(low=Min("upstream_score"))
        .values_list("query_id", "modality", "low")
    }
    top = project.max_grade + 1
    for item in items:
        low = lowest.get((item.query_id, item.modality))
        grade = grades[item.pk]
        item.upstream_score = grade if low is None else low - top + grade
        item.is_score_builtin = True
    Item.objects.bulk_update(items, ["upstream_score", "is_score_builtin"], batch_size=500)
    recompute_upstream_ranks(project=project)
    return len(items)


def queue_scoring(*, project: Project) -> VlmScoringRun | None:
    """Queue a scoring run after the commit when the project uses the scorer; None otherwise."""
    if not project.uses_vlm:
        return None
    open_run = VlmScoringRun.objects.filter(
        project=project, status=VlmScoringRun.Status.QUEUED
    ).first()
    if open_run is not None:
        return open_run
    run = VlmScoringRun.objects.create(project=project)
    # Named, not imported: ranking.tasks runs this module's work (`score_items`).
    scoring = signature("ranking.tasks.score_project_with_vlm", args=(project.pk, run.pk))
    transaction.on_commit(scoring.delay)
    return run


def latest_run(*, project: Project) -> VlmScoringRun | None:
    return VlmScoringRun.objects.filter(project=project).first()


class FineTuneBusy(ValueError):
    """A fine-tune of the project's scorer is already running."""


def create_fine_tune_version(
    *, project: Project, epochs: int = 1, lr: float = 1e-4, rank: int = 8
) -> VlmScorerVersion:
    """The project's next scorer version, in training; it is trained by `fine_tune_version`.

    Takes the project's row lock so two requests cannot both number a version; the database's
    one-training-per-project constraint is the truth, this check gives the message."""
    model_dir(project=project)  # VlmNotConfigured, with what to set
    if epochs < 1 or rank < 1 or not lr > 0:
        raise ValueError("epochs and rank must be at least 1, the learning rate above 0")
    with transaction.atomic():
        Project.objects.select_for_update(no_key=True).get(pk=project.pk)
        running = VlmScorerVersion.objects.filter(
            project=project, status=VlmScorerVersion.Status.TRAINING
        ).first()
        if running is not None:
            raise FineTuneBusy(f"scorer v{running.number} is still being fine-tuned")
        last = VlmScorerVersion.objects.filter(project=project).first()
        number = (last.number if last else 0) + 1
        return VlmScorerVersion.objects.create(
            project=project,
            number=number,
            model_name=f"project-{project.pk}-vlm-v{number}",
            training={"epochs": epochs, "lr": lr, "rank": rank},
        )


def queue_fine_tune(
    *, project: Project, epochs: int = 1, lr: float = 1e-4, rank: int = 8
) -> VlmScorerVersion:
    """Create the next scorer version and fine-tune it in a worker after the commit."""
    version = create_fine_tune_version(project=project, epochs=epochs, lr=lr, rank=rank)
    # Named, not imported: ranking.tasks runs this module's work (`fine_tune_version`).
    tuning = signature("ranking.tasks.fine_tune_vlm", args=(project.pk, version.pk))
    transaction.on_commit(tuning.delay)
    return version


def _gold_ndcg10(project: Project, scorer) -> float | None:
    """NDCG@10 of the scorer's expected grade (pointwise) on the gold queries' gold grades;
    None when the project has no gold grades."""
    items = list(
        Item.objects.filter(
            project=project, query__split=Split.GOLD, gold_grade__isnull=False
        ).select_related("query")
    )
    if not items:
        return None
    by_query: dict[int, list[Item]] = defaultdict(list)
    for item in items:
        by_query[item.query_id].append(item)
    modalities = {name: index for index, name in enumerate(project.modalities)}
    scores, grades, mods = [], [], []
    for group in by_query.values():
        result = scorer.score(group[0].query.text, [_vlm_item(item) for item in group])
        scores.append(result.expected.astype(np.float64))
        grades.append(np.array([item.gold_grade for item in group]))
        mods.append(np.array([modalities.get(item.modality, 0) for item in group]))
    return float(evaluate_pages(scores, grades, mods)["ndcg@10"])


def fine_tune_version(*, version: VlmScorerVersion) -> VlmScorerVersion:
    """LoRA-fine-tune the project's current scorer on its human grades (training queries only,
    never gold) and human preference pairs, write the merged model to PAGEWISE_VLM_ROOT/
    `model_name`, measure both scorers on gold and activate the new one only when it is not
    worse there (see `_finish_fine_tune`). Safe to run twice: a finished version is returned."""
    # peft is imported only here: scoring never needs it.
    from .ml import vlm_finetune
    from .ml.vlm_finetune import GradeExample, PreferenceExample, fine_tune

    if version.status != VlmScorerVersion.Status.TRAINING:
        return version
    project = version.project
    started = time.perf_counter()
    try:
        source = model_dir(project=project)
        train_queries = list(project.queries.filter(split=Split.TRAIN).values_list("pk", flat=True))
        labels = human_grades(query_ids=train_queries)
        items = {
            item.pk: item
            for item in Item.objects.filter(project=project, pk__in=list(labels)).select_related(
                "query"
            )
        }
        pairs = list(
            PreferencePair.objects.filter(
                project=project, source=PairSource.HUMAN, query_id__in=train_queries
            ).select_related("query", "better", "worse")
        )
        scorer = VlmScorer(
            source,
            grade_names=project.grade_names,
            device=resolve_device(settings.PAGEWISE_TORCH_DEVICE or None),
            batch_size=settings.PAGEWISE_VLM_BATCH_SIZE,
        )
        version.base_model = scorer.identity[:200]
        version.graded_items, version.pairs = len(labels), len(pairs)
        version.save(update_fields=["base_model", "graded_items", "pairs"])
        base_gold = _gold_ndcg10(project, scorer)

        def progress(done: int, total: int) -> None:
            VlmScorerVersion.objects.filter(pk=version.pk).update(
                steps_done=done, steps_total=total
            )

        options = version.training
        result = fine_tune(
            scorer,
            [GradeExample(items[i].query.text, _vlm_item(items[i]), g) for i, g in labels.items()],
            [
                PreferenceExample(p.query.text, _vlm_item(p.better), _vlm_item(p.worse))
                for p in pairs
            ],
            out_dir=Path(settings.PAGEWISE_VLM_ROOT) / version.model_name,
            epochs=int(options.get("epochs", 1)),
            lr=float(options.get("lr", 1e-4)),
            rank=int(options.get("rank", 8)),
            progress=progress,
            max_cpu_parameters=vlm_finetune.MAX_CPU_PARAMETERS,
        )
        version.refresh_from_db(fields=["steps_done", "steps_total"])
        version.base_gold_ndcg10 = base_gold
        version.gold_ndcg10 = _gold_ndcg10(project, scorer)
        version.training = {
            **options,
            "steps": result.steps,
            "losses": result.losses,
            "parameters_trained": result.parameters_trained,
            "seconds": round(time.perf_counter() - started, 3),
        }
    except Exception as exc:  # noqa: BLE001 - the version records any failure with its reason
        log.exception("fine-tuning scorer v%s of project %s failed", version.number, project.pk)
        version.status = VlmScorerVersion.Status.FAILED
        version.message = str(exc)[:2000]
        version.finished_at = timezone.now()
        version.save()
        return version
    _finish_fine_tune(version)
    return version


def _finish_fine_tune(version: VlmScorerVersion) -> None:
    """Under the project's row lock: activate the version (retire the active one, point the
    project's `vlm_model` at it, rescore after the commit) when its gold NDCG@10 is not below
    the scorer it was tuned from; otherwise reject it and keep the project's scorer."""
    with transaction.atomic():
        project = Project.objects.select_for_update(no_key=True).get(pk=version.project_id)
        is_better = (
            version.base_gold_ndcg10 is None
            or version.gold_ndcg10 is None
            or version.gold_ndcg10 >= version.base_gold_ndcg10 - 1e-9
        )
        version.finished_at = timezone.now()
        if not is_better:
            version.status = VlmScorerVersion.Status.REJECTED
            version.message = (
                f"gold NDCG@10 {version.gold_ndcg10:.4f} < {version.base_gold_ndcg10:.4f} of the "
                "scorer it was tuned from; the project keeps that scorer"
            )
            version.save()
            return
        VlmScorerVersion.objects.filter(
            project=project, status=VlmScorerVersion.Status.ACTIVE
        ).update(status=VlmScorerVersion.Status.RETIRED)
        version.status = VlmScorerVersion.Status.ACTIVE
        if version.gold_ndcg10 is None:
            version.message = "activated without a gold measurement: the project has no gold"
        version.save()
        project.vlm_model = version.model_name
        project.save(update_fields=["vlm_model"])
        queue_scoring(project=project)
