"""The SMAR training loss: grade cross-entropy, ListMLE on graded items, hinge on preference pairs,
and intra-modal consistency with the upstream order; each part masked to what is known.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from .features import PAIR_SOURCES, PageBatch, PageTargets
from .model import RerankerOutput


@dataclass
class LossWeights:
    ce: float = 1.0
    listmle: float = 1.0
    pair_human: float = 1.0
    # Implied pairs are cheaper and noisier than human ones: they help at a lower weight and hurt
    # at equal weight (DESIGN.md, simulation notes), hence the default below pair_human.
    pair_implied: float = 0.3
    # Same-modality pairs from upstream order are already covered by the single-modal term.
    pair_upstream: float = 0.0
    # Implied grade intervals (what an anchor search says of every searched item): as cheap and
    # as noisy as implied pairs, weighted like them unless set.
    interval: float | None = None
    # Hinge margin, on the grade scale (scores are expected grades): half a grade.
    gamma: float = 0.5
    default_beta: float = 0.1
    beta: dict[int, float] = field(default_factory=dict)  # per modality, overrides default_beta
    single_modal: bool = True
    # Distillation: cross-entropy to a teacher's grade distribution (the vision-language scorer)
    # on items without a human grade; 0 leaves it out.
    distill: float = 0.0

    def beta_for(self, modality: int) -> float:
        return self.beta.get(int(modality), self.default_beta)

    @property
    def interval_weight(self) -> float:
        return self.pair_implied if self.interval is None else self.interval

    def pair_weight(self, source: str) -> float:
        return {
            "human": self.pair_human,
            "implied": self.pair_implied,
            "upstream": self.pair_upstream,
        }[source]


def list_mle(scores: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Plackett-Luce negative log-likelihood of the order given by `keys` (higher = better), per row.

    scores, keys: (B, L); mask: (B, L) bool, the items that take part. Returns (B,), the sum over
    the row's items (0 for a row without items).

    Ties (equal keys, e.g. two items of grade 2) are handled as in Breslow's approximation for
    tied events: a tied item's denominator holds every item not strictly better than it, tied ones
    included. This equals ListMLE exactly when there are no ties, does not depend on the order of
    tied items (no arbitrary or random tie-break), and upper-bounds the exact negative
    log-likelihood of the tied order (the sum over all orders that agree with it).
    """
    length = scores.shape[-1]
    finite_scores = scores.masked_fill(~mask, 0.0)
    # not_better[b, i, j]: item j is a competitor of item i at i's turn (key_j <= key_i).
    not_better = keys.unsqueeze(1) <= keys.unsqueeze(2)
    not_better = not_better & mask.unsqueeze(1)
    # Every row keeps itself, so no logsumexp is over an empty set (whose gradient is NaN, which
    # would leak through torch.where even where the row is masked out).
    not_better = not_better | torch.eye(length, dtype=torch.bool, device=scores.device)
    competitor_scores = finite_scores.unsqueeze(1).expand(-1, length, -1)
    log_denominator = torch.logsumexp(
        competitor_scores.masked_fill(~not_better, float("-inf")), dim=-1
    )
    terms = torch.where(mask, log_denominator - finite_scores, torch.zeros_like(finite_scores))
    return terms.sum(dim=-1)


