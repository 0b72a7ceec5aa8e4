"""Vision-language scorer: a local image-text-to-text model grades (query, item) from the
likelihoods of the grade label tokens (after UniRank), one item per prompt or a whole page per
prompt (after Rank-Nexus). Loads from a local directory only; never reaches for a hub.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from .encoders import resolve_device

# Same guard as the encoders: a from_pretrained on a missing path must fail, not download.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"

POINTWISE = "pointwise"
LISTWISE = "listwise"
# The listwise prompt ends each item with this slot; the next-token logits after it are that
# item's grade. User text containing it is defused (see _defuse) so slots are never miscounted.
SLOT = "Grade:"
# Part of the scorer's identity: changing a prompt must invalidate cached scores.
PROMPT_VERSION = "1"
# An item's text beyond this many characters only costs time (titles and snippets are short).
MAX_TEXT_CHARS = 1000


class VlmError(ValueError):
    """A model, tokenizer or input the scorer cannot use; the message says why."""


@dataclass(frozen=True)
class VlmItem:
    """One candidate as the scorer sees it: text, an image, or both."""

    text: str = ""
    image: Image.Image | None = None


@dataclass
class VlmScores:
    """Scores of some items: expected grade (n,), grade distribution (n, n_grades), the mode run."""

    expected: np.ndarray
    distribution: np.ndarray
    mode: str
    extra: dict = field(default_factory=dict)


def _defuse(text: str) -> str:
    return text.replace(SLOT, SLOT[:-1]).strip()[:MAX_TEXT_CHARS]


WEIGHT_SUFFIXES = (".safetensors", ".bin")
# What the processor reads besides the weights: tokenizer, chat template, image preprocessing.
PROCESSOR_SUFFIXES = (".json", ".jinja", ".model", ".txt")


def _weights_identity(path: Path) -> str:
    """A short digest of every byte of the weight files and of the config and processor files.

    Every byte, because a fine-tune that changes only the attention projections keeps each
    shard's size, head and tail: a sampled digest would call it the same model and serve the
    base model's cached scores. blake2b read 0.24 GB/s on one core of this (loaded) machine, so
    a 2B model in bf16 (4-5 GB) costs about 20 s there, once per load (see README)."""
    weights = sorted(path.glob("*.safetensors")) or sorted(path.glob("*.bin"))
    if not weights:
        raise VlmError(f"no model weights (*.safetensors, *.bin) in {path}")
    digest = hashlib.blake2b(digest_size=16)
    others = sorted(p for p in path.iterdir() if p.is_file() and p.suffix in PROCESSOR_SUFFIXES)
    for file in [*others, *weights]:
        digest.update(f"{file.name}:{file.stat().st_size}\x1f".encode())
        with open(file, "rb") as handle:
            digest.update(hashlib.file_digest(handle, "blake2b").digest())
    return digest.hexdigest()[:12]


def files_signature(path: str | Path) -> tuple:
    """(name, size, mtime_ns) of the model directory's files: changes whenever any file is
    replaced in place, so a process holding a loaded scorer knows to load it again."""
    path = Path(path)
    return tuple(
        (p.name, st.st_size, st.st_mtime_ns)
        for p in sorted(path.iterdir())
        if p.is_file() and p.suffix in WEIGHT_SUFFIXES + PROCESSOR_SUFFIXES
        for st in [p.stat()]
    )


def _uses_multimodal_rope(config) -> bool:
    """Qwen2-VL-style models compute their own 3-D positions from the attention mask."""
    for cfg in (config, getattr(config, "text_config", None)):
        if cfg is None:
            continue
        for name in ("rope_parameters", "rope_scaling"):
            params = getattr(cfg, name, None)
            if isinstance(params, dict) and "mrope_section" in params:
                return True
    return False


class VlmScorer:
    """Grades (query, item) pairs or whole pages with a local image-text-to-text model.

    `grade_names` are the project's grades, lowest first; `labels` are the words the model
    answers with (default "0", "1", ...), each of which must be one token of the tokenizer.
    """

    def __init__(
        self,
        model_path: str | Path,
        *,
        grade_names: Sequence[str],
        labels: Sequence[str] | None = None,
        device: str | torch.device | None = None,
        batch_size: int = 8,
    ) -> None:
        from transformers import AutoModelForImageTextToText, AutoProcessor

        path = Path(model_path)
        if not path.is_dir():
            raise VlmError(f"vision-language model directory {path} does not exist")
        if len(grade_names) < 2:
            raise VlmError("the scorer needs at least two grades")
        self.grade_names = [str(name) for name in grade_names]
        self.labels = [str(label) for label in (labels or range(len(grade_names)))]
        if len(self.labels) != len(self.grade_names):
            raise VlmError(
                f"{len(self.labels)} labels for {len(self.grade_names)} grades; give one per grade"
            )
        if len(set(self.labels)) != len(self.labels):
            raise VlmError(f"labels {self.labels} repeat; each grade needs its own label")
        self.path = path
        self.name = path.name
        self.device = resolve_device(str(device) if device else None)
        self.batch_size = max(1, int(batch_size))
        # bf16 halves memory and runs on tensor cores; CPU stays in float32 for exact repeats.
        self.dtype = torch.bfloat16 if self.device.type == "cuda" else torch.float32
        try:
            self.processor = AutoProcessor.from_pretrained(path, local_files_only=True)
            self.model = AutoModelForImageTextToText.from_pretrained(
                path, local_files_only=True, dtype=self.dtype
            )
        except (OSError, ValueError, KeyError) as exc:
            raise VlmError(f"cannot load a vision-language model from {path}: {exc}") from exc
        self.model.to(self.device).eval()
        self.tokenizer = getattr(self.processor, "tokenizer", None)
        if self.tokenizer is None:
            raise VlmError(f"the processor in {path} has no tokenizer")
        # Left padding puts every prompt's last token in the last column.
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.image_token = getattr(self.processor, "image_token", None) or "<image>"
        self.has_chat_template = bool(getattr(self.processor, "chat_template", None))
        self._pass_positions = not _uses_multimodal_rope(self.model.config)
        self.label_ids = self._single_token_ids()
        self.listwise_label_ids, self.listwise_refusal = self._listwise_ids()
        self.version = f"{_weights_identity(path)}+p{PROMPT_VERSION}"
        # Cache keys: weights, prompt and labels (the grade names are in every prompt text).
        self.identity = (
            f"{self.name}+{self.version}+"
            + hashlib.sha256(json.dumps([self.labels, self.grade_names]).encode()).hexdigest()[:8]
        )

    # --- load-time checks -----------------------------------------------------------------

    def _encode(self, text: str) -> list[int]:
        return list(self.tokenizer(text, add_special_tokens=False)["input_ids"])

    def _single_token_ids(self) -> list[int]:
        ids = []
        for label in self.labels:
            tokens = self._encode(label)
            if len(tokens) != 1:
                pieces = self.tokenizer.convert_ids_to_tokens(tokens)
                raise VlmError(
                    f"grade label {label!r} is {len(tokens)} tokens {pieces} for this tokenizer; "
                    "the scorer reads one next-token likelihood per grade, so each label must be "
                    "a single token (choose other labels)"
                )
            ids.append(tokens[0])
        if len(set(ids)) != len(ids):
            raise VlmError(f"labels {self.labels} map to the same token; choose distinct labels")
        return ids

    def _listwise_ids(self) -> tuple[list[int] | None, str]:
        """The label tokens as they follow the slot ("Grade: 2" or "Grade:2"), or why not."""
        slot = self._encode(SLOT)
        for separator in (" ", ""):
            ids = []
            for label in self.labels:
                tokens = self._encode(f"{SLOT}{separator}{label}")
                if tokens[: len(slot)] != slot or len(tokens) != len(slot) + 1:
                    break
                ids.append(tokens[-1])
            else:
                if len(set(ids)) == len(ids):
                    probe = self._listwise_inputs(
                        [("query", [VlmItem(text="a"), VlmItem(text="b")])]
                    )["input_ids"][0].tolist()
                    if len(self._slot_positions(probe)) != 2:
                        return None, (
                            f"the tokenizer does not keep the slot {SLOT!r} intact inside a "
                            "page prompt; use the pointwise mode"
                        )
                    return ids, ""
        return None, (
            f"after {SLOT!r} the grade labels {self.labels} are not single tokens for this "
            "tokenizer; use the pointwise mode"
        )

    # --- prompts ----------------------------------------------------------------------------

    def _scale(self) -> str:
        return "; ".join(
            f"{label} = {name}" for label, name in zip(self.labels, self.grade_names, strict=True)
        )

    def _render(self, parts: list[dict], *, answer: bool) -> str:
        """One user turn of text and image parts, through the model's chat template if it has one."""
        if self.has_chat_template:
            messages = [{"role": "user", "content": parts}]
            return self.processor.apply_chat_template(
                messages, add_generation_prompt=answer, tokenize=False
            )
        return "".join(
            self.image_token if part["type"] == "image" else part["text"] for part in parts
        ) + ("\nAnswer:" if answer else "")

    def pointwise_prompt(self, query: str, item: VlmItem) -> str:
        parts = [
            {
                "type": "text",
                "text": (
                    "Judge how relevant the search result is to the query. "
                    f"Scale: {self._scale()}.\nQuery: {_defuse(query)}\nResult:"
                ),
            }
        ]
        if item.image is not None:
            parts.append({"type": "image"})
        if item.text:
            parts.append({"type": "text", "text": _defuse(item.text)})
        parts.append({"type": "text", "text": "\nAnswer with the number only."})
        return self._render(parts, answer=True)

    def listwise_prompt(self, query: str, items: Sequence[VlmItem]) -> str:
        parts = [
            {
                "type": "text",
                "text": (
                    "Judge how relevant each numbered search result is to the query. "
                    f"Scale: {self._scale()}.\nQuery: {_defuse(query)}\n"
                ),
            }
        ]
        for number, item in enumerate(items, start=1):
            parts.append({"type": "text", "text": f"[{number}]"})
            if item.image is not None:
                parts.append({"type": "image"})
            parts.append({"type": "text", "text": f"{_defuse(item.text)}\n{SLOT}\n"})
        return self._render(parts, answer=False)

    def _batch(self, texts: list[str], images: list[list[Image.Image]]) -> dict:
        kwargs = {"text": texts, "return_tensors": "pt", "padding": True}
        if any(images):
            kwargs["images"] = [[im.convert("RGB") for im in row] for row in images]
        inputs = self.processor(**kwargs)
        inputs = {
            key: value.to(self.device) if isinstance(value, torch.Tensor) else value
            for key, value in inputs.items()
        }
        for key, value in inputs.items():
            if isinstance(value, torch.Tensor) and value.is_floating_point():
                inputs[key] = value.to(self.dtype)
        if self._pass_positions:
            # Positions count real tokens only, so a prompt's logits do not depend on how much
            # left padding its batch neighbours forced on it.
            mask = inputs["attention_mask"]
            inputs["position_ids"] = (mask.long().cumsum(-1) - 1).clamp(min=0)
        return inputs

    def _listwise_inputs(self, pages: Sequence[tuple[str, Sequence[VlmItem]]]) -> dict:
        texts = [self.listwise_prompt(query, items) for query, items in pages]
        images = [[item.image for item in items if item.image is not None] for _, items in pages]
        return self._batch(texts, images)

    def _slot_positions(self, ids: list[int]) -> list[int]:
        slot = self._encode(SLOT)
        k = len(slot)
        return [p for p in range(k - 1, len(ids)) if ids[p - k + 1 : p + 1] == slot]

    def _forward(self, inputs: dict) -> torch.Tensor:
        with torch.inference_mode():
            return self.model(**inputs).logits

    def _result(self, logits: torch.Tensor, mode: str) -> VlmScores:
        probs = torch.softmax(logits.float(), dim=-1).cpu().numpy().astype(np.float64)
        grades = np.arange(len(self.labels), dtype=np.float64)
        return VlmScores(expected=probs @ grades, distribution=probs, mode=mode)

    # --- scoring ----------------------------------------------------------------------------

    def score(self, query: str, items: Sequence[VlmItem]) -> VlmScores:
        """Pointwise: each item in its own prompt; the expected grade and distribution per item."""
        return self.score_pairs([query] * len(items), items)

    def score_pairs(self, queries: Sequence[str], items: Sequence[VlmItem]) -> VlmScores:
        """Pointwise scores of (queries[i], items[i]), batched `batch_size` prompts at a time."""
        if len(queries) != len(items):
            raise VlmError(f"{len(queries)} queries for {len(items)} items")
        rows: list[torch.Tensor] = []
        for start in range(0, len(items), self.batch_size):
            chunk = list(zip(queries, items, strict=True))[start : start + self.batch_size]
            with torch.inference_mode():
                rows.append(self.label_logits([q for q, _ in chunk], [i for _, i in chunk]))
        if not rows:
            empty = np.zeros((0, len(self.labels)))
            return VlmScores(expected=np.zeros(0), distribution=empty, mode=POINTWISE)
        return self._result(torch.cat(rows), POINTWISE)

    def label_logits(self, queries: Sequence[str], items: Sequence[VlmItem]) -> torch.Tensor:
        """The grade labels' next-token logits (n, n_grades) of one batch of pointwise prompts,
        with gradients when called outside inference mode (fine-tuning reads them so)."""
        inputs = self._batch(
            [self.pointwise_prompt(q, item) for q, item in zip(queries, items, strict=True)],
            [[item.image] if item.image is not None else [] for item in items],
        )
        return self.model(**inputs).logits[:, -1, self.label_ids]

    def score_pages(self, pages: Sequence[tuple[str, Sequence[VlmItem]]]) -> list[VlmScores]:
        """Listwise: one prompt per page (query, then its items numbered, images inline); each
        item's grade is read at its slot, so it sees the query and the items before it."""
        if self.listwise_label_ids is None:
            raise VlmError(self.listwise_refusal)
        results: list[VlmScores] = []
        for start in range(0, len(pages), self.batch_size):
            chunk = list(pages[start : start + self.batch_size])
            inputs = self._listwise_inputs(chunk)
            logits = self._forward(inputs)
            for row, (_, items) in enumerate(chunk):
                if not items:
                    results.append(self._result(torch.zeros(0, len(self.labels)), LISTWISE))
                    continue
                positions = self._slot_positions(inputs["input_ids"][row].tolist())
                if len(positions) != len(items):
                    raise VlmError(
                        f"found {len(positions)} grade slots for {len(items)} items in a page "
                        "prompt; use the pointwise mode with this model"
                    )
                slot_logits = logits[row, positions, :][:, self.listwise_label_ids]
                results.append(self._result(slot_logits, LISTWISE))
        return results

    def score_page(self, query: str, items: Sequence[VlmItem]) -> VlmScores:
        return self.score_pages([(query, items)])[0]


def vlm_feature_dim(n_grades: int) -> int:
    return n_grades + 2


def vlm_feature_columns(distributions: np.ndarray) -> np.ndarray:
    """Reranker feature columns from grade distributions (n, G), NaN rows where an item has no
    score: [expected grade / (G - 1), the distribution, 1 if scored], float32 (n, G + 2); an
    unscored item's row is all zeros, so the model can tell "no score" from "not relevant"."""
    dist = np.asarray(distributions, dtype=np.float64)
    n, grades = dist.shape
    out = np.zeros((n, vlm_feature_dim(grades)), dtype=np.float32)
    known = ~np.isnan(dist).any(axis=1)
    expected = dist[known] @ np.arange(grades, dtype=np.float64)
    out[known, 0] = expected / max(grades - 1, 1)
    out[known, 1 : grades + 1] = dist[known]
    out[known, grades + 1] = 1.0
    return out
