"""Training the whole-page reranker on TrainPages: seeded, early-stopped on validation NDCG@10,
with one progress line per epoch and a callback so a worker can report progress.
"""

from __future__ import annotations

import copy
import time
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from .features import PageBatch, TrainPage, collate_pages, collate_targets
from .losses import LossWeights, smar_loss
from .metrics import mean_ndcg_at_k
from .model import RerankerConfig, WholePageReranker

__all__ = ["EpochReport", "TrainPage", "TrainResult", "score_pages", "train"]

# Pages per inference batch: 16, 32 and 64 are within noise of each other on the 2-core machine
# (bench_reranker, load average 1.2-5); 32 took the least CPU in an interleaved run at load 1.2-1.7
# (2,761 pages/s median vs 2,511 and 2,627). 32 pages of 40 items are 8.5 MB of features.
SCORE_BATCH_SIZE = 32


@dataclass
class EpochReport:
    epoch: int  # 1-based
    epochs: int
    train_loss: float
    parts: dict[str, float]
    val_ndcg10: float  # NaN without validation pages
    seconds: float
    is_best: bool

    def line(self) -> str:
        parts = " ".join(f"{k}={v:.4f}" for k, v in self.parts.items() if k != "total")
        best = " *" if self.is_best else ""
        return (
            f"epoch {self.epoch}/{self.epochs} loss={self.train_loss:.4f} ({parts}) "
            f"val_ndcg@10={self.val_ndcg10:.4f} {self.seconds:.1f}s{best}"
        )


@dataclass
class TrainResult:
    model: WholePageReranker  # the best epoch's weights, in eval mode
    history: list[EpochReport] = field(default_factory=list)
    best_epoch: int = 0
    val_metric: float = float("nan")  # validation NDCG@10 of the best epoch


