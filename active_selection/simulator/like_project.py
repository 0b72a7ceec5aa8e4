"""A world shaped like a project (`simulate --like-project` and the settings card): its shape,
the grade mix and upstream Kendall tau of its gold queries, the embedding noise that sees
relevance as well as its own embeddings do, and the grading bias its latest calibration check
measured."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from django.db.models import Count

from labeling.models import Item, Project, Query, Split
from ranking.ml.features import SCALAR_FEATURES
from ranking.ml.synthetic import make_world
from ranking.services import project_pages

from ..models import CalibrationCheck
from .world import MODALITY_NAMES, WorldSpec


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
