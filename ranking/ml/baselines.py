"""Label-free ways to merge single-modal lists into one page: what the reranker must beat.

Each takes one query's upstream scores and modalities and returns merged scores (higher = first),
so the same metrics apply. Missing upstream scores (NaN) go last within their modality.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np

from .features import upstream_ranks_within_modality, upstream_zscores_within_modality

Merge = Callable[[np.ndarray, np.ndarray], np.ndarray]


def zscore_merge(upstream_scores: np.ndarray, modalities: np.ndarray) -> np.ndarray:
    """Each modality's scores as z-scores within the query; assumes every modality's relevance is
    spread the same way, which is what fails when one modality has nothing relevant."""
    scores = np.asarray(upstream_scores, dtype=np.float64)
    z = upstream_zscores_within_modality(scores, modalities)
    return np.where(np.isnan(scores), -np.inf, z)


def minmax_merge(upstream_scores: np.ndarray, modalities: np.ndarray) -> np.ndarray:
    """Each modality's scores rescaled to [0, 1] within the query (a lone item gets 1)."""
    scores = np.asarray(upstream_scores, dtype=np.float64)
    modalities = np.asarray(modalities)
    merged = np.full(len(scores), -np.inf)
    for modality in np.unique(modalities):
        idx = np.flatnonzero((modalities == modality) & ~np.isnan(scores))
        if len(idx) == 0:
            continue
        low, high = scores[idx].min(), scores[idx].max()
        merged[idx] = (scores[idx] - low) / (high - low) if high > low else 1.0
    return merged


def round_robin_merge(
    upstream_scores: np.ndarray,
    modalities: np.ndarray,
    modality_order: Sequence[int] | None = None,
) -> np.ndarray:
    """Interleave the modalities by upstream rank: every modality's first item, then every
    second item, and so on; within a round, modalities in `modality_order` (default: by id).

    Returns -position, so sorting by score descending gives the interleaved page.
    """
    scores = np.asarray(upstream_scores, dtype=np.float64)
    modalities = np.asarray(modalities)
    ranks = upstream_ranks_within_modality(scores, modalities)
    order = list(modality_order) if modality_order is not None else sorted(set(modalities.tolist()))
    slot = {int(m): i for i, m in enumerate(order)}
    keys = ranks * len(order) + np.array([slot[int(m)] for m in modalities])
    position = np.empty(len(scores), dtype=np.float64)
    position[np.argsort(keys, kind="stable")] = np.arange(len(scores))
    return -position


def raw_score_merge(upstream_scores: np.ndarray, modalities: np.ndarray) -> np.ndarray:
    """The raw upstream scores, compared across modalities as if they shared a scale (they do not)."""
    scores = np.asarray(upstream_scores, dtype=np.float64)
    return np.where(np.isnan(scores), -np.inf, scores)


BASELINES: dict[str, Merge] = {
    "zscore": zscore_merge,
    "minmax": minmax_merge,
    "round_robin": round_robin_merge,
    "raw_score": raw_score_merge,
}
