"""Per-modality grade offsets measured with comparisons: a pure estimator (no Django).

Absolute grades given to items of different modalities are not on one scale (an assessor may
grade photos a grade more leniently than text), while a direct comparison of two items is. A
comparison of an item of modality B with an item whose grade on the reference modality's scale is
known bounds the B item's true grade on that scale; set beside the grade the B item was given,
it measures B's offset. Estimate each modality on its own: pooled over modalities with opposite
offsets the estimate is their mix (a three-modality prototype pooled +1 and -1 into 0).

API (plain data in and out):

    Observation(grade, low, high)      one graded item of ONE modality: the human grade it was
                                       given in that modality, and the interval [low, high] its
                                       true grade lies in on the reference scale (None = open),
                                       as implied by comparisons or a search's boundaries.
    Comparison(reference_grade, other_grade, outcome)
                                       one comparison of a reference item (the anchor, its grade
                                       on the reference scale known, e.g. gold) with an item of
                                       the modality (its given grade `other_grade`); `outcome`
                                       is told from the anchor's side like
                                       labeling.models.CompareOutcome: "other_better",
                                       "anchor_better" or "equal".
    observations_from_comparisons(comparisons) -> list[Observation]
    estimate_offset(observations, max_grade=4) -> OffsetEstimate(offset, low, high, n)
                                       offset: how many grades the modality's given grades run
                                       above the reference scale (+1: graded one too high);
                                       [low, high]: a likelihood interval (90% by default).
    estimate_offsets({modality: observations}) -> {modality: OffsetEstimate}
    OffsetEstimate.correction           the whole number of grades to subtract from the
                                       modality's grades for training: 0 unless the interval
                                       excludes 0 (an offset not told apart from noise is not
                                       corrected).

The model behind the likelihood (the simulator's annotators follow it): an item of true grade t
is graded t + offset, rounded at random to a neighbouring whole grade in proportion (an offset of
0.5 grades half the items one up), clipped to [0, max_grade], then moved one grade with
probability `grade_noise` (inwards at the ends of the scale). The true grade is unknown inside
the observation's interval: it is summed out under a distribution of true grades fitted with the
offset (EM; taking each item's best t instead pulls half-grade offsets to whole grades). Each
observation's likelihood is mixed with a uniform share (`outlier_share`, 0.2) so that a wrong
bound cannot veto the true offset: a bound comes from the anchor's own given grade, off by one for
about one item in ten, and from a comparison, flipped for about one in twenty (with 0.05, 72
simulated comparisons at no offset estimated -0.5 in one seed of eight; with 0.2, none). The offset is the maximum on a grid of `step`, ties
toward 0; the interval is where the profile log-likelihood is within chi2(1)/2 of it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

OTHER_BETTER = "other_better"
ANCHOR_BETTER = "anchor_better"
EQUAL = "equal"


@dataclass(frozen=True)
class Observation:
    """One graded item: its given grade, and the bounds of its true grade on the reference scale."""

    grade: int
    low: float | None = None
    high: float | None = None


@dataclass(frozen=True)
class Comparison:
    """A reference item (the anchor) of known reference grade against an item of the modality."""

    reference_grade: int
    other_grade: int
    outcome: str


@dataclass(frozen=True)
class OffsetEstimate:
    offset: float
    low: float
    high: float
    n: int

    @property
    def is_distinguishable_from_zero(self) -> bool:
        return self.n > 0 and (self.low > 0 or self.high < 0)

    @property
    def correction(self) -> int:
        """Whole grades to subtract from the modality's given grades (0 when not told from 0)."""
        if not self.is_distinguishable_from_zero:
            return 0
        return int(np.floor(abs(self.offset) + 0.5) * np.sign(self.offset))

    def as_dict(self) -> dict:
        return {
            "offset": self.offset,
            "low": self.low,
            "high": self.high,
            "n": self.n,
            "correction": self.correction,
        }


def observations_from_comparisons(comparisons: Iterable[Comparison]) -> list[Observation]:
    """Each comparison bounds the other item's true grade on the reference scale: better than an
    anchor of grade g means at least g + 1, worse at most g - 1, equal exactly g."""
    observations = []
    for c in comparisons:
        g = c.reference_grade
        if c.outcome == OTHER_BETTER:
            observations.append(Observation(c.other_grade, g + 1, None))
        elif c.outcome == ANCHOR_BETTER:
            observations.append(Observation(c.other_grade, None, g - 1))
        elif c.outcome == EQUAL:
            observations.append(Observation(c.other_grade, g, g))
        else:
            raise ValueError(f"unknown outcome {c.outcome!r}")
    return observations


