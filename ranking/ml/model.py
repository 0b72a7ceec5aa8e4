"""The whole-page reranker: item tower, a transformer across the items of a page, a grade head.

Owns its configuration and how a trained reranker is saved to and loaded from one file.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Sequence
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import NamedTuple

import torch
from safetensors.torch import load_file, save_file
from torch import nn
from torch.nn import functional as F

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

    def _input_weight(self) -> torch.Tensor:
        # The three projections are one linear map of the whole feature row: one matmul over the
        # contiguous features instead of three over strided slices (each of which was copied).
        # The parameters stay three modules, so saved versions load unchanged.
        parts = [self.text_proj.weight, self.image_proj.weight, self.scalar_proj.weight]
        if self.extra_proj is not None:
            parts.append(self.extra_proj.weight)
        return torch.cat(parts, dim=1)

    def forward(self, batch: PageBatch) -> RerankerOutput:
        h = F.linear(batch.features, self._input_weight(), self.text_proj.bias)
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

    def score_items(
        self, features: torch.Tensor, modalities: torch.Tensor, lengths: Sequence[int]
    ) -> torch.Tensor:
        """The scores of pages laid end to end, (N,): rows of `features` (N, D) and `modalities`
        (N,) are the items of page 0, then of page 1..., `lengths` items each.

        The inference path of `score` (the same function as `forward` in eval mode, equal to 1e-6,
        tested), made for CPU: the per-item parts (input projection, item tower, head) run over
        the real items only, never over padding, and the page encoder calls the fused attention
        kernel (F.scaled_dot_product_attention), without a mask when the pages are of one length.
        """
        if sum(lengths) != len(features):
            raise ValueError(f"{len(features)} items, but the page lengths sum to {sum(lengths)}")
        was_training = self.training
        self.eval()
        try:
            with torch.inference_mode():
                h = torch.addmm(self.text_proj.bias, features, self._input_weight().t())
                h = h + self.modality_embedding(modalities)
                h = h + self.item_tower(h)
                if self.page_encoder is not None:
                    h = self._encode_pages(h, lengths)
                return self.head(h).softmax(dim=-1) @ self.grade_values
        finally:
            self.train(was_training)

    def _encode_pages(self, h: torch.Tensor, lengths: Sequence[int]) -> torch.Tensor:
        """The page encoder in eval mode over packed items (N, hidden): nn.TransformerEncoderLayer
        with norm_first and GELU, written out so that attention is one fused kernel call."""
        width, hidden = max(lengths), h.shape[1]
        if min(lengths) == width:
            x, real, attn_mask = h.view(len(lengths), width, hidden), None, None
        else:
            real = torch.arange(width) < torch.tensor(lengths)[:, None]  # (B, L), True = item
            x = h.new_zeros(len(lengths), width, hidden)
            x[real] = h
            # Padding is masked as keys (as src_key_padding_mask does in forward).
            attn_mask = real[:, None, None, :]
        batch = x.shape[0]
        for layer in self.page_encoder.layers:
            attention = layer.self_attn
            heads = attention.num_heads
            y = layer.norm1(x)
            qkv = F.linear(y, attention.in_proj_weight, attention.in_proj_bias)
            q, k, v = qkv.view(batch, width, 3, heads, hidden // heads).permute(2, 0, 3, 1, 4)
            a = F.scaled_dot_product_attention(q, k, v, attn_mask=attn_mask)
            a = a.transpose(1, 2).reshape(batch, width, hidden)
            x = x + attention.out_proj(a)
            x = x + layer.linear2(layer.activation(layer.linear1(layer.norm2(x))))
        if self.page_encoder.norm is not None:
            x = self.page_encoder.norm(x)
        return x.reshape(-1, hidden) if real is None else x[real]

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