def grade_cross_entropy(logits: torch.Tensor, grades: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over items with a known grade (grade >= 0); 0 if there are none."""
    known = grades >= 0
    if not bool(known.any()):
        return logits.sum() * 0.0
    return F.cross_entropy(logits[known], grades[known])


def interval_likelihood(
    logits: torch.Tensor, low: torch.Tensor, high: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor | None:
    """Mean negative log-probability that the grade lies in [low, high], over masked items.

    An interval-censored label: the search says "between grades 1 and 2" and the grade head
    is asked for exactly that, no more. None when no item has an interval.
    """
    if not bool(mask.any()):
        return None
    grade = torch.arange(logits.shape[-1], device=logits.device)
    inside = (grade >= low.unsqueeze(-1)) & (grade <= high.unsqueeze(-1))
    log_p = logits.log_softmax(dim=-1).masked_fill(~inside, float("-inf"))
    return -torch.logsumexp(log_p[mask], dim=-1).mean()


def soft_cross_entropy(
    logits: torch.Tensor, targets: torch.Tensor, mask: torch.Tensor
) -> torch.Tensor | None:
    """Mean over masked items of -sum_g target_g log p_g: the grade head taught a teacher's
    distribution (equal to KL(target || p) up to the teacher's entropy). None without items."""
    if not bool(mask.any()):
        return None
    log_p = logits.log_softmax(dim=-1)[mask]
    return -(targets[mask] * log_p).sum(dim=-1).mean()


def pairwise_hinge(
    scores: torch.Tensor,
    page: torch.Tensor,
    better: torch.Tensor,
    worse: torch.Tensor,
    weights: torch.Tensor,
    gamma: float,
) -> torch.Tensor:
    """Mean over pairs of weight * max(0, gamma - (f(better) - f(worse))); 0 if there are none."""
    if page.numel() == 0:
        return scores.sum() * 0.0
    margin = scores[page, better] - scores[page, worse]
    return (weights * F.relu(gamma - margin)).mean()


def _per_item_list_mle(scores: torch.Tensor, keys: torch.Tensor, mask: torch.Tensor):
    # Normalised by the number of ranked items so that long pages do not outweigh the other parts.
    count = mask.sum()
    if int(count) < 2:
        return None
    return list_mle(scores, keys, mask).sum() / count


def smar_loss(
    model_out: RerankerOutput,
    batch: PageBatch,
    targets: PageTargets,
    weights: LossWeights,
) -> tuple[torch.Tensor, dict[str, float]]:
    """Weighted sum of the SMAR parts, and each part's unweighted value (for the history)."""
    scores, logits = model_out.scores, model_out.logits
    total = scores.sum() * 0.0
    parts: dict[str, float] = {}
    graded = (targets.grades >= 0) & batch.mask

    if weights.ce:
        ce = grade_cross_entropy(logits, targets.grades.masked_fill(~batch.mask, -1))
        total = total + weights.ce * ce
        parts["ce"] = float(ce.detach())

    if weights.listmle:
        mle = _per_item_list_mle(scores, targets.grades.to(scores.dtype), graded)
        if mle is not None:
            total = total + weights.listmle * mle
            parts["listmle"] = float(mle.detach())

    if weights.interval_weight and targets.grade_low is not None:
        # Only where no human grade is known: a grade says more than an interval.
        censored = (targets.grade_low >= 0) & (targets.grades < 0) & batch.mask
        nll = interval_likelihood(logits, targets.grade_low, targets.grade_high, censored)
        if nll is not None:
            total = total + weights.interval_weight * nll
            parts["interval"] = float(nll.detach())

    for code, source in enumerate(PAIR_SOURCES):
        weight = weights.pair_weight(source)
        chosen = targets.pair_source == code
        if not weight or not bool(chosen.any()):
            continue
        hinge = pairwise_hinge(
            scores,
            targets.pair_page[chosen],
            targets.pair_better[chosen],
            targets.pair_worse[chosen],
            targets.pair_weight[chosen],
            weights.gamma,
        )
        total = total + weight * hinge
        parts[f"pair_{source}"] = float(hinge.detach())

    if weights.distill and targets.soft_grades is not None:
        taught = targets.soft_mask & (targets.grades < 0) & batch.mask
        soft_ce = soft_cross_entropy(logits, targets.soft_grades, taught)
        if soft_ce is not None:
            total = total + weights.distill * soft_ce
            parts["distill"] = float(soft_ce.detach())

    if weights.single_modal:
        ranked = batch.mask & (targets.upstream_ranks >= 0)
        # A lower rank is better; ListMLE wants higher keys first.
        keys = -targets.upstream_ranks.to(scores.dtype)
        single_modal = scores.sum() * 0.0
        for modality in torch.unique(batch.modalities[ranked]).tolist():
            beta = weights.beta_for(modality)
            mle = _per_item_list_mle(scores, keys, ranked & (batch.modalities == modality))
            if beta and mle is not None:
                single_modal = single_modal + beta * mle
        total = total + single_modal
        parts["single_modal"] = float(single_modal.detach())

    parts["total"] = float(total.detach())
    return total, parts
