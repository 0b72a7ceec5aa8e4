"""Shared fixtures for the ranking core: the real encoders, loaded once per test session."""

import os

import pytest
import torch

# Real weights ship inside installed packages; a test must never reach for a hub.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
torch.set_num_threads(1)


@pytest.fixture(scope="session")
def text_encoder():
    from ranking.ml.encoders import TextEncoder

    return TextEncoder()


@pytest.fixture(scope="session")
def image_encoder():
    from ranking.ml.encoders import ImageEncoder

    return ImageEncoder()


@pytest.fixture(scope="session")
def builtin_rankers(text_encoder, image_encoder):
    from ranking.ml.rankers import BuiltinRankers

    return BuiltinRankers(text_encoder, image_encoder)


@pytest.fixture(scope="session")
def tiny_vlm_path(tmp_path_factory):
    """A tiny random vision-language model saved like real weights (built once per session)."""
    from ranking.ml.vlm_tiny import build_tiny_vlm

    return build_tiny_vlm(tmp_path_factory.mktemp("tiny-vlm"))
