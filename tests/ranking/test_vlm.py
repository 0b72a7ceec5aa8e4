"""The vision-language scorer on a tiny random LLaVA built locally and loaded like real weights."""

import numpy as np
import pytest
from PIL import Image

from ranking.ml.vlm import LISTWISE, POINTWISE, VlmError, VlmItem, VlmScorer

GRADES = ["not relevant", "somewhat relevant", "relevant", "highly relevant", "perfect"]


@pytest.fixture(scope="session")
def scorer(tiny_vlm_path):
    return VlmScorer(tiny_vlm_path, grade_names=GRADES, device="cpu", batch_size=4)


def _items():
    red = Image.new("RGB", (40, 30), (220, 20, 20))
    blue = Image.new("RGB", (30, 50), (10, 10, 240))
    return [
        VlmItem(text="red cat"),
        VlmItem(image=red),
        VlmItem(text="blue dog photo", image=blue),
        VlmItem(text="a house in the city"),
        VlmItem(text="green river"),
    ]


def test_pointwise_scores_one_expected_grade_and_distribution_per_item(scorer):
    scores = scorer.score("red cat", _items())
    assert scores.mode == POINTWISE
    assert scores.expected.shape == (5,)
    assert scores.distribution.shape == (5, len(GRADES))
    np.testing.assert_allclose(scores.distribution.sum(axis=1), 1.0, atol=1e-6)
    assert np.all((scores.expected >= 0) & (scores.expected <= len(GRADES) - 1))
    grades = np.arange(len(GRADES))
    np.testing.assert_allclose(scores.expected, scores.distribution @ grades)


def test_listwise_scores_every_item_of_every_page(scorer):
    items = _items()
    pages = scorer.score_pages([("red cat", items), ("dog", items[:2]), ("city", [])])
    assert [page.mode for page in pages] == [LISTWISE] * 3
    assert [page.distribution.shape for page in pages] == [(5, 5), (2, 5), (0, 5)]
    for page in pages[:2]:
        np.testing.assert_allclose(page.distribution.sum(axis=1), 1.0, atol=1e-6)
        assert np.all((page.expected >= 0) & (page.expected <= len(GRADES) - 1))


def test_pointwise_scores_do_not_depend_on_batch_composition(tiny_vlm_path, scorer):
    items = _items()
    together = scorer.score("red cat", items).expected
    alone = VlmScorer(tiny_vlm_path, grade_names=GRADES, device="cpu", batch_size=1)
    one_by_one = np.concatenate([alone.score("red cat", [item]).expected for item in items])
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
    # Mixed queries in one batch, in another order.
    reordered = scorer.score_pairs(["dog", "red cat", "red cat"], [items[4], items[2], items[0]])
    np.testing.assert_allclose(reordered.expected[1:], together[[2, 0]], atol=1e-5)


def test_listwise_scores_do_not_depend_on_batch_composition(scorer):
    items = _items()
    batched = scorer.score_pages([("dog", items[:2]), ("red cat", items)])
    alone = scorer.score_page("red cat", items)
    np.testing.assert_allclose(batched[1].expected, alone.expected, atol=1e-5)
    assert np.all(alone.expected == scorer.score_page("red cat", items).expected)


def test_an_items_image_changes_its_score(scorer):
    red = Image.new("RGB", (32, 32), (220, 20, 20))
    noise = Image.fromarray(np.random.default_rng(0).integers(0, 255, (32, 32, 3), dtype=np.uint8))
    items = [VlmItem(text="red cat", image=red), VlmItem(text="red cat", image=noise)]
    pointwise = scorer.score("red cat", items)
    assert abs(pointwise.expected[0] - pointwise.expected[1]) > 1e-4
    # Listwise: changing the first item's image changes the first item's grade.
    first = scorer.score_page("red cat", [items[0], VlmItem(text="dog")])
    second = scorer.score_page("red cat", [items[1], VlmItem(text="dog")])
    assert abs(first.expected[0] - second.expected[0]) > 1e-4


def test_labels_the_tokenizer_splits_are_refused_at_load(tiny_vlm_path):
    with pytest.raises(VlmError, match="single token"):
        VlmScorer(tiny_vlm_path, grade_names=GRADES[:2], labels=["no", "highly relevant"])


def test_labels_that_fall_on_one_token_are_refused(tiny_vlm_path):
    # Both words are unknown to the tiny vocabulary, so both become <unk>.
    with pytest.raises(VlmError, match="same token"):
        VlmScorer(tiny_vlm_path, grade_names=GRADES[:2], labels=["zebra", "yak"])


def test_a_missing_directory_is_refused_with_its_path(tmp_path):
    with pytest.raises(VlmError, match="does not exist"):
        VlmScorer(tmp_path / "nowhere", grade_names=GRADES)


def test_the_identity_names_weights_and_labels(tiny_vlm_path, scorer):
    other = VlmScorer(tiny_vlm_path, grade_names=GRADES[:3], device="cpu")
    assert other.identity != scorer.identity
    assert other.version == scorer.version