@contextmanager
def _reproducible(seed: int, threads: int | None) -> Iterator[None]:
    # Global torch state is borrowed and given back, so a Celery worker that trains, then does
    # other work, is left as it was found.
    previous_threads = torch.get_num_threads()
    previous_deterministic = torch.are_deterministic_algorithms_enabled()
    previous_warn_only = torch.is_deterministic_algorithms_warn_only_enabled()
    try:
        if threads:
            torch.set_num_threads(threads)
        # warn_only: an op without a deterministic kernel (some CUDA ones) warns instead of failing;
        # every op used here is deterministic on CPU.
        torch.use_deterministic_algorithms(True, warn_only=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            yield
    finally:
        torch.use_deterministic_algorithms(previous_deterministic, warn_only=previous_warn_only)
        torch.set_num_threads(previous_threads)


def _build_model(model_or_config: WholePageReranker | RerankerConfig) -> WholePageReranker:
    if isinstance(model_or_config, WholePageReranker):
        return model_or_config
    # Initial weights come from the config's seed, apart from the training seed, so that the same
    # config always starts from the same weights.
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(model_or_config.seed)
        return WholePageReranker(model_or_config)


def _check_pages(pages: Sequence[TrainPage], config: RerankerConfig, name: str) -> None:
    for page in pages:
        if page.features.shape[1] != config.feature_dim:
            raise ValueError(
                f"{name}: page of query {page.query_id!r} has {page.features.shape[1]} features, "
                f"the model expects {config.feature_dim}"
            )
        if page.grades.max(initial=-1) >= config.n_grades:
            raise ValueError(f"{name}: page of query {page.query_id!r} has a grade above the scale")
        if page.modalities.max(initial=0) >= config.n_modalities or page.modalities.min() < 0:
            raise ValueError(f"{name}: page of query {page.query_id!r} has an unknown modality")


def score_pages(
    model: WholePageReranker,
    pages: Sequence[TrainPage],
    *,
    batch_size: int = SCORE_BATCH_SIZE,
    workers: int | None = None,
) -> list[np.ndarray]:
    """The model's score of every item, one array per page (in the page's item order).

    Pages are batched by length (little padding), their items laid end to end for
    `WholePageReranker.score_items`. The batches are shared out to `workers` threads (default:
    torch's intra-op thread count), each running torch on one thread: the model's matrices are
    too small for two threads to share one well, and on a shared machine a thread kept waiting
    at each op's barrier by other work stalls its partner (see README, Benchmarks). The scores
    do not depend on `workers`: each batch is computed by one thread.
    """
    order = sorted(range(len(pages)), key=lambda i: pages[i].features.shape[0])
    batches = [order[start : start + batch_size] for start in range(0, len(order), batch_size)]
    out: list[np.ndarray] = [np.empty(0, dtype=np.float32)] * len(pages)

    def score_batch(batch: list[int]) -> None:
        chunk = [pages[i] for i in batch]
        lengths = [page.features.shape[0] for page in chunk]
        features = torch.from_numpy(np.concatenate([page.features for page in chunk]))
        modalities = torch.from_numpy(np.concatenate([page.modalities for page in chunk]))
        scores = model.score_items(
            features.to(model.device), modalities.to(model.device), lengths
        ).cpu()
        for i, page_scores in zip(batch, scores.split(lengths), strict=True):
            out[i] = page_scores.numpy()

    workers = min(workers or torch.get_num_threads(), len(batches))
    if workers <= 1:
        for batch in batches:
            score_batch(batch)
        return out
    previous_threads = torch.get_num_threads()

    def one_thread() -> None:
        # The first op of a new thread would set its thread count from the process-wide one:
        # take that first, then set this thread's own to 1.
        torch.get_num_threads()
        torch.set_num_threads(1)

    try:
        with ThreadPoolExecutor(workers, initializer=one_thread) as pool:
            list(pool.map(score_batch, batches))
    finally:
        # set_num_threads also sets the count new threads start with: give it back.
        torch.set_num_threads(previous_threads)
    return out


def _val_ndcg10(model: WholePageReranker, pages: Sequence[TrainPage]) -> float:
    scores = score_pages(model, pages)
    return mean_ndcg_at_k(scores, [page.grades for page in pages], k=10)


def train(
    model_or_config: WholePageReranker | RerankerConfig,
    train_pages: Sequence[TrainPage],
    val_pages: Sequence[TrainPage] = (),
    *,
    weights: LossWeights | None = None,
    epochs: int = 30,
    lr: float = 3e-3,
    weight_decay: float = 1e-4,
    batch_size: int = 32,
    patience: int = 5,
    seed: int = 0,
    threads: int | None = None,
    device: str | torch.device = "cpu",
    progress: Callable[[EpochReport], None] | None = None,
    verbose: bool = True,
) -> TrainResult:
    """Train on `train_pages`, keep the epoch with the best NDCG@10 on `val_pages`.

    Stops after `patience` epochs without improvement. Without validation pages every epoch is
    run and the last one is kept. The same seed, pages and thread count give the same weights.
    `progress` is called after every epoch (e.g. to update a Celery task's state); `verbose`
    prints the same report as one line.
    """
    if not train_pages:
        raise ValueError("no training pages")
    weights = weights or LossWeights()
    model = _build_model(model_or_config).to(device)
    _check_pages(train_pages, model.config, "train_pages")
    _check_pages(val_pages, model.config, "val_pages")
    # Validation pages without any relevant judged item cannot move NDCG; leave them out.
    val_pages = [page for page in val_pages if (page.grades > 0).any()]

    result = TrainResult(model=model)
    with _reproducible(seed, threads):
        rng = np.random.default_rng(seed)
        optimizer = torch.optim.AdamW(model.parameters(), lr=lr, weight_decay=weight_decay)
        best_state = None
        best_metric = -np.inf
        stale = 0
        for epoch in range(1, epochs + 1):
            started = time.perf_counter()
            model.train()
            total, parts_sum, n_batches = 0.0, {}, 0
            order = rng.permutation(len(train_pages))
            for start in range(0, len(order), batch_size):
                chunk = [train_pages[i] for i in order[start : start + batch_size]]
                batch: PageBatch = collate_pages(chunk).to(device)
                targets = collate_targets(chunk).to(device)
                loss, parts = smar_loss(model(batch), batch, targets, weights)
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                # Pages differ a lot in how much supervision they carry; clipping keeps one
                # page full of pairs from throwing the weights far.
                torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=1.0)
                optimizer.step()
                total += float(loss.detach())
                n_batches += 1
                for key, value in parts.items():
                    parts_sum[key] = parts_sum.get(key, 0.0) + value

            val_metric = _val_ndcg10(model, val_pages) if val_pages else float("nan")
            is_best = not val_pages or val_metric > best_metric
            if is_best:
                best_metric = val_metric if val_pages else best_metric
                best_state = copy.deepcopy(model.state_dict())
                result.best_epoch, result.val_metric = epoch, val_metric
                stale = 0
            else:
                stale += 1
            report = EpochReport(
                epoch=epoch,
                epochs=epochs,
                train_loss=total / n_batches,
                parts={k: v / n_batches for k, v in parts_sum.items()},
                val_ndcg10=val_metric,
                seconds=time.perf_counter() - started,
                is_best=is_best,
            )
            result.history.append(report)
            if verbose:
                print(report.line(), flush=True)
            if progress is not None:
                progress(report)
            if val_pages and stale >= patience:
                break

        if best_state is not None:
            model.load_state_dict(best_state)
    model.eval()
    return result
