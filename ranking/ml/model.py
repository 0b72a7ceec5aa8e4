"""The whole-page reranker: item tower, a transformer across the items of a page, a grade head.

Owns its configuration and how a trained reranker is saved to and loaded from one file.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors.torch import load_file, save_file
from torch import nn

from .features import N_SCALAR_FEATURES, PageBatch, feature_dim

FORMAT_NAME = "pagewise-whole-page-reranker"
FORMAT_VERSION = 1


@dataclass(frozen=True)
class RerankerConfig:
    text_dim: int = 384
    image_dim: int = 1280
    n_modalities: int = 3
    # Grades are 0..n_grades-1 (the project's grade scale); the score is the expected grade.
    n_grades: int = 5
    hidden: int = 128
    layers: int = 2
    heads: int = 4
    dropout: float = 0.1
    seed: int = 0
    # Extra columns after the scalar features (the vision-language scorer's grade distribution,
    # ranking.ml.vlm.vlm_feature_columns); 0 for a version trained without them.
    extra_dim: int = 0

    @property
    def feature_dim(self) -> int:
        return feature_dim(self.text_dim, self.image_dim) + self.extra_dim

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> RerankerConfig:
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown RerankerConfig fields: {sorted(unknown)}")
        return cls(**data)


class RerankerOutput(NamedTuple):
    logits: torch.Tensor  # (B, L, n_grades)
    scores: torch.Tensor  # (B, L) expected grade; 0 at padding so masked losses stay finite


class WholePageReranker(nn.Module):
    """Scores every item of a page on the project's grade scale, whatever its modality."""

    def __init__(self, config: RerankerConfig) -> None:
        super().__init__()
        self.config = config
        hidden = config.hidden
        # One projection per part of the feature row rather than one over the concatenation, so
        # that at initialisation the 3 scalar features weigh as much as 1,664 embedding dimensions.
        self.text_proj = nn.Linear(config.text_dim, hidden)
        self.image_proj = nn.Linear(config.image_dim, hidden, bias=False)
        self.scalar_proj = nn.Linear(N_SCALAR_FEATURES, hidden, bias=False)
        self.extra_proj = (
            nn.Linear(config.extra_dim, hidden, bias=False) if config.extra_dim else None
        )
        self.modality_embedding = nn.Embedding(config.n_modalities, hidden)
        self.item_tower = nn.Sequential(
            nn.GELU(),
            nn.Dropout(config.dropout),
            nn.Linear(hidden, hidden),
            nn.GELU(),
            nn.Linear(hidden, hidden),
        )
        if config.layers > 0:
            layer = nn.TransformerEncoderLayer(
                d_model=hidden,
                nhead=config.heads,
                dim_feedforward=2 * hidden,
                dropout=config.dropout,
                activation="gelu",
                batch_first=True,
                norm_first=True,
            )
            # Nested tensors would drop padded rows in eval mode only; plain padding keeps train and
            # eval on the same code path (and norm_first disables them anyway).
            self.page_encoder: nn.Module | None = nn.TransformerEncoder(
                layer, num_layers=config.layers, enable_nested_tensor=False
            )
        else:
            self.page_encoder = None
        self.head = nn.Sequential(nn.LayerNorm(hidden), nn.Linear(hidden, config.n_grades))
        self.register_buffer(
            "grade_values", torch.arange(config.n_grades, dtype=torch.float32), persistent=False
        )

    def forward(self, batch: PageBatch) -> RerankerOutput:
        # The three projections are one linear map of the whole feature row: one matmul over the
        # contiguous features instead of three over strided slices (each of which was copied).
        # The parameters stay three modules, so saved versions load unchanged.
        parts = [self.text_proj.weight, self.image_proj.weight, self.scalar_proj.weight]
        if self.extra_proj is not None:
            parts.append(self.extra_proj.weight)
        weight = torch.cat(parts, dim=1)
        h = nn.functional.linear(batch.features, weight, self.text_proj.bias)
        h = h + self.modality_embedding(batch.modalities)
        h = h + self.item_tower(h)
        if self.page_encoder is not None:
            # Padding is masked as keys, so it never changes what a real item attends to.
            h = self.page_encoder(h, src_key_padding_mask=batch.padding_mask)
        logits = self.head(h)
        scores = logits.softmax(dim=-1) @ self.grade_values
        scores = torch.where(batch.mask, scores, torch.zeros_like(scores))
        return RerankerOutput(logits=logits, scores=scores)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def score(self, batch: PageBatch) -> torch.Tensor:
        """One score per item, (B, L), on the grade scale; -inf at padding so it sorts last."""
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                scores = self(batch.to(self.device)).scores
        finally:
            self.train(was_training)
        return scores.masked_fill(~batch.mask.to(scores.device), float("-inf"))

    def save(self, path: str | Path) -> Path:
        """Write config and weights to one safetensors file, atomically.

        A single file (config JSON in the safetensors metadata) so that one os.replace publishes
        both: a reader sees the old version or the new one, never a mix. A process killed
        mid-write leaves at most a hidden `.<name>.*.tmp` beside it, never a half-written `path`.
        `path` is a file (conventionally `*.safetensors`), not a directory.
        """
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        state = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        metadata = {
            "format": FORMAT_NAME,
            "format_version": str(FORMAT_VERSION),
            "config": self.config.to_json(),
        }
        # Same directory as the target, so the rename never crosses a filesystem.
        fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
        os.close(fd)
        try:
            save_file(state, tmp_name, metadata=metadata)
            with open(tmp_name, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp_name, path)
        except BaseException:
            Path(tmp_name).unlink(missing_ok=True)
            raise
        return path

    @staticmethod
    def read_config(path: str | Path) -> RerankerConfig:
        """The config stored in a saved reranker, without loading its weights."""
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as handle:
            metadata = handle.metadata() or {}
        if metadata.get("format") != FORMAT_NAME:
            raise ValueError(f"{path} is not a saved {FORMAT_NAME}")
        if int(metadata.get("format_version", -1)) > FORMAT_VERSION:
            raise ValueError(f"{path} was written by a newer version of Pagewise")
        return RerankerConfig.from_json(metadata["config"])

    @classmethod
    def load(cls, path: str | Path, *, device: str | torch.device = "cpu") -> WholePageReranker:
        """A reranker saved by `save`, in eval mode."""
        model = cls(cls.read_config(path))
        model.load_state_dict(load_file(str(path), device="cpu"), strict=True)
        return model.to(device).eval()
