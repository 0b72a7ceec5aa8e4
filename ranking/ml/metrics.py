"""Ranking quality: NDCG@k over a whole page, cross-modal pair accuracy, and per-modality Kendall
tau against the upstream order (scipy's). Plain numpy, one query at a time, plus means over
queries.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
from scipy.stats import kendalltau

Gain = Literal["exponential", "linear"]
# The gain of every `ndcg@k` the product stores and shows; `trec_ndcg@k` is trec_eval's linear one.
NDCG_GAIN: Gain = "exponential"


def _gains(grades: np.ndarray, gain: Gain) -> np.ndarray:
    if gain == "exponential":
        return np.exp2(grades) - 1.0
    if gain == "linear":
        return grades.astype(np.float64)
    raise ValueError(f"unknown gain {gain!r}")


def _judged(scores: np.ndarray, grades: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    grades = np.asarray(grades, dtype=np.float64)
    if scores.shape != grades.shape:
        raise ValueError(f"scores {scores.shape} and grades {grades.shape} differ in shape")
    judged = grades >= 0
    return scores[judged], grades[judged]


def _tie_averaged_dcg(scores: np.ndarray, gains: np.ndarray, k: int) -> float:
    # Items with equal scores share the mean gain of their group, i.e. the expected DCG over all
    # orders of the tie. A model that outputs ties gets no credit for a lucky tie-break; this is
    # also what sklearn.metrics.ndcg_score does (ignore_ties=False).
    order = np.argsort(-scores, kind="stable")
    sorted_scores, sorted_gains = scores[order], gains[order]
    discounts = 1.0 / np.log2(np.arange(len(scores)) + 2.0)
    discounts[k:] = 0.0
    _, group, counts = np.unique(-sorted_scores, return_inverse=True, return_counts=True)
    group_mean_gain = np.bincount(group, weights=sorted_gains) / counts
    return float(np.sum(group_mean_gain[group] * discounts))


def ideal_dcg_at_k(grades: np.ndarray, k: int, gain: Gain = "exponential") -> float:
    grades = np.asarray(grades, dtype=np.float64)
    gains = np.sort(_gains(grades[grades >= 0], gain))[::-1][:k]
    return float(np.sum(gains / np.log2(np.arange(len(gains)) + 2.0)))


def ndcg_at_k(
    scores: np.ndarray, grades: np.ndarray, k: int = 10, gain: Gain = "exponential"
) -> float:
    """NDCG@k of one query's items ordered by `scores` (higher first).

    Gain is exponential (2^grade - 1) by default, the usual choice for graded web relevance: it
    rewards putting a grade-4 item first far more than a grade-1 item. `gain="linear"` uses the
    grade itself, as sklearn.metrics.ndcg_score does. Items with grade < 0 (not judged) are left
    out (a condensed list). Tied scores share their mean gain. A query with no relevant judged item
    has NDCG 0 (as in sklearn); `mean_ndcg_at_k` leaves such queries out.
    """
    scores, grades = _judged(scores, grades)
    ideal = ideal_dcg_at_k(grades, k, gain)
    if ideal <= 0.0:
        return 0.0
    return _tie_averaged_dcg(scores, _gains(grades, gain), k) / ideal


def mean_ndcg_at_k(
    scores_per_query: Sequence[np.ndarray],
    grades_per_query: Sequence[np.ndarray],
    k: int = 10,
    gain: Gain = "exponential",
) -> float:
    """Mean NDCG@k over queries that have a relevant judged item (others cannot tell rankers
    apart); NaN if there is none."""
    values = [
        ndcg_at_k(s, g, k, gain)
        for s, g in zip(scores_per_query, grades_per_query, strict=True)
        if ideal_dcg_at_k(g, k, gain) > 0.0
    ]
    return float(np.mean(values)) if values else float("nan")


def trec_ndcg_at_k(
    scores: np.ndarray, grades: np.ndarray, docnos: Sequence[str], k: int = 10
) -> float:
    """trec_eval's ndcg_cut.k of one query (what ir_measures' nDCG@k reports on the exported
    qrels and run): linear gain (the grade itself); documents ordered by score, ties broken by
    docno in descending order as trec_eval does; unjudged documents (grade < 0) keep their place
    with gain 0 (no condensed list); the ideal from every judged grade; 0 without a relevant one.
    """
    scores = np.asarray(scores, dtype=np.float64)
    grades = np.asarray(grades, dtype=np.float64)
    if not (len(scores) == len(grades) == len(docnos)):
        raise ValueError("scores, grades and docnos differ in length")
    ideal = ideal_dcg_at_k(grades, k, "linear")
    if ideal <= 0.0:
        return 0.0
    # Sort by docno descending first, then stably by score descending.
    by_docno = sorted(range(len(docnos)), key=lambda i: docnos[i], reverse=True)
    order = sorted(by_docno, key=lambda i: -scores[i])[:k]
    gains = np.maximum(grades[order], 0.0)
    return float(np.sum(gains / np.log2(np.arange(len(order)) + 2.0))) / ideal


def mean_trec_ndcg_at_k(
    scores_per_query: Sequence[np.ndarray],
    grades_per_query: Sequence[np.ndarray],
    docnos_per_query: Sequence[Sequence[str]],
    k: int = 10,
) -> float:
    """Mean `trec_ndcg_at_k` over every query, those without a relevant item counting 0 (as in
    trec_eval's and ir_measures' mean); NaN without queries."""
    values = [
        trec_ndcg_at_k(s, g, d, k)
        for s, g, d in zip(scores_per_query, grades_per_query, docnos_per_query, strict=True)
    ]
    return float(np.mean(values)) if values else float("nan")


def cross_modal_pair_counts(
    scores: np.ndarray, grades: np.ndarray, modalities: np.ndarray
) -> tuple[float, int]:
    """(correctly ordered, total) over pairs of judged items of different modalities and grades.

    A tie in scores counts as half correct.
    """
    scores = np.asarray(scores, dtype=np.float64)
    grades = np.asarray(grades, dtype=np.float64)
    modalities = np.asarray(modalities)
    judged = grades >= 0
    scores, grades, modalities = scores[judged], grades[judged], modalities[judged]
    upper = np.triu(np.ones((len(scores), len(scores)), dtype=bool), k=1)
    counted = upper & (modalities[:, None] != modalities[None, :])
    grade_sign = np.sign(grades[:, None] - grades[None, :])
    counted &= grade_sign != 0
    score_sign = np.sign(scores[:, None] - scores[None, :])
    agreement = np.where(score_sign == 0, 0.5, (score_sign == grade_sign).astype(np.float64))
    return float(agreement[counted].sum()), int(counted.sum())


def cross_modal_pair_accuracy(
    scores: np.ndarray, grades: np.ndarray, modalities: np.ndarray
) -> float:
    """Share of cross-modal pairs with different grades that `scores` order correctly (NaN if
    there are none); ties in scores count half."""
    correct, total = cross_modal_pair_counts(scores, grades, modalities)
    return correct / total if total else float("nan")


def kendall_tau_b(x: np.ndarray, y: np.ndarray) -> float:
    """Kendall's tau-b (tie-corrected) of two equally long arrays, by scipy; NaN if undefined
    (fewer than two items, or one array constant), without scipy's small-sample warning."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise ValueError(f"x {x.shape} and y {y.shape} differ in shape")
    if len(x) < 2 or np.all(x == x[0]) or np.all(y == y[0]):
        return float("nan")
    return float(kendalltau(x, y, variant="b").statistic)


