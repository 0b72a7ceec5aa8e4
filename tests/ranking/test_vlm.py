"""The vision-language scorer on a tiny random LLaVA built locally and loaded like real weights."""

import shutil

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


def _copy_model(source, target):
    """A copy with fresh mtimes: the version must follow content, not file dates."""
    target.mkdir()
    for file in source.iterdir():
        shutil.copyfile(file, target / file.name)
    return target


def _perturb_one_tensor(path):
    """Rewrite the weights with one attention projection changed (same names, shapes, size)."""
    from safetensors.torch import load_file, save_file

    weights = path / "model.safetensors"
    tensors = load_file(weights)
    name = next(n for n in sorted(tensors) if n.endswith("q_proj.weight"))
    tensors[name] = tensors[name] + 0.5
    size = weights.stat().st_size
    save_file(tensors, weights, metadata={"format": "pt"})
    assert weights.stat().st_size == size
    return name


def test_the_identity_names_weights_and_labels(tiny_vlm_path, scorer, tmp_path):
    copy = _copy_model(tiny_vlm_path, tmp_path / "copy")
    same = VlmScorer(copy, grade_names=GRADES, device="cpu")
    assert same.version == scorer.version, "the same bytes under other dates are the same model"
    _perturb_one_tensor(copy)
    tuned = VlmScorer(copy, grade_names=GRADES, device="cpu")
    assert tuned.version != scorer.version and tuned.identity != same.identity
    # The grade names are in every prompt, the labels are the tokens read: both key the cache.
    fewer = VlmScorer(tiny_vlm_path, grade_names=GRADES[:3], device="cpu")
    assert fewer.version == scorer.version and fewer.identity != scorer.identity
    relabelled = VlmScorer(
        tiny_vlm_path, grade_names=GRADES, labels=["4", "3", "2", "1", "0"], device="cpu"
    )
    assert relabelled.identity != scorer.identity


def test_the_version_reads_every_byte_of_a_large_shard(tmp_path):
    # A shard well past the first and last MiB, changed only in its middle (as a fine-tune of a
    # few projections changes a real one): a sampled digest would call it the same model.
    from ranking.ml.vlm import _weights_identity

    data = bytearray(np.random.default_rng(0).integers(0, 256, 5 << 20, dtype=np.uint8))
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(data)
    before = _weights_identity(tmp_path)
    data[len(data) // 2] ^= 1
    (tmp_path / "model.safetensors").write_bytes(data)
    assert _weights_identity(tmp_path) != before
    (tmp_path / "config.json").write_text('{"a": 1}')
    assert len({before, _weights_identity(tmp_path)}) == 2


def test_feature_columns_carry_expected_grade_distribution_and_a_flag():
    from ranking.ml.vlm import vlm_feature_columns, vlm_feature_dim

    dist = np.array([[0.0, 0.5, 0.5], [np.nan, np.nan, np.nan]])
    columns = vlm_feature_columns(dist)
    assert columns.shape == (2, vlm_feature_dim(3)) == (2, 5)
    np.testing.assert_allclose(columns[0], [0.75, 0.0, 0.5, 0.5, 1.0])
    assert not columns[1].any(), "an unscored item reads as no score, not as grade 0"


def test_distillation_is_smallest_at_the_teachers_distribution_and_skips_graded_items():
    import torch

    from ranking.ml.features import TrainPage, collate_pages, collate_targets
    from ranking.ml.losses import LossWeights, smar_loss, soft_cross_entropy
    from ranking.ml.model import RerankerOutput

    teacher = torch.tensor([[0.7, 0.2, 0.1]])
    mask = torch.tensor([True])
    at_teacher = soft_cross_entropy(teacher.log(), teacher, mask)
    elsewhere = soft_cross_entropy(torch.zeros(1, 3), teacher, mask)
    entropy = -(teacher * teacher.log()).sum()
    assert float(at_teacher) == pytest.approx(float(entropy), abs=1e-6)
    assert float(elsewhere) > float(at_teacher)
    assert soft_cross_entropy(torch.zeros(1, 3), teacher, torch.tensor([False])) is None

    soft = np.array([[0.7, 0.2, 0.1], [0.1, 0.2, 0.7], [np.nan] * 3])
    page = TrainPage(
        query_id=1, features=np.zeros((3, 4)), modalities=[0, 0, 1],
        upstream_scores=[1.0, 0.5, 0.2], upstream_ranks=[0, 1, 0], grades=[2, -1, -1],
        soft_grades=soft,
    )  # fmt: skip
    batch, targets = collate_pages([page]), collate_targets([page])
    assert targets.soft_mask.tolist() == [[True, True, False]]
    logits = torch.zeros(1, 3, 3, requires_grad=True)
    out = RerankerOutput(logits=logits, scores=logits.softmax(-1) @ torch.arange(3.0))
    plain = LossWeights(ce=0, listmle=0, single_modal=False)
    _, parts = smar_loss(out, batch, targets, plain)
    assert "distill" not in parts
    loss, parts = smar_loss(out, batch, targets, LossWeights(**{**plain.__dict__, "distill": 1.0}))
    # Only item 1 (unlabelled, with a teacher) is taught: -sum t log(1/3) = log 3.
    assert parts["distill"] == pytest.approx(float(np.log(3)), abs=1e-6)
    loss.backward()
    assert logits.grad[0, 1].abs().sum() > 0 and logits.grad[0, 0].abs().sum() == 0


def test_a_reranker_with_extra_columns_saves_and_loads(tmp_path):
    import torch

    from ranking.ml.features import PageBatch
    from ranking.ml.model import RerankerConfig, WholePageReranker

    config = RerankerConfig(text_dim=4, image_dim=2, n_grades=3, hidden=8, heads=2, extra_dim=5)
    torch.manual_seed(0)
    model = WholePageReranker(config).eval()
    batch = PageBatch(
        torch.randn(2, 3, config.feature_dim), torch.ones(2, 3, dtype=torch.bool),
        torch.zeros(2, 3, dtype=torch.long),
    )  # fmt: skip
    loaded = WholePageReranker.load(model.save(tmp_path / "v.safetensors"))
    assert loaded.config.extra_dim == 5
    torch.testing.assert_close(loaded.score(batch), model.score(batch))
    assert "extra_proj.weight" not in WholePageReranker(RerankerConfig()).state_dict()
