"""Training throughput benchmark of the whole-page reranker on generated pages at real embedding
sizes (384 text, 1280 image), so that no encoder time is counted. Wrapped by a management command.
"""

from __future__ import annotations

import resource
import sys
import time

import torch

from .model import RerankerConfig
from .synthetic import WorldConfig, make_world
from .trainer import score_pages, train


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # ru_maxrss is in KiB on Linux, in bytes on macOS.
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


def run_benchmark(
    queries: int = 1000,
    items_per_query: int = 40,
    epochs: int = 2,
    seed: int = 0,
    threads: int | None = None,
    *,
    batch_size: int = 32,
    device: str = "cpu",
    config: RerankerConfig | None = None,
) -> dict:
    """Train for `epochs` on `queries` fully graded pages; report seconds per epoch and memory.

    Every epoch runs (no validation, so no early stop). Returns epoch_seconds (mean),
    pages_per_second (inference: scoring every page once, in
    batches of 256), pages_per_second_batch64 (the same in batches of 64, for the ratio),
    train_pages_per_second, peak_rss_mb, and the settings the figures were taken with.
    """
    config = config or RerankerConfig(text_dim=384, image_dim=1280, seed=seed)
    started = time.perf_counter()
    world = make_world(
        WorldConfig(
            n_queries=queries,
            items_per_query=items_per_query,
            text_dim=config.text_dim,
            image_dim=config.image_dim,
            n_grades=config.n_grades,
            seed=seed,
        )
    )
    pages = world.pages()
    generate_seconds = time.perf_counter() - started
    result = train(
        config,
        pages,
        (),
        epochs=epochs,
        batch_size=batch_size,
        seed=seed,
        threads=threads,
        device=device,
        verbose=False,
    )
    epoch_seconds = sum(r.seconds for r in result.history) / len(result.history)
    # Inference: the trained model scoring every page once, in batches, without gradients.
    started = time.perf_counter()
    score_pages(result.model, pages)
    inference_seconds = time.perf_counter() - started
    # The same scoring in the batches of 64 used before, in the same run: the ratio is the claim.
    started = time.perf_counter()
    score_pages(result.model, pages, batch_size=64)
    batch64_seconds = time.perf_counter() - started
    return {
        "queries": queries,
        "items_per_query": items_per_query,
        "epochs": epochs,
        "batch_size": batch_size,
        "threads": threads or torch.get_num_threads(),
        "device": device,
        "generate_seconds": round(generate_seconds, 3),
        "epoch_seconds": round(epoch_seconds, 3),
        "pages_per_second": round(len(pages) / inference_seconds, 1),
        "pages_per_second_batch64": round(len(pages) / batch64_seconds, 1),
        "train_pages_per_second": round(len(pages) / epoch_seconds, 1),
        "items_per_second": round(len(pages) * items_per_query / inference_seconds, 1),
        "final_loss": round(result.history[-1].train_loss, 4),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }
