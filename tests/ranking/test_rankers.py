import numpy as np
import pytest
from PIL import Image
from skimage import data as skdata

from ranking.ml.rankers import image_upstream_scores, text_upstream_scores


def test_text_upstream_scores_are_cosines_for_one_query_or_paired_rows():
    items = np.array([[1.0, 0.0], [0.0, 2.0], [0.0, 0.0]])
    np.testing.assert_allclose(text_upstream_scores(np.array([3.0, 0.0]), items), [1.0, 0.0, 0.0])
    queries = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    np.testing.assert_allclose(text_upstream_scores(queries, items), [1.0, 1.0, 0.0])


def test_image_upstream_scores_weigh_class_name_cosines_by_renormalised_top_k_probability():
    query = np.array([1.0, 0.0])
    names = np.array([[1.0, 0.0], [0.0, 1.0], [0.6, 0.8]])  # cosines 1, 0, 0.6
    probs = np.array([[0.5, 0.3, 0.2], [0.0, 0.1, 0.9]])
    np.testing.assert_allclose(image_upstream_scores(query, probs, names, top_k=None), [0.62, 0.54])
    # Top-2 of image 0: classes 0 and 1 -> (0.5 * 1 + 0.3 * 0) / 0.8.
    np.testing.assert_allclose(image_upstream_scores(query, probs, names, top_k=2), [0.625, 0.54])


def test_builtin_text_ranker_puts_coffee_above_the_moon_for_coffee(builtin_rankers):
    scores = builtin_rankers.score_texts(
        "coffee",
        [
            "The Moon is Earth's only natural satellite; its surface is covered in craters.",
            "Espresso is brewed by forcing hot water through finely ground coffee beans.",
        ],
    )
    assert scores[1] > scores[0]


def test_builtin_image_ranker_puts_the_cat_above_the_rocket_for_cat(builtin_rankers):
    images = [Image.fromarray(skdata.rocket()), Image.fromarray(skdata.chelsea())]
    scores = builtin_rankers.score_images("cat", images)
    assert scores[1] > scores[0]
    rocket_first = builtin_rankers.score_images("rocket", images)
    assert rocket_first[0] > rocket_first[1]


def test_builtin_rankers_embed_the_class_names_once(builtin_rankers):
    first = builtin_rankers.class_name_embs
    assert first.shape == (1000, 384)
    assert builtin_rankers.class_name_embs is first


@pytest.mark.parametrize("top_k", [1, 5, None])
def test_image_scores_stay_on_the_cosine_scale(builtin_rankers, top_k):
    probs = np.random.default_rng(0).dirichlet(np.ones(1000), size=3)
    scores = image_upstream_scores(
        builtin_rankers.embed_query("dog"), probs, builtin_rankers.class_name_embs, top_k=top_k
    )
    assert np.all(scores >= -1) and np.all(scores <= 1)
