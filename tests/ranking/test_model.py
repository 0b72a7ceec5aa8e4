import dataclasses
import os

import numpy as np
import pytest
import torch

from ranking.ml.features import TrainPage, collate_pages
from ranking.ml.model import RerankerConfig, WholePageReranker

CONFIG = RerankerConfig(text_dim=8, image_dim=6, n_modalities=3, hidden=16, layers=2, heads=2)


def _pages(lengths, seed=0):
    rng = np.random.default_rng(seed)
    return [
        TrainPage.from_items(
            query_id=i,
            query_emb=rng.normal(size=8),
            text_embs=rng.normal(size=(n, 8)),
            image_embs=rng.normal(size=(n, 6)),
            modalities=rng.integers(0, 3, size=n),
            upstream_scores=rng.normal(size=n),
        )
        for i, n in enumerate(lengths)
    ]


@pytest.fixture
def model():
    torch.manual_seed(0)
    return WholePageReranker(CONFIG).eval()


def test_padding_never_changes_the_scores_of_real_items(model):
    short, long = _pages([3, 9])
    alone = model.score(collate_pages([short]))
    padded = model.score(collate_pages([short, long]))
    torch.testing.assert_close(padded[0, :3], alone[0], rtol=0, atol=1e-5)
    assert torch.isneginf(padded[0, 3:]).all()


def test_padding_never_changes_scores_in_training_mode_either():
    # Without dropout, which would make the two passes differ for its own reasons.
    torch.manual_seed(0)
    model = WholePageReranker(dataclasses.replace(CONFIG, dropout=0.0)).train()
    short, long = _pages([4, 7])
    alone = model(collate_pages([short])).scores
    padded = model(collate_pages([short, long])).scores
    torch.testing.assert_close(padded[0, :4], alone[0], rtol=0, atol=1e-5)
    assert torch.all(padded[0, 4:] == 0)


def test_scores_lie_on_the_grade_scale(model):
    scores = model.score(collate_pages(_pages([5, 6])))
    real = scores[torch.isfinite(scores)]
    assert real.min() >= 0 and real.max() <= CONFIG.n_grades - 1


def test_an_items_score_depends_on_the_rest_of_the_page(model):
    page, other = _pages([5, 5])
    changed = TrainPage(
        query_id="changed",
        features=np.concatenate([page.features[:1], other.features[1:]]),
        modalities=np.concatenate([page.modalities[:1], other.modalities[1:]]),
        upstream_scores=page.upstream_scores,
        upstream_ranks=page.upstream_ranks,
        grades=page.grades,
    )
    first = model.score(collate_pages([page]))[0, 0]
    assert model.score(collate_pages([changed]))[0, 0] != first


def test_save_then_load_gives_identical_scores(model, tmp_path):
    path = model.save(tmp_path / "reranker.safetensors")
    loaded = WholePageReranker.load(path)
    assert loaded.config == CONFIG
    batch = collate_pages(_pages([4, 6, 2]))
    assert torch.equal(model.score(batch), loaded.score(batch))
    assert WholePageReranker.read_config(path) == CONFIG


def test_atomic_save_leaves_no_temporary_files(model, tmp_path):
    model.save(tmp_path / "reranker.safetensors")
    model.save(tmp_path / "reranker.safetensors")  # replacing an existing version
    assert os.listdir(tmp_path) == ["reranker.safetensors"]


def test_a_failed_save_keeps_the_previous_version_and_leaves_no_temporary_file(
    model, tmp_path, monkeypatch
):
    path = model.save(tmp_path / "reranker.safetensors")
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr("ranking.ml.model.save_file", crash)
    with pytest.raises(OSError, match="disk full"):
        WholePageReranker(CONFIG).save(path)
    assert path.read_bytes() == before
    assert os.listdir(tmp_path) == ["reranker.safetensors"]


def test_config_round_trips_through_json():
    assert RerankerConfig.from_json(CONFIG.to_json()) == CONFIG
    with pytest.raises(ValueError, match="unknown"):
        RerankerConfig.from_json('{"hidden": 8, "colour": "blue"}')


def test_load_refuses_a_file_that_is_not_a_saved_reranker(tmp_path):
    from safetensors.torch import save_file

    path = tmp_path / "other.safetensors"
    save_file({"x": torch.zeros(1)}, str(path))
    with pytest.raises(ValueError, match="not a saved"):
        WholePageReranker.load(path)


def test_a_model_without_page_encoder_still_scores():
    config = RerankerConfig(text_dim=8, image_dim=6, hidden=16, layers=0, heads=2)
    flat = WholePageReranker(config)
    scores = flat.score(collate_pages(_pages([3])))
    assert scores.shape == (1, 3)


def test_one_projection_of_the_feature_row_scores_as_the_three_projections_did(model):
    """The fused input projection (one matmul) is the sum of the per-part projections it replaced."""
    batch = collate_pages(_pages([5, 9, 7], seed=3))
    t, i = CONFIG.text_dim, CONFIG.image_dim
    x = batch.features
    with torch.inference_mode():
        h = (
            model.text_proj(x[..., :t])
            + model.image_proj(x[..., t : t + i])
            + model.scalar_proj(x[..., t + i :])
            + model.modality_embedding(batch.modalities)
        )
        h = h + model.item_tower(h)
        h = model.page_encoder(h, src_key_padding_mask=batch.padding_mask)
        expected = model.head(h).softmax(dim=-1) @ model.grade_values
        expected = expected.masked_fill(~batch.mask, float("-inf"))
    torch.testing.assert_close(model.score(batch), expected, rtol=0, atol=1e-6)


def _packed(pages):
    features = torch.from_numpy(np.concatenate([page.features for page in pages]))
    modalities = torch.from_numpy(np.concatenate([page.modalities for page in pages]))
    return features, modalities, [len(page.grades) for page in pages]


@pytest.mark.parametrize("lengths", [[5, 9, 1, 7], [6, 6, 6]], ids=["padded", "one-length"])
@pytest.mark.parametrize("layers", [2, 0])
def test_the_inference_path_scores_as_the_reference_forward_to_1e6(lengths, layers):
    """score_items (packed items, fused attention) is forward in eval mode, whether the pages
    need padding and a mask or not, on a model whose weights are far from their initialisation."""
    torch.manual_seed(1)
    config = dataclasses.replace(CONFIG, layers=layers, extra_dim=2)
    model = WholePageReranker(config)
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.add_(0.5 * torch.randn_like(parameter))
    model.train()  # score_items must score as in eval mode whatever mode it is called in
    pages = _pages(lengths, seed=4)
    rng = np.random.default_rng(5)
    for page in pages:
        page.features = np.concatenate([page.features, rng.normal(size=(len(page.grades), 2))], 1)
        page.features = page.features.astype(np.float32)
    batch = collate_pages(pages)
    expected = model.eval()(batch).scores[batch.mask]
    scores = model.train().score_items(*_packed(pages))
    assert model.training
    torch.testing.assert_close(scores, expected, rtol=0, atol=1e-6)


def test_the_inference_path_refuses_lengths_that_do_not_cover_the_items(model):
    features, modalities, _ = _packed(_pages([3, 4]))
    with pytest.raises(ValueError, match="sum to 8"):
        model.score_items(features, modalities, [4, 4])
