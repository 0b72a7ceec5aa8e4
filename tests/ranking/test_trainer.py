import dataclasses

import numpy as np
import pytest
import torch

from ranking.ml.baselines import BASELINES
from ranking.ml.features import collate_pages
from ranking.ml.losses import LossWeights
from ranking.ml.metrics import evaluate_pages, mean_ndcg_at_k
from ranking.ml.model import RerankerConfig, WholePageReranker
from ranking.ml.synthetic import WorldConfig, make_world
from ranking.ml.trainer import score_pages, train

# The world's priors are fixed in synthetic.py; these are only its size and the model's.
WORLD = WorldConfig(n_queries=400, items_per_query=40, text_dim=32, image_dim=32, seed=0)
MODEL = RerankerConfig(text_dim=32, image_dim=32, n_modalities=3, hidden=64, layers=1, heads=4)


@pytest.fixture(scope="module")
def trained():
    world = make_world(WORLD)
    train_ids, val_ids, test_ids = world.split(240, 60)
    result = train(
        MODEL,
        world.pages(train_ids),
        world.pages(val_ids),
        epochs=40,
        patience=6,
        seed=0,
        threads=1,
        verbose=False,
    )
    return result, world.pages(test_ids)


def test_trained_reranker_ranks_held_out_queries_well_and_beats_every_label_free_baseline(trained):
    result, test_pages = trained
    grades = [page.grades for page in test_pages]
    figures = evaluate_pages(
        score_pages(result.model, test_pages),
        grades,
        [page.modalities for page in test_pages],
        [page.upstream_scores for page in test_pages],
    )
    baselines = {
        name: mean_ndcg_at_k([merge(p.upstream_scores, p.modalities) for p in test_pages], grades)
        for name, merge in BASELINES.items()
    }
    print(
        f"\nheld-out NDCG@10: reranker {figures['ndcg@10']:.4f} (best epoch {result.best_epoch}, "
        f"val {result.val_metric:.4f}); baselines "
        + ", ".join(f"{name} {value:.4f}" for name, value in baselines.items())
        + f"; cross-modal pair accuracy {figures['cross_modal_pair_accuracy']:.4f}"
    )
    # This world tops out near 0.91 for this model (see the report of the ranking core);
    # 0.88 leaves room for run-to-run variation across machines without hiding a regression.
    assert figures["ndcg@10"] >= 0.88
    for name, value in baselines.items():
        assert figures["ndcg@10"] >= value + 0.1, name


def test_training_keeps_the_best_validation_epoch_and_reports_every_epoch(trained):
    result, _ = trained
    best = max(report.val_ndcg10 for report in result.history)
    assert result.val_metric == best
    assert result.history[result.best_epoch - 1].val_ndcg10 == best
    assert [r.epoch for r in result.history] == list(range(1, len(result.history) + 1))
    assert not result.model.training


def _small_run(seed, progress=None):
    world = make_world(WorldConfig(n_queries=30, items_per_query=12, text_dim=8, image_dim=8))
    config = RerankerConfig(text_dim=8, image_dim=8, hidden=16, layers=1, heads=2, dropout=0.1)
    pages = world.pages(range(20), human_pairs_per_query=3)
    result = train(
        config,
        pages,
        world.pages(range(20, 30)),
        weights=LossWeights(beta={1: 0.3}),
        epochs=3,
        batch_size=4,
        seed=seed,
        threads=1,
        progress=progress,
        verbose=False,
    )
    return result, result.model.score(collate_pages(pages))


def test_training_is_deterministic_for_a_seed():
    _, first = _small_run(seed=7)
    _, second = _small_run(seed=7)
    assert torch.equal(first, second)
    _, other = _small_run(seed=8)
    assert not torch.equal(first, other)


def test_training_reports_progress_and_leaves_global_torch_state_as_it_was():
    torch.set_num_threads(1)
    reports = []
    try:
        _small_run(seed=0, progress=reports.append)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(1)
    assert [r.epoch for r in reports] == [1, 2, 3]
    assert {"ce", "listmle", "pair_human", "single_modal"} <= set(reports[0].parts)
    assert np.isfinite(reports[-1].train_loss)
    assert not torch.are_deterministic_algorithms_enabled()
    assert "epoch 1/3" in reports[0].line()


def test_training_refuses_pages_that_do_not_fit_the_model():
    world = make_world(WorldConfig(n_queries=4, items_per_query=6, text_dim=8, image_dim=8))
    with pytest.raises(ValueError, match="features"):
        train(MODEL, world.pages(), epochs=1, verbose=False)


def test_on_a_world_where_cross_modal_order_is_learnable_training_reaches_095_and_beats_baselines():
    # The same world with little embedding noise (0.05 instead of 0.2): the truth is in the
    # features, so a reranker that learns the cross-modal order must find it. The default, noisier
    # world above tops out near 0.90 (its ceiling, not under-training).
    world = make_world(
        WorldConfig(
            n_queries=400, items_per_query=40, text_dim=32, image_dim=32, seed=0,
            text_noise=0.05, image_noise=0.05, image_query_shift=0.05,
        )
    )  # fmt: skip
    train_ids, val_ids, test_ids = world.split(240, 60)
    result = train(
        MODEL,
        world.pages(train_ids),
        world.pages(val_ids),
        epochs=40,
        patience=6,
        seed=0,
        threads=1,
        verbose=False,
    )
    test_pages = world.pages(test_ids)
    grades = [page.grades for page in test_pages]
    ndcg = mean_ndcg_at_k(score_pages(result.model, test_pages), grades)
    baselines = {
        name: mean_ndcg_at_k([merge(p.upstream_scores, p.modalities) for p in test_pages], grades)
        for name, merge in BASELINES.items()
    }
    print(f"\nlearnable world, held-out NDCG@10: reranker {ndcg:.4f}; baselines {baselines}")
    assert ndcg >= 0.95
    assert all(ndcg > value for value in baselines.values())


def test_score_pages_in_threads_scores_as_the_padded_forward_and_gives_the_threads_back():
    """Whatever the batch size or number of threads, score_pages gives forward's scores (to
    1e-6) of each page, in the order of the pages, and leaves torch's thread count as it was."""
    world = make_world(dataclasses.replace(WORLD, n_queries=23, items_per_query=9))
    # Pages of several lengths, so that batches need padding.
    pages = [dataclasses.replace(p, **_first(p, 3 + i % 7)) for i, p in enumerate(world.pages())]
    torch.manual_seed(0)
    model = WholePageReranker(MODEL).eval()
    batch = collate_pages(pages)
    expected = model.score(batch).numpy()
    threads = torch.get_num_threads()
    for batch_size, workers in [(16, 1), (4, 2), (1, 3)]:
        scores = score_pages(model, pages, batch_size=batch_size, workers=workers)
        assert torch.get_num_threads() == threads
        for row, page_scores in enumerate(scores):
            np.testing.assert_allclose(
                page_scores, expected[row, : len(pages[row].grades)], rtol=0, atol=1e-6
            )


def _first(page, n):
    return {
        "features": page.features[:n],
        "modalities": page.modalities[:n],
        "upstream_scores": page.upstream_scores[:n],
        "upstream_ranks": page.upstream_ranks[:n],
        "grades": page.grades[:n],
        "pairs": [],
        "item_ids": None,
    }
