"""Training throughput benchmark of the whole-page reranker on generated pages at real embedding
sizes (384 text, 1280 image), so that no encoder time is counted. Wrapped by a management command.
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Sequence
from statistics import median

import torch

from .features import TrainPage, collate_pages
from .model import RerankerConfig, WholePageReranker
from .synthetic import WorldConfig, make_world
from .trainer import SCORE_BATCH_SIZE, score_pages, train


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
    repeats: int = 3,
) -> dict:
    """Train for `epochs` on `queries` fully graded pages; report seconds per epoch and memory.

    Every epoch runs (no validation, so no early stop). Returns epoch_seconds (mean),
    pages_per_second (inference: score_pages as the product calls it scoring every page once,
    median of `repeats`; pages_per_second_best the fastest), `inference` (every path timed in
    the same rounds: the product's, batches of 16 and 64, one thread with intra-op threads, and the
    padded forward in batches of 64 and 256 that scored pages before), the product path's
    speed-up over the padded ones, train_pages_per_second, peak_rss_mb, and the settings.
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
    inference = _time_inference(result.model, pages, threads=threads, repeats=repeats)
    product = inference[PRODUCT_PATH]
    return {
        "queries": queries,
        "items_per_query": items_per_query,
        "epochs": epochs,
        "batch_size": batch_size,
        "threads": threads or torch.get_num_threads(),
        "device": device,
        "generate_seconds": round(generate_seconds, 3),
        "epoch_seconds": round(epoch_seconds, 3),
        "pages_per_second": product["pages_per_second_median"],
        "pages_per_second_best": product["pages_per_second_best"],
        "inference_batch_size": SCORE_BATCH_SIZE,
        "inference_repeats": repeats,
        "inference": inference,
        # Same run, medians: the product path against the padded forward in batches of 256
        # (score_pages until then) and of 64 (before that).
        "speedup_vs_padded_batch256": round(
            product["pages_per_second_median"]
            / inference["padded_batch256"]["pages_per_second_median"],
            2,
        ),
        "speedup_vs_padded_batch64": round(
            product["pages_per_second_median"]
            / inference["padded_batch64"]["pages_per_second_median"],
            2,
        ),
        "train_pages_per_second": round(len(pages) / epoch_seconds, 1),
        "items_per_second": round(items_per_query * product["pages_per_second_median"], 1),
        "final_loss": round(result.history[-1].train_loss, 4),
        "peak_rss_mb": round(peak_rss_mb(), 1),
    }


PRODUCT_PATH = f"packed_batch{SCORE_BATCH_SIZE}"


def _score_padded(model: WholePageReranker, pages: Sequence[TrainPage], batch_size: int) -> None:
    """score_pages as it was: the padded forward (collate_pages, `score`) over batches in order."""
    for start in range(0, len(pages), batch_size):
        chunk = pages[start : start + batch_size]
        scores = model.score(collate_pages(chunk)).cpu().numpy()
        [scores[row, : len(page.grades)] for row, page in enumerate(chunk)]


def _time_inference(
    model: WholePageReranker, pages: Sequence[TrainPage], *, threads: int | None, repeats: int
) -> dict[str, dict[str, float]]:
    """Pages/s and CPU seconds of each way to score every page once, `repeats` rounds of all of
    them in turn, so that a burst of other work on a shared machine hits every path alike."""
    paths: dict[str, Callable[[], object]] = {
        PRODUCT_PATH: lambda: score_pages(model, pages),
        "packed_batch16": lambda: score_pages(model, pages, batch_size=16),
        "packed_batch64": lambda: score_pages(model, pages, batch_size=64),
        # One thread scoring, torch splitting each op over its intra-op threads instead.
        f"packed_batch{SCORE_BATCH_SIZE}_intraop": lambda: score_pages(model, pages, workers=1),
        "padded_batch64": lambda: _score_padded(model, pages, 64),
        "padded_batch256": lambda: _score_padded(model, pages, 256),
    }
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in paths}
    previous_threads = torch.get_num_threads()
    try:
        if threads:
            torch.set_num_threads(threads)
        for _ in range(repeats):
            for name, run in paths.items():
                wall, cpu = time.perf_counter(), time.process_time()
                run()
                times[name].append((time.perf_counter() - wall, time.process_time() - cpu))
    finally:
        torch.set_num_threads(previous_threads)
    return {
        name: {
            "pages_per_second_median": round(len(pages) / median(w for w, _ in runs), 1),
            "pages_per_second_best": round(len(pages) / min(w for w, _ in runs), 1),
            "cpu_seconds_median": round(median(c for _, c in runs), 3),
        }
        for name, runs in times.items()
    }
