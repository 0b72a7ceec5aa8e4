import numpy as np
import pytest

from ranking.ml.metrics import kendall_tau_b
from ranking.ml.synthetic import WorldConfig, make_world

CONFIG = WorldConfig(n_queries=120, items_per_query=30, text_dim=8, image_dim=8, seed=3)


def test_world_is_deterministic_for_a_seed():
    a, b = make_world(CONFIG), make_world(CONFIG)
    for qa, qb in zip(a.queries, b.queries, strict=True):
        np.testing.assert_array_equal(qa.grades, qb.grades)
        np.testing.assert_array_equal(qa.text_embs, qb.text_embs)
        np.testing.assert_array_equal(qa.upstream_scores, qb.upstream_scores)
    other = make_world(WorldConfig(n_queries=120, items_per_query=30, text_dim=8, image_dim=8))
    assert not np.array_equal(a.queries[0].upstream_scores, other.queries[0].upstream_scores)


def test_most_items_are_not_relevant_and_every_query_has_a_relevant_item():
    world = make_world(CONFIG)
    grades = np.concatenate([q.grades for q in world.queries])
    assert 0.55 < np.mean(grades == 0) < 0.85
    assert set(np.unique(grades)) == {0, 1, 2, 3, 4}
    assert all(q.grades.max() > 0 for q in world.queries)


@pytest.mark.parametrize("tau", [0.5, 0.75, 0.9])
def test_upstream_order_agrees_with_the_truth_at_the_configured_kendall_tau(tau):
    world = make_world(WorldConfig(n_queries=150, text_dim=4, image_dim=4, upstream_tau=tau))
    taus = [
        kendall_tau_b(q.upstream_scores[q.modalities == m], q.relevance[q.modalities == m])
        for q in world.queries
        for m in range(3)
    ]
    assert np.mean(taus) == pytest.approx(tau, abs=0.03)


def test_modalities_report_upstream_scores_on_different_scales():
    world = make_world(CONFIG)
    scores = np.concatenate([q.upstream_scores for q in world.queries])
    modalities = np.concatenate([q.modalities for q in world.queries])
    text, image, video = (scores[modalities == m] for m in range(3))
    assert text.min() > 0 and text.max() < 1
    assert image.min() < 0 < image.max()
    assert video.mean() > 10


def test_pages_carry_the_requested_share_of_grades_and_human_cross_modal_pairs():
    world = make_world(CONFIG)
    pages = world.pages(range(50), graded_share=0.3, human_pairs_per_query=4, seed=1)
    graded = np.concatenate([p.grades >= 0 for p in pages])
    assert 0.2 < graded.mean() < 0.4
    for page, query in zip(pages, world.queries[:50], strict=True):
        for pair in page.pairs:
            assert page.modalities[pair.better] != page.modalities[pair.worse]
            assert query.grades[pair.better] > query.grades[pair.worse]
    train, val, test = world.split(80, 20)
    assert len(set(train) | set(val) | set(test)) == 120 and len(test) == 20
