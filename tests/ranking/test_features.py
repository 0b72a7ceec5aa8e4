import numpy as np
import pytest
import torch

from ranking.ml.features import (
    N_SCALAR_FEATURES,
    PreferencePair,
    TrainPage,
    collate_pages,
    collate_targets,
    feature_dim,
    page_features,
    upstream_ranks_within_modality,
    upstream_zscores_within_modality,
)


def test_zscores_are_taken_within_each_modality_and_zero_where_uninformative():
    scores = np.array([0.9, 0.5, 0.1, 40.0, np.nan, 7.0, 7.0, 3.0])
    modalities = np.array([0, 0, 0, 1, 1, 2, 2, 3])
    z = upstream_zscores_within_modality(scores, modalities)
    expected_text = (scores[:3] - scores[:3].mean()) / scores[:3].std()
    np.testing.assert_allclose(z[:3], expected_text)
    # One scored image, a missing score, two equal video scores, a lone item: all 0.
    np.testing.assert_array_equal(z[3:], 0.0)


def test_upstream_ranks_are_zero_based_within_modality_with_missing_scores_last():
    scores = np.array([0.2, np.nan, 0.9, 5.0, 1.0])
    modalities = np.array([0, 0, 0, 1, 1])
    np.testing.assert_array_equal(
        upstream_ranks_within_modality(scores, modalities), [1, 2, 0, 0, 1]
    )


def test_page_features_lay_out_embeddings_then_scalars():
    rng = np.random.default_rng(0)
    query = rng.normal(size=4)
    text = rng.normal(size=(3, 4))
    text[2] = 0.0  # an image without a caption
    image = np.zeros((3, 6))
    image[1:] = rng.normal(size=(2, 6))
    features = page_features(
        query_emb=query,
        text_embs=text,
        image_embs=image,
        modalities=[0, 1, 1],
        upstream_scores=[0.3, 2.0, -1.0],
    )
    assert features.shape == (3, feature_dim(4, 6)) == (3, 4 + 6 + N_SCALAR_FEATURES)
    assert features.dtype == np.float32
    np.testing.assert_allclose(features[:, :4], text, rtol=1e-6)
    np.testing.assert_allclose(features[:, 4:10], image, rtol=1e-6)
    z, log_rank, cosine = features[:, -3:].T
    np.testing.assert_allclose(z, [0.0, 1.0, -1.0], atol=1e-6)
    np.testing.assert_allclose(log_rank, np.log1p([0, 0, 1]), atol=1e-6)
    expected_cos = text[:2] @ query / np.linalg.norm(text[:2], axis=1) / np.linalg.norm(query)
    np.testing.assert_allclose(cosine[:2], expected_cos, rtol=1e-5)
    assert cosine[2] == 0.0


def test_page_features_without_images_need_the_image_width():
    with pytest.raises(ValueError, match="image_dim"):
        page_features(
            query_emb=np.ones(2),
            text_embs=np.ones((1, 2)),
            image_embs=None,
            modalities=[0],
            upstream_scores=[1.0],
        )
    features = page_features(
        query_emb=np.ones(2),
        text_embs=np.ones((1, 2)),
        image_embs=None,
        modalities=[0],
        upstream_scores=[1.0],
        image_dim=5,
    )
    np.testing.assert_array_equal(features[0, 2:7], 0.0)


def test_imported_ranks_are_kept_and_a_missing_rank_goes_after_its_modality():
    features = page_features(
        query_emb=np.ones(2),
        text_embs=np.ones((3, 2)),
        image_embs=None,
        image_dim=1,
        modalities=[0, 0, 0],
        upstream_scores=[0.1, 0.2, np.nan],
        upstream_ranks=[0, 1, -1],
    )
    np.testing.assert_allclose(features[:, -2], np.log1p([0, 1, 3]), atol=1e-6)


def _page(n, query_id="q", grades=None, pairs=()):
    rng = np.random.default_rng(n)
    return TrainPage.from_items(
        query_id=query_id,
        query_emb=rng.normal(size=4),
        text_embs=rng.normal(size=(n, 4)),
        image_embs=rng.normal(size=(n, 3)),
        modalities=np.arange(n) % 2,
        upstream_scores=rng.normal(size=n),
        grades=grades,
        pairs=pairs,
    )


def test_collate_pads_to_the_longest_page_and_masks_padding():
    pages = [_page(3, "a"), _page(5, "b", pairs=[PreferencePair(4, 0, "implied", 0.3)])]
    batch = collate_pages(pages)
    targets = collate_targets(pages)
    assert batch.features.shape == (2, 5, feature_dim(4, 3))
    assert batch.mask.tolist() == [[True] * 3 + [False] * 2, [True] * 5]
    assert torch.equal(batch.padding_mask, ~batch.mask)
    assert torch.all(batch.features[0, 3:] == 0)
    assert targets.grades[0].tolist() == [-1] * 5
    assert targets.upstream_ranks[0, 3:].tolist() == [-1, -1]
    assert targets.pair_page.tolist() == [1]
    assert (targets.pair_better.item(), targets.pair_worse.item()) == (4, 0)
    assert targets.pair_source.item() == 1
    assert targets.pair_weight.item() == pytest.approx(0.3)


def test_train_page_rejects_pairs_outside_the_page_and_unknown_sources():
    with pytest.raises(ValueError, match="bad pair"):
        _page(3, pairs=[PreferencePair(0, 3)])
    with pytest.raises(ValueError, match="source"):
        PreferencePair(0, 1, "guessed")
