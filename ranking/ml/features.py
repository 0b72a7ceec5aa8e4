"""Item features of a candidate page and their batching: plain arrays in, padded tensors out.

Owns the feature layout the reranker reads, the `TrainPage` a page is handed over as, and collation.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import torch

# Layout of one item's feature row: [text embedding | image embedding | SCALAR_FEATURES].
# The modality id is not a float feature: it travels as an integer (PageBatch.modalities) and the
# model embeds it, so modality 2 is not "twice" modality 1.
SCALAR_FEATURES = ("upstream_zscore", "log1p_upstream_rank", "query_cosine")
N_SCALAR_FEATURES = len(SCALAR_FEATURES)

PAIR_SOURCES = ("human", "implied", "upstream")
UNKNOWN_GRADE = -1


def feature_dim(text_dim: int, image_dim: int) -> int:
    return text_dim + image_dim + N_SCALAR_FEATURES


def upstream_ranks_within_modality(
    upstream_scores: np.ndarray, modalities: np.ndarray
) -> np.ndarray:
    """0-based rank of each item among the items of its modality, best (highest score) first.

    Ties keep item order (a stable sort); items without a score (NaN) rank after all scored ones.
    """
    scores = np.asarray(upstream_scores, dtype=np.float64)
    modalities = np.asarray(modalities)
    ranks = np.zeros(len(scores), dtype=np.int64)
    for modality in np.unique(modalities):
        idx = np.flatnonzero(modalities == modality)
        keys = np.where(np.isnan(scores[idx]), np.inf, -scores[idx])
        ranks[idx[np.argsort(keys, kind="stable")]] = np.arange(len(idx))
    return ranks


def upstream_zscores_within_modality(
    upstream_scores: np.ndarray, modalities: np.ndarray
) -> np.ndarray:
    """Upstream score as a z-score among the scored items of the same modality (of one query).

    0 where it carries no information: a missing score, a modality with one scored item, or a
    modality whose scores are all equal. Scales differ between modalities, so never pool them.
    """
    scores = np.asarray(upstream_scores, dtype=np.float64)
    modalities = np.asarray(modalities)
    z = np.zeros(len(scores), dtype=np.float64)
    for modality in np.unique(modalities):
        idx = np.flatnonzero((modalities == modality) & ~np.isnan(scores))
        if len(idx) < 2:
            continue
        values = scores[idx]
        std = values.std()
        if std > 1e-12:
            z[idx] = (values - values.mean()) / std
    return z


def page_features(
    *,
    query_emb: np.ndarray,
    text_embs: np.ndarray,
    image_embs: np.ndarray | None,
    modalities: Sequence[int] | np.ndarray,
    upstream_scores: Sequence[float] | np.ndarray,
    upstream_ranks: Sequence[int] | np.ndarray | None = None,
    image_dim: int | None = None,
) -> np.ndarray:
    """Feature rows (n, text_dim + image_dim + 3) of one query's items, float32.

    `text_embs` (n, text_dim): rows of zeros for items without text. `image_embs` (n, image_dim) or
    None when no item has an image (then `image_dim` is required); rows of zeros where an item has
    none. `upstream_scores` may hold NaN for a missing score. `upstream_ranks` (0-based within the
    modality) are taken as given when imported, else derived from the scores.
    """
    text_embs = np.asarray(text_embs, dtype=np.float32)
    n = text_embs.shape[0]
    modalities = np.asarray(modalities, dtype=np.int64)
    scores = np.asarray(upstream_scores, dtype=np.float64)
    if image_embs is None:
        if image_dim is None:
            raise ValueError("image_dim is required when image_embs is None")
        image_embs = np.zeros((n, image_dim), dtype=np.float32)
    image_embs = np.asarray(image_embs, dtype=np.float32)
    if not (len(modalities) == len(scores) == image_embs.shape[0] == n):
        raise ValueError("text_embs, image_embs, modalities and upstream_scores differ in length")
    if upstream_ranks is None:
        ranks = upstream_ranks_within_modality(scores, modalities)
    else:
        ranks = np.array(upstream_ranks, dtype=np.int64)  # a copy: filled in below
        # A missing rank (-1) means "after every ranked item of its modality".
        for modality in np.unique(modalities):
            idx = np.flatnonzero(modalities == modality)
            ranks[idx] = np.where(ranks[idx] < 0, len(idx), ranks[idx])
    query = np.asarray(query_emb, dtype=np.float32)
    query = query / max(float(np.linalg.norm(query)), 1e-12)
    norms = np.maximum(np.linalg.norm(text_embs, axis=1), 1e-12)
    cosine = (text_embs @ query) / norms  # 0 for an item without text (a zero row)
    scalars = np.stack(
        [upstream_zscores_within_modality(scores, modalities), np.log1p(ranks), cosine], axis=1
    )
    return np.concatenate([text_embs, image_embs, scalars.astype(np.float32)], axis=1)


@dataclass
class PreferencePair:
    """A preference pair of one page, as item indices into that page: `better` beats `worse`.

    `source` is "human" (judged), "implied" (derived by an anchor search) or "upstream" (same
    modality, from upstream order); `weight` scales its hinge term (e.g. annotator agreement).
    """

    better: int
    worse: int
    source: str = "human"
    weight: float = 1.0

    def __post_init__(self) -> None:
        if self.source not in PAIR_SOURCES:
            raise ValueError(f"unknown pair source {self.source!r}; expected one of {PAIR_SOURCES}")


@dataclass
class TrainPage:
    """One query's candidate page as the reranker sees it: built from DB rows or a simulation.

    Arrays are aligned by item position. `grades` holds the human (or implied) grade of an item,
    UNKNOWN_GRADE (-1) where there is none; `upstream_ranks` are 0-based within the modality.
    """

    query_id: str | int
    features: np.ndarray  # (n, feature_dim) from page_features
    modalities: np.ndarray  # (n,) int
    upstream_scores: np.ndarray  # (n,) float, NaN = missing; kept for metrics and baselines
    upstream_ranks: np.ndarray  # (n,) int
    grades: np.ndarray  # (n,) int, -1 = unknown
    pairs: list[PreferencePair] = field(default_factory=list)
    item_ids: list | None = None
    # (n, 2) int: the grade interval [low, high] an anchor search implies for an item, (-1, -1)
    # where none; None when the page has no implied grades at all.
    grade_intervals: np.ndarray | None = None
    # (n, n_grades) a teacher's grade distribution (the vision-language scorer), NaN rows where it
    # has none; None when the page has no teacher. Read by the distillation term only.
    soft_grades: np.ndarray | None = None

    def __post_init__(self) -> None:
        self.features = np.asarray(self.features, dtype=np.float32)
        self.modalities = np.asarray(self.modalities, dtype=np.int64)
        self.upstream_scores = np.asarray(self.upstream_scores, dtype=np.float64)
        self.upstream_ranks = np.asarray(self.upstream_ranks, dtype=np.int64)
        self.grades = np.asarray(self.grades, dtype=np.int64)
        n = self.features.shape[0]
        if n == 0:
            raise ValueError(f"page of query {self.query_id!r} has no items")
        lengths = {len(self.modalities), len(self.upstream_scores), len(self.upstream_ranks)}
        if lengths | {len(self.grades)} != {n}:
            raise ValueError(f"page of query {self.query_id!r}: arrays differ in length")
        for pair in self.pairs:
            if not (0 <= pair.better < n and 0 <= pair.worse < n) or pair.better == pair.worse:
                raise ValueError(f"page of query {self.query_id!r}: bad pair {pair}")
        if self.grade_intervals is not None:
            self.grade_intervals = np.asarray(self.grade_intervals, dtype=np.int64).reshape(-1, 2)
            if len(self.grade_intervals) != n:
                raise ValueError(f"page of query {self.query_id!r}: arrays differ in length")
            known = self.grade_intervals[:, 0] >= 0
            if (self.grade_intervals[known, 0] > self.grade_intervals[known, 1]).any():
                raise ValueError(f"page of query {self.query_id!r}: an interval with low > high")
        if self.soft_grades is not None:
            self.soft_grades = np.asarray(self.soft_grades, dtype=np.float32)
            if self.soft_grades.ndim != 2 or len(self.soft_grades) != n:
                raise ValueError(f"page of query {self.query_id!r}: arrays differ in length")

    @classmethod
    def from_items(
        cls,
        *,
        query_id: str | int,
        query_emb: np.ndarray,
        text_embs: np.ndarray,
        image_embs: np.ndarray | None,
        modalities: Sequence[int] | np.ndarray,
        upstream_scores: Sequence[float] | np.ndarray,
        upstream_ranks: Sequence[int] | np.ndarray | None = None,
        grades: Sequence[int] | np.ndarray | None = None,
        pairs: Sequence[PreferencePair] = (),
        item_ids: list | None = None,
        image_dim: int | None = None,
        grade_intervals: np.ndarray | None = None,
    ) -> TrainPage:
        """A page from per-item arrays (one row per Item of the query)."""
        modalities = np.asarray(modalities, dtype=np.int64)
        scores = np.asarray(upstream_scores, dtype=np.float64)
        if upstream_ranks is None:
            ranks = upstream_ranks_within_modality(scores, modalities)
            # Without a score there is no upstream order to learn from: unknown, not last.
            ranks[np.isnan(scores)] = -1
        else:
            ranks = np.asarray(upstream_ranks, dtype=np.int64)
        features = page_features(
            query_emb=query_emb,
            text_embs=text_embs,
            image_embs=image_embs,
            modalities=modalities,
            upstream_scores=scores,
            upstream_ranks=ranks,
            image_dim=image_dim,
        )
        n = len(modalities)
        return cls(
            query_id=query_id,
            features=features,
            modalities=modalities,
            upstream_scores=scores,
            upstream_ranks=ranks,
            grades=np.full(n, UNKNOWN_GRADE) if grades is None else grades,
            pairs=list(pairs),
            item_ids=item_ids,
            grade_intervals=grade_intervals,
        )


@dataclass
class PageBatch:
    """Model inputs for a batch of pages, padded to the longest page."""

    features: torch.Tensor  # (B, L, D) float, zeros at padding
    mask: torch.Tensor  # (B, L) bool, True for a real item
    modalities: torch.Tensor  # (B, L) long, 0 at padding

    @property
    def padding_mask(self) -> torch.Tensor:
        """True at padding: the `src_key_padding_mask` convention of nn.Transformer."""
        return ~self.mask

    def to(self, device: torch.device | str) -> PageBatch:
        return PageBatch(self.features.to(device), self.mask.to(device), self.modalities.to(device))


@dataclass
class PageTargets:
    """Supervision for a batch of pages, aligned with its PageBatch."""

    grades: torch.Tensor  # (B, L) long, -1 = unknown or padding
    upstream_ranks: torch.Tensor  # (B, L) long, -1 at padding
    pair_page: torch.Tensor  # (P,) long: row of the batch
    pair_better: torch.Tensor  # (P,) long: item position
    pair_worse: torch.Tensor  # (P,) long
    pair_weight: torch.Tensor  # (P,) float
    pair_source: torch.Tensor  # (P,) long: index into PAIR_SOURCES
    # (B, L) long: implied grade interval of an item without a grade; -1 where there is none.
    grade_low: torch.Tensor | None = None
    grade_high: torch.Tensor | None = None
    # (B, L, n_grades) a teacher's grade distribution, and (B, L) bool where there is one.
    soft_grades: torch.Tensor | None = None
    soft_mask: torch.Tensor | None = None

    def to(self, device: torch.device | str) -> PageTargets:
        return PageTargets(
            *(
                None if getattr(self, f) is None else getattr(self, f).to(device)
                for f in self.__dataclass_fields__
            )
        )


def collate_pages(pages: Sequence[TrainPage]) -> PageBatch:
    """Pad the pages' features into one PageBatch."""
    if not pages:
        raise ValueError("no pages to collate")
    lengths = [page.features.shape[0] for page in pages]
    dim = pages[0].features.shape[1]
    features = np.zeros((len(pages), max(lengths), dim), dtype=np.float32)
    modalities = np.zeros((len(pages), max(lengths)), dtype=np.int64)
    mask = np.zeros((len(pages), max(lengths)), dtype=bool)
    for row, page in enumerate(pages):
        n = lengths[row]
        if page.features.shape[1] != dim:
            raise ValueError(
                f"page of query {page.query_id!r} has feature width {page.features.shape[1]}, not {dim}"
            )
        features[row, :n] = page.features
        modalities[row, :n] = page.modalities
        mask[row, :n] = True
    return PageBatch(
        torch.from_numpy(features), torch.from_numpy(mask), torch.from_numpy(modalities)
    )


