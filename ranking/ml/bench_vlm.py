"""Throughput of the vision-language scorer: items/s pointwise and pages/s listwise, on the tiny
random model (built in a temporary directory) or on weights the user points at.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .bench import peak_rss_mb
from .vlm import VlmItem, VlmScorer
from .vlm_tiny import build_tiny_vlm

GRADE_NAMES = ("Not relevant", "Marginal", "Relevant", "Highly relevant", "Perfect")
_WORDS = "red blue green cat dog car house photo river mountain city page answer text".split()


def _items(n: int, seed: int) -> list[VlmItem]:
    """Half text, a quarter image, a quarter both: a mixed page as the product sees it."""
    rng = np.random.default_rng(seed)
    items = []
    for i in range(n):
        text = " ".join(rng.choice(_WORDS, size=int(rng.integers(3, 12))))
        image = None
        if i % 2:
            pixels = rng.integers(0, 255, size=(96, 128, 3), dtype=np.uint8)
            image = Image.fromarray(pixels)
        items.append(VlmItem(text=text if i % 4 != 1 else "", image=image))
    return items


def run_vlm_benchmark(
    *,
    model_path: str | Path | None = None,
    items: int = 64,
    pages: int = 8,
    page_items: int = 10,
    batch_size: int = 8,
    device: str = "cpu",
    threads: int | None = None,
    seed: int = 0,
) -> dict:
    """Score `items` pointwise and `pages` pages of `page_items` listwise; one warm-up batch
    first, so the figures leave out model loading and first-call overhead."""
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            path = Path(model_path) if model_path else build_tiny_vlm(Path(tmp) / "tiny-vlm")
            started = time.perf_counter()
            scorer = VlmScorer(path, grade_names=GRADE_NAMES, device=device, batch_size=batch_size)
            load_seconds = time.perf_counter() - started
            pool = _items(max(items, pages * page_items), seed)
            scorer.score("warm up", pool[:batch_size])
            started = time.perf_counter()
            pointwise = scorer.score("red cat photo", pool[:items])
            pointwise_seconds = time.perf_counter() - started
            listwise_pages = [
                ("red cat photo", pool[p * page_items : (p + 1) * page_items]) for p in range(pages)
            ]
            listwise_seconds = None
            if scorer.listwise_label_ids is not None:
                scorer.score_pages(listwise_pages[:1])
                started = time.perf_counter()
                scorer.score_pages(listwise_pages)
                listwise_seconds = time.perf_counter() - started
    finally:
        torch.set_num_threads(previous_threads)
    return {
        "model": "tiny random LLaVA (built here)" if not model_path else str(model_path),
        "scorer": scorer.identity,
        "device": str(scorer.device),
        "dtype": str(scorer.dtype).removeprefix("torch."),
        "threads": threads or previous_threads,
        "batch_size": batch_size,
        "items": items,
        "pages": pages,
        "page_items": page_items,
        "load_seconds": round(load_seconds, 3),
        "pointwise_items_per_second": round(items / pointwise_seconds, 1),
        "pointwise_expected_grade_mean": round(float(pointwise.expected.mean()), 4),
        "listwise_pages_per_second": (
            round(pages / listwise_seconds, 2) if listwise_seconds else None
        ),
        "listwise_items_per_second": (
            round(pages * page_items / listwise_seconds, 1) if listwise_seconds else None
        ),
        "listwise_refusal": scorer.listwise_refusal,
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
