"""A tiny random LLaVA (CLIP vision tower + Llama) built from a config, saved like real weights.

It exercises the exact loading and scoring path of `VlmScorer` in tests and in the benchmark
without any download. Its grades mean nothing: the weights are random.
"""

from __future__ import annotations

from pathlib import Path

import torch

IMAGE_TOKEN = "<image>"
_SPECIAL = ["<pad>", "<unk>", "<s>", "</s>", IMAGE_TOKEN]
_WORDS = (
    "0 1 2 3 4 5 6 7 8 9 : ; . , = [ ] ( ) ? ! - user assistant Grade Scale Query Result Answer "
    "Judge how relevant each numbered search result is to the query with number only not "
    "somewhat highly perfectly fair good bad excellent a an the of and or in on for red blue "
    "green cat dog car house photo picture text document video answer page river mountain city"
).split()
# A minimal chat template: roles, text parts, and the image placeholder LLaVA expands.
CHAT_TEMPLATE = (
    "{% for m in messages %}{{ m['role'] }}:"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %} <image>"
    "{% else %} {{ c['text'] }}{% endif %}{% endfor %}{{ '\\n' }}{% endfor %}"
    "{% if add_generation_prompt %}assistant:{% endif %}"
)


def build_tiny_vlm(
    path: str | Path,
    *,
    seed: int = 0,
    hidden_size: int = 32,
    layers: int = 2,
    image_size: int = 56,
    patch_size: int = 14,
    extra_words: tuple[str, ...] = (),
) -> Path:
    """Write a tiny random image-text-to-text model and its processor to `path`; return it."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
        PreTrainedTokenizerFast,
    )
    from transformers.models.llava.image_processing_pil_llava import LlavaImageProcessorPil

    path = Path(path)
    words = list(dict.fromkeys(_SPECIAL + _WORDS + list(extra_words)))
    vocab = {word: index for index, word in enumerate(words)}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<unk>"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        unk_token="<unk>",
        pad_token="<pad>",
        bos_token="<s>",
        eos_token="</s>",
        additional_special_tokens=[IMAGE_TOKEN],
    )
    image_processor = LlavaImageProcessorPil(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size}
    )
    processor = LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=patch_size,
        vision_feature_select_strategy="default",
        # CLIP's class token: the tower returns it, the "default" strategy drops it again.
        num_additional_image_tokens=1,
        chat_template=CHAT_TEMPLATE,
    )
    vision = CLIPVisionConfig(
        hidden_size=16,
        intermediate_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=image_size,
        patch_size=patch_size,
        projection_dim=16,
        initializer_range=0.5,
    )
    text = LlamaConfig(
        vocab_size=len(words),
        hidden_size=hidden_size,
        intermediate_size=2 * hidden_size,
        num_hidden_layers=layers,
        num_attention_heads=2,
        num_key_value_heads=2,
        max_position_embeddings=4096,
        pad_token_id=vocab["<pad>"],
        bos_token_id=vocab["<s>"],
        eos_token_id=vocab["</s>"],
        # Wider than the default 0.02, so random grades spread enough for tests to see changes.
        initializer_range=0.5,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=vocab[IMAGE_TOKEN],
        vision_feature_layer=-1,
        image_seq_length=(image_size // patch_size) ** 2,
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config).eval()
    path.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(path)
    processor.save_pretrained(path)
    return path
