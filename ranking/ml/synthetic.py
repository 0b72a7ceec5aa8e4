"""A generated world of queries and multi-modal candidates whose cross-modal order is learnable.

Used by tests and the benchmark. Its priors are fixed here, before any model is tuned on it:
most candidates are not relevant; how many relevant items a modality has varies a lot from query
to query (so merging by per-modality z-scores fails); upstream order agrees with the truth at
Kendall tau ~0.75 within a modality and says nothing across modalities (each modality's scores
are on their own scale with a per-query offset); embeddings are informative but noisy.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .features import PreferencePair, TrainPage

MODALITY_NAMES = ("text", "image", "video")


@dataclass(frozen=True)
class WorldConfig:
    n_queries: int = 300
    items_per_query: int = 40
    # Share of a page's items per modality (text, image, video); two shares, two modalities.
    modality_shares: tuple[float, ...] = (0.5, 0.3, 0.2)
    text_dim: int = 32
    image_dim: int = 32
    n_grades: int = 5
    # A modality's share of relevant items for a query ~ Beta with this mean and concentration:
    # a low concentration makes whole modalities irrelevant for some queries and rich for others.
    relevant_share: float = 0.3
    relevant_concentration: float = 2.0
    # Among relevant items, P(grade = 1, 2, 3, 4): higher grades are rarer.
    positive_grade_probs: tuple[float, ...] = (0.4, 0.3, 0.2, 0.1)
    # Kendall tau between upstream scores and true (fine-grained) relevance within a modality.
    upstream_tau: float = 0.75
    # How much of the grade shows in the item text's similarity to the query, per modality: a
    # text item's body says more than an image's caption or a video's title.
    text_signal: tuple[float, ...] = (1.0, 0.6, 0.8)
    # Noise is stated along the informative direction, so the world is equally hard at 32 or 384
    # dimensions (isotropic noise of a fixed norm would fade as 1/sqrt(dim) along any direction).
    # 0.2 is about what unit-norm isotropic noise gives at 32 dimensions.
    text_noise: float = 0.2
    # Grade signal along one "shows what was asked for" direction of the image embedding, with a
    # per-query shift along it (some topics photograph better) and per-item noise.
    image_signal: float = 1.0
    image_query_shift: float = 0.2
    image_noise: float = 0.2
    # When true, each non-text modality shows relevance along its own direction of the image
    # embedding (an image and a video of the same grade do not look alike), so the reranker must
    # learn each modality's calibration rather than one shared one. Off by default: worlds made
    # before the switch stay the same, draw for draw.
    per_modality_image_direction: bool = False
    seed: int = 0

    @property
    def n_modalities(self) -> int:
        return len(self.modality_shares)


@dataclass
class SyntheticQuery:
    query_id: int
    query_emb: np.ndarray  # (text_dim,)
    modalities: np.ndarray  # (n,)
    grades: np.ndarray  # (n,) true grades
    relevance: np.ndarray  # (n,) grade + within-grade jitter: the true fine-grained order
    text_embs: np.ndarray  # (n, text_dim)
    image_embs: np.ndarray  # (n, image_dim), zeros for text items
    upstream_scores: np.ndarray  # (n,) on each modality's own scale


@dataclass
class SyntheticWorld:
    config: WorldConfig
    queries: list[SyntheticQuery] = field(default_factory=list)

    def pages(
        self,
        query_indices: list[int] | np.ndarray | None = None,
        *,
        graded_share: float = 1.0,
        human_pairs_per_query: int = 0,
        seed: int = 0,
    ) -> list[TrainPage]:
        """TrainPages for the chosen queries, with a share of items graded (true grades) and a
        number of human cross-modal preference pairs drawn from the truth."""
        rng = np.random.default_rng(seed)
        indices = range(len(self.queries)) if query_indices is None else query_indices
        pages = []
        for index in indices:
            query = self.queries[int(index)]
            n = len(query.grades)
            grades = np.where(rng.random(n) < graded_share, query.grades, -1)
            pages.append(
                TrainPage.from_items(
                    query_id=query.query_id,
                    query_emb=query.query_emb,
                    text_embs=query.text_embs,
                    image_embs=query.image_embs,
                    modalities=query.modalities,
                    upstream_scores=query.upstream_scores,
                    grades=grades,
                    pairs=_human_pairs(query, human_pairs_per_query, rng),
                )
            )
        return pages

    def split(self, n_train: int, n_val: int) -> tuple[list[int], list[int], list[int]]:
        """Query indices for train, validation and held-out test (the rest), in a fixed order."""
        order = np.random.default_rng(self.config.seed + 1).permutation(len(self.queries))
        train, val = order[:n_train], order[n_train : n_train + n_val]
        return train.tolist(), val.tolist(), order[n_train + n_val :].tolist()


def _human_pairs(query: SyntheticQuery, count: int, rng: np.random.Generator) -> list:
    pairs = []
    if count <= 0:
        return pairs
    n = len(query.grades)
    for _ in range(20 * count):
        i, j = rng.integers(0, n, size=2)
        g_i, g_j = query.grades[i], query.grades[j]
        if query.modalities[i] == query.modalities[j] or g_i == g_j:
            continue
        better, worse = (i, j) if g_i > g_j else (j, i)
        pairs.append(PreferencePair(int(better), int(worse), "human", 1.0))
        if len(pairs) == count:
            break
    return pairs


def biased_grade(grade: int, bias: float, *, max_grade: int, draw: float) -> int:
    """The absolute grade an assessor gives an item of true grade `grade` in a modality whose
    grades run `bias` grades off the reference scale: `grade + bias`, rounded to a neighbouring
    whole grade at random in proportion (`draw` uniform in [0, 1): a bias of 0.5 grades half the
    items one up), clipped to [0, max_grade]. The simulated annotators add their usual noise after.

    Why a per-modality bias of absolute grades, and not of comparisons: assessors do not grade
    every vertical on one scale. In aggregated (whole-page) search evaluation, assessors' graded
    relevance and preferences vary with the vertical of a result (image, video, news, ...), and
    must be calibrated per vertical before results of different verticals can be compared (Zhou,
    Cummins, Lalmas and Jose, "Evaluating aggregated search pages", SIGIR 2012; Arguello, Diaz,
    Callan and Carterette, "A methodology for evaluating aggregated search results", ECIR 2011);
    assessors also differ systematically in how strictly they grade (Bailey, Craswell, Soboroff,
    Thomas, de Vries and Yilmaz, "Relevance assessment: are judges exchangeable and does it
    matter?", SIGIR 2008). A side-by-side preference between two items needs no scale at all, and
    preference judgments agree more across assessors than absolute grades do (Carterette,
    Bennett, Chickering and Dumais, "Here or there: preference judgments for relevance", ECIR
    2008). So the simulator biases grades per modality and answers comparisons on the true
    cross-modal relevance, each with its own noise; a bias of 0 is today's world, the control.
    """
    shifted = grade + bias
    base = math.floor(shifted)
    value = base + (1 if draw < shifted - base else 0)
    return int(min(max(value, 0), max_grade))


def _unit(x: np.ndarray) -> np.ndarray:
    return x / np.maximum(np.linalg.norm(x, axis=-1, keepdims=True), 1e-12)


def _orthogonal_units(direction: np.ndarray, n: int, rng: np.random.Generator) -> np.ndarray:
    # Random unit rows orthogonal to `direction`: content that says nothing about relevance.
    rows = rng.normal(size=(n, len(direction)))
    rows -= np.outer(rows @ direction, direction)
    return _unit(rows)


def _normal_scores(values: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # A normal sample laid out in the order of `values`: monotone in the truth, and exactly
    # normal, so that mixing it with noise gives the bivariate-normal Kendall tau at any list
    # length (evenly spaced quantiles would give a higher tau on short lists).
    ranks = np.argsort(np.argsort(values, kind="stable"), kind="stable")
    return np.sort(rng.normal(size=len(values)))[ranks]


def _upstream_scale(modality: int, latent: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    # Each modality's ranker reports on its own scale, shifted per query: no two are comparable.
    if modality == 0:  # text: a cosine-like similarity in (0, 1)
        return 1.0 / (1.0 + np.exp(-(0.7 * latent + rng.normal(-0.5, 0.5))))
    if modality == 1:  # image: classifier logits
        return 2.5 * latent + rng.normal(-1.0, 1.5)
    return 10.0 * latent + rng.normal(40.0, 10.0)  # video: an engagement-weighted score


def make_world(config: WorldConfig | None = None) -> SyntheticWorld:
    """Generate the world deterministically from `config.seed`."""
    config = config or WorldConfig()
    rng = np.random.default_rng(config.seed)
    shares = np.asarray(config.modality_shares, dtype=np.float64)
    counts = np.maximum(1, np.round(shares / shares.sum() * config.items_per_query)).astype(int)
    counts[0] += config.items_per_query - counts.sum()
    modalities = np.repeat(np.arange(len(counts)), counts)
    n = len(modalities)
    positive_probs = np.asarray(config.positive_grade_probs) / np.sum(config.positive_grade_probs)
    # Pearson correlation that gives Kendall tau t for a bivariate normal: tau = 2/pi * asin(rho).
    rho = np.sin(np.pi * config.upstream_tau / 2.0)
    shows_relevance = _unit(rng.normal(size=config.image_dim))
    # Drawn from their own generator so that the main stream, and so every other draw, is unchanged.
    modality_directions = (
        _unit(
            np.random.default_rng(config.seed + 7919).normal(size=(len(counts), config.image_dim))
        )
        if config.per_modality_image_direction
        else np.repeat(shows_relevance[None, :], len(counts), axis=0)
    )
    a = config.relevant_share * config.relevant_concentration
    b = (1.0 - config.relevant_share) * config.relevant_concentration

    world = SyntheticWorld(config=config)
    for query_id in range(config.n_queries):
        share = rng.beta(a, b, size=len(counts))[modalities]
        grades = np.where(
            rng.random(n) < share, 1 + rng.choice(len(positive_probs), size=n, p=positive_probs), 0
        )
        if not grades.any():  # every query has something worth finding
            grades[rng.integers(n)] = 1 + rng.choice(len(positive_probs), p=positive_probs)
        relevance = grades + rng.random(n)
        top = config.n_grades - 1

        query_emb = _unit(rng.normal(size=config.text_dim))
        # Every candidate was retrieved for the query, so all share some topical similarity.
        topical = rng.uniform(0.2, 0.6)
        signal = np.asarray(config.text_signal)[modalities]
        alignment = topical + signal * relevance / top + rng.normal(0.0, config.text_noise, n)
        text_embs = _unit(alignment[:, None] * query_emb + _orthogonal_units(query_emb, n, rng))

        on_target = (
            config.image_signal * relevance / top
            + rng.normal(0.0, config.image_query_shift)
            + rng.normal(0.0, config.image_noise, n)
        )
        query_topic = _orthogonal_units(shows_relevance, 1, rng)
        image_embs = _unit(
            on_target[:, None] * modality_directions[modalities]
            + query_topic
            + _orthogonal_units(shows_relevance, n, rng)
        )
        image_embs[modalities == 0] = 0.0  # text items have no image

        upstream = np.empty(n)
        for modality in range(len(counts)):
            idx = np.flatnonzero(modalities == modality)
            latent = rho * _normal_scores(relevance[idx], rng) + np.sqrt(1 - rho**2) * rng.normal(
                size=len(idx)
            )
            upstream[idx] = _upstream_scale(modality, latent, rng)

        # Pages arrive in no particular order: shuffle so position says nothing.
        perm = rng.permutation(n)
        world.queries.append(
            SyntheticQuery(
                query_id=query_id,
                query_emb=query_emb.astype(np.float32),
                modalities=modalities[perm].copy(),
                grades=grades[perm].astype(np.int64),
                relevance=relevance[perm],
                text_embs=text_embs[perm].astype(np.float32),
                image_embs=image_embs[perm].astype(np.float32),
                upstream_scores=upstream[perm],
            )
        )
    return world
