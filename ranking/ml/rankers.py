"""Built-in single-modal rankers for items imported without upstream scores.

Text: MiniLM cosine to the query. Image: ImageNet class probabilities, class names embedded with
MiniLM, probability-weighted cosine of the class names to the query.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from .encoders import ImageEncoder, TextEncoder, imagenet_class_names

# Only the top classes of an image vote. Summed over all 1,000 classes, the long tail of tiny
# probabilities (each class name still has a cosine of ~0.1-0.3 to any query) adds up to a large,
# nearly image-independent term, so the score would track how peaked the classifier is rather than
# what the image shows. Renormalising the top-k keeps the score on the cosine scale of its classes.
DEFAULT_TOP_K = 5


def _unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float32)
    norms = np.linalg.norm(x, axis=-1, keepdims=True)
    return x / np.maximum(norms, 1e-12)


def text_upstream_scores(query_embs: np.ndarray, item_embs: np.ndarray) -> np.ndarray:
    """Cosine of each item to its query, shape (n,).

    `query_embs` is one query (d,) scored against every item, or (n, d) paired row by row with
    `item_embs` (n, d). An all-zero embedding (an item without text) scores 0.
    """
    items = _unit_rows(item_embs)
    queries = _unit_rows(query_embs)
    if queries.ndim == 1:
        return items @ queries
    if queries.shape != items.shape:
        raise ValueError(f"query_embs {queries.shape} do not pair with item_embs {items.shape}")
    return np.einsum("nd,nd->n", queries, items)


def image_upstream_scores(
    query_emb: np.ndarray,
    class_probs: np.ndarray,
    class_name_embs: np.ndarray,
    *,
    top_k: int | None = DEFAULT_TOP_K,
) -> np.ndarray:
    """Probability-weighted cosine of each image's top-k class names to the query, shape (n,).

    `top_k=None` weighs all classes by their raw probabilities (see DEFAULT_TOP_K for why not).
    """
    probs = np.asarray(class_probs, dtype=np.float32)
    if probs.ndim == 1:
        probs = probs[None, :]
    cosines = _unit_rows(class_name_embs) @ _unit_rows(query_emb)  # (n_classes,)
    if top_k is None or top_k >= probs.shape[1]:
        weights = probs
    else:
        top = np.argpartition(-probs, top_k - 1, axis=1)[:, :top_k]
        weights = np.zeros_like(probs)
        np.put_along_axis(weights, top, np.take_along_axis(probs, top, axis=1), axis=1)
    weights = weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)
    return weights @ cosines


class BuiltinRankers:
    """Owns both encoders and the class-name embeddings, which are computed once and reused."""

    def __init__(
        self,
        text_encoder: TextEncoder | None = None,
        image_encoder: ImageEncoder | None = None,
        *,
        class_names: Sequence[str] | None = None,
        class_name_embs: np.ndarray | None = None,
        top_k: int | None = DEFAULT_TOP_K,
    ) -> None:
        self.text_encoder = text_encoder or TextEncoder()
        self._image_encoder = image_encoder
        self.class_names = list(class_names) if class_names is not None else imagenet_class_names()
        # Callers with a cache (keyed on text_encoder.version) can pass the embeddings in.
        self._class_name_embs = class_name_embs
        self.top_k = top_k

    @property
    def image_encoder(self) -> ImageEncoder:
        # Loaded on first use: a text-only project never pays for the image model.
        if self._image_encoder is None:
            self._image_encoder = ImageEncoder()
        return self._image_encoder

    @property
    def class_name_embs(self) -> np.ndarray:
        if self._class_name_embs is None:
            self._class_name_embs = self.text_encoder.encode(self.class_names)
        return self._class_name_embs

    def embed_query(self, query: str) -> np.ndarray:
        return self.text_encoder.encode([query])[0]

    def score_texts(self, query: str, texts: Sequence[str]) -> np.ndarray:
        """Upstream scores of text items for `query` (cosine, in [-1, 1])."""
        return text_upstream_scores(self.embed_query(query), self.text_encoder.encode(texts))

    def score_class_probs(self, query: str, class_probs: np.ndarray) -> np.ndarray:
        """Upstream scores of images whose class probabilities were computed (and cached) before."""
        return image_upstream_scores(
            self.embed_query(query), class_probs, self.class_name_embs, top_k=self.top_k
        )

    def score_images(self, query: str, images: Sequence[Image.Image]) -> np.ndarray:
        """Upstream scores of image items for `query` (a cosine-like value in [-1, 1])."""
        return self.score_class_probs(query, self.image_encoder.encode(images).class_probs)