def grade_probabilities(offset: np.ndarray, *, max_grade: int, grade_noise: float) -> np.ndarray:
    """P(given grade | true grade, offset) under the model above: shape (offsets, t, given)."""
    offset = np.asarray(offset, dtype=np.float64)
    grades = np.arange(max_grade + 1)
    shifted = grades[None, :] + offset[:, None]  # (d, t)
    floor = np.floor(shifted)
    up = shifted - floor
    clean = np.zeros((len(offset), max_grade + 1, max_grade + 1))
    for step, weight in ((0, 1.0 - up), (1, up)):
        target = np.clip(floor + step, 0, max_grade).astype(int)
        np.put_along_axis(
            clean,
            target[..., None],
            np.take_along_axis(clean, target[..., None], 2) + weight[..., None],
            2,
        )
    noise = np.eye(max_grade + 1) * (1.0 - grade_noise)
    for c in range(max_grade + 1):
        if max_grade == 0:
            noise[c, c] = 1.0
        elif c == 0:
            noise[c, 1] += grade_noise
        elif c == max_grade:
            noise[c, c - 1] += grade_noise
        else:
            noise[c, c - 1] += grade_noise / 2
            noise[c, c + 1] += grade_noise / 2
    return clean @ noise


def _profile(
    observations: Sequence[Observation],
    grid: np.ndarray,
    *,
    max_grade: int,
    grade_noise: float,
    outlier_share: float,
    iterations: int,
) -> np.ndarray:
    """The log-likelihood of the observations at each offset of `grid`, the distribution of true
    grades fitted for each offset by EM (its nonparametric maximum likelihood)."""
    probs = grade_probabilities(grid, max_grade=max_grade, grade_noise=grade_noise)
    grades = max_grade + 1
    # Observations are few kinds (given grade, low, high): EM runs over the kinds, weighted.
    kinds: dict[tuple[int, int, int], int] = {}
    for obs in observations:
        low = 0 if obs.low is None else int(np.clip(np.ceil(obs.low), 0, max_grade))
        high = max_grade if obs.high is None else int(np.clip(np.floor(obs.high), 0, max_grade))
        key = (int(np.clip(obs.grade, 0, max_grade)), min(low, high), max(low, high))
        kinds[key] = kinds.get(key, 0) + 1
    weights = np.array(list(kinds.values()), dtype=np.float64)
    allowed = np.zeros((len(kinds), grades))
    for i, (_, low, high) in enumerate(kinds):
        allowed[i, low : high + 1] = 1.0
    given = np.array([key[0] for key in kinds])
    # (offset, kind, true grade): P(given grade | t, offset) where t is allowed, else 0.
    kernel = probs[:, :, given].transpose(0, 2, 1) * allowed[None] * (1.0 - outlier_share)
    floor = outlier_share / grades
    prior = np.full((len(grid), grades), 1.0 / grades)
    for _ in range(iterations):
        joint = kernel * prior[:, None, :]
        share = joint / (joint.sum(axis=-1, keepdims=True) + floor)
        prior = (share * weights[None, :, None]).sum(axis=1) + 1e-12
        prior /= prior.sum(axis=-1, keepdims=True)
    per_kind = np.log((kernel * prior[:, None, :]).sum(axis=-1) + floor)
    return per_kind @ weights


def estimate_offset(
    observations: Sequence[Observation],
    *,
    max_grade: int = 4,
    grade_noise: float = 0.1,
    outlier_share: float = 0.15,
    step: float = 0.05,
    confidence: float = 0.9,
    iterations: int = 40,
) -> OffsetEstimate:
    """The offset of one modality's grades against the reference scale, with a likelihood
    interval: the offsets whose profile log-likelihood is within chi2(1, confidence) / 2 of the
    best. No observations: offset 0 and the whole range of offsets."""
    observations = list(observations)
    if max_grade < 1:
        raise ValueError("a grade scale needs at least two grades")
    grid = np.round(np.arange(-max_grade, max_grade + step / 2, step), 6)
    if not observations:
        return OffsetEstimate(0.0, float(-max_grade), float(max_grade), 0)
    loglik = _profile(
        observations, grid, max_grade=max_grade, grade_noise=grade_noise,
        outlier_share=outlier_share, iterations=iterations,
    )  # fmt: skip
    best = loglik.max()
    tied = loglik >= best - 1e-9
    offset = float(grid[np.argmin(np.where(tied, np.abs(grid), np.inf))])
    # chi2 quantile with one degree of freedom: the square of the normal quantile.
    drop = float(NormalDist().inv_cdf(0.5 + confidence / 2.0) ** 2) / 2.0
    inside = grid[loglik >= best - drop]
    return OffsetEstimate(offset + 0.0, float(inside.min()), float(inside.max()), len(observations))


def estimate_offsets(
    observations: Mapping[str, Sequence[Observation]], **options
) -> dict[str, OffsetEstimate]:
    """`estimate_offset` for each modality on its own (never pooled)."""
    return {modality: estimate_offset(obs, **options) for modality, obs in observations.items()}