def collate_targets(pages: Sequence[TrainPage]) -> PageTargets:
    """Pad grades and upstream ranks and flatten the pages' preference pairs."""
    width = max(page.features.shape[0] for page in pages)
    grades = np.full((len(pages), width), UNKNOWN_GRADE, dtype=np.int64)
    ranks = np.full((len(pages), width), -1, dtype=np.int64)
    intervals = np.full((len(pages), width, 2), -1, dtype=np.int64)
    pair_rows: list[tuple[int, int, int, float, int]] = []
    for row, page in enumerate(pages):
        n = page.features.shape[0]
        grades[row, :n] = page.grades
        ranks[row, :n] = page.upstream_ranks
        if page.grade_intervals is not None:
            intervals[row, :n] = page.grade_intervals
        pair_rows.extend(
            (row, p.better, p.worse, p.weight, PAIR_SOURCES.index(p.source)) for p in page.pairs
        )
    pair_array = np.array(pair_rows, dtype=np.float64).reshape(-1, 5)
    soft = soft_mask = None
    teachers = [page.soft_grades for page in pages if page.soft_grades is not None]
    if teachers:
        soft_array = np.zeros((len(pages), width, teachers[0].shape[1]), dtype=np.float32)
        mask_array = np.zeros((len(pages), width), dtype=bool)
        for row, page in enumerate(pages):
            if page.soft_grades is not None:
                known = ~np.isnan(page.soft_grades).any(axis=1)
                n = len(known)
                soft_array[row, :n][known] = page.soft_grades[known]
                mask_array[row, :n] = known
        soft, soft_mask = torch.from_numpy(soft_array), torch.from_numpy(mask_array)
    return PageTargets(
        grades=torch.from_numpy(grades),
        upstream_ranks=torch.from_numpy(ranks),
        pair_page=torch.from_numpy(pair_array[:, 0].astype(np.int64)),
        pair_better=torch.from_numpy(pair_array[:, 1].astype(np.int64)),
        pair_worse=torch.from_numpy(pair_array[:, 2].astype(np.int64)),
        pair_weight=torch.from_numpy(pair_array[:, 3].astype(np.float32)),
        pair_source=torch.from_numpy(pair_array[:, 4].astype(np.int64)),
        grade_low=torch.from_numpy(intervals[:, :, 0].copy()) if (intervals >= 0).any() else None,
        grade_high=torch.from_numpy(intervals[:, :, 1].copy()) if (intervals >= 0).any() else None,
        soft_grades=soft,
        soft_mask=soft_mask,
    )