def kendall_tau_per_modality(
    scores: np.ndarray, upstream_scores: np.ndarray, modalities: np.ndarray
) -> dict[int, float]:
    """Kendall tau-b between `scores` and the upstream scores within each modality of one query.

    Measures how far the reranker departs from the (trusted) single-modal order; items without an
    upstream score (NaN) are left out.
    """
    scores = np.asarray(scores, dtype=np.float64)
    upstream = np.asarray(upstream_scores, dtype=np.float64)
    modalities = np.asarray(modalities)
    taus = {}
    for modality in np.unique(modalities):
        chosen = (modalities == modality) & ~np.isnan(upstream)
        taus[int(modality)] = kendall_tau_b(scores[chosen], upstream[chosen])
    return taus


def evaluate_pages(
    scores_per_query: Sequence[np.ndarray],
    grades_per_query: Sequence[np.ndarray],
    modalities_per_query: Sequence[np.ndarray],
    upstream_per_query: Sequence[np.ndarray] | None = None,
    docnos_per_query: Sequence[Sequence[str]] | None = None,
) -> dict[str, float | str]:
    """The reranker quality figures of DESIGN.md over a set of queries (e.g. the gold set).

    ndcg@5 / ndcg@10: mean over queries, with the gain named by `ndcg_gain` (exponential,
    2^g - 1); with `docnos_per_query` (the items' external ids), also trec_ndcg@5 / trec_ndcg@10:
    trec_eval's figures (linear gain, its tie-break, every query), which ir_measures reproduces
    from the exported qrels and run. cross_modal_pair_accuracy: over all pairs of all queries;
    kendall_tau[m]: mean over queries of the per-modality tau against upstream order.
    """
    result = {
        "ndcg_gain": NDCG_GAIN,
        "ndcg@5": mean_ndcg_at_k(scores_per_query, grades_per_query, 5),
        "ndcg@10": mean_ndcg_at_k(scores_per_query, grades_per_query, 10),
    }
    if docnos_per_query is not None:
        for k in (5, 10):
            result[f"trec_ndcg@{k}"] = mean_trec_ndcg_at_k(
                scores_per_query, grades_per_query, docnos_per_query, k
            )
    correct = total = 0
    for s, g, m in zip(scores_per_query, grades_per_query, modalities_per_query, strict=True):
        c, t = cross_modal_pair_counts(s, g, m)
        correct, total = correct + c, total + t
    result["cross_modal_pair_accuracy"] = correct / total if total else float("nan")
    if upstream_per_query is not None:
        taus: dict[int, list[float]] = {}
        for s, u, m in zip(scores_per_query, upstream_per_query, modalities_per_query, strict=True):
            for modality, tau in kendall_tau_per_modality(s, u, m).items():
                if not np.isnan(tau):
                    taus.setdefault(modality, []).append(tau)
        for modality, values in sorted(taus.items()):
            result[f"kendall_tau[{modality}]"] = float(np.mean(values))
    return result
