"""LoRA fine-tuning of the vision-language scorer on a project's labels, after UniRank: cross-
entropy on the grade label token, then a pairwise preference term on the expected grades, over
the human preference pairs and the hard negatives mined from the graded items (the pairs of a
query the model, as tuned so far, orders worst).

GPU only, except for test-sized models. The adapters are merged into the weights and the whole
model is written to a new directory atomically, so a scorer version is just a model directory.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from .vlm import VlmError, VlmItem, VlmScorer

# Models below this many parameters (test-sized) may be fine-tuned on a CPU; anything real is
# refused there: a 2B model would take days and most of the memory of a worker host.
MAX_CPU_PARAMETERS = 5_000_000
# The attention projections of the language model (Llama, Qwen2, Idefics3 / SmolVLM, LLaVA).
DEFAULT_TARGET_MODULES = ("q_proj", "v_proj")


class FineTuneRefused(VlmError):
    """Fine-tuning cannot run here; the message says what to change."""


@dataclass(frozen=True)
class GradeExample:
    query: str
    item: VlmItem
    grade: int


@dataclass(frozen=True)
class PreferenceExample:
    query: str
    better: VlmItem
    worse: VlmItem


@dataclass
class FineTuneResult:
    path: Path
    steps: int
    losses: list[float] = field(default_factory=list)  # mean loss per epoch
    parameters_trained: int = 0


def _check_device(scorer: VlmScorer, max_cpu_parameters: int) -> int:
    parameters = sum(p.numel() for p in scorer.model.parameters())
    if scorer.device.type != "cuda" and parameters > max_cpu_parameters:
        raise FineTuneRefused(
            f"LoRA fine-tuning runs on a GPU: this model has {parameters:,} parameters and the "
            f"scorer is on {scorer.device}. Run it on a worker with a GPU "
            "(PAGEWISE_TORCH_DEVICE=cuda); only test-sized models (under "
            f"{max_cpu_parameters:,} parameters) are fine-tuned on a CPU."
        )
    return parameters


def _graded_pairs_per_query(grades: Sequence[GradeExample]) -> dict[str, list[tuple[int, int]]]:
    """Indices (better, worse) of every pair of one query's graded items with different grades."""
    by_query: dict[str, list[int]] = defaultdict(list)
    for index, example in enumerate(grades):
        by_query[example.query].append(index)
    return {
        query: [
            (a, b) if grades[a].grade > grades[b].grade else (b, a)
            for i, a in enumerate(indices)
            for b in indices[i + 1 :]
            if grades[a].grade != grades[b].grade
        ]
        for query, indices in by_query.items()
    }


def hard_negative_count(grades: Sequence[GradeExample], per_query: int) -> int:
    """How many pairs `hard_negative_pairs` returns for these grades."""
    return sum(min(per_query, len(p)) for p in _graded_pairs_per_query(grades).values())


def hard_negative_pairs(
    scorer: VlmScorer, grades: Sequence[GradeExample], *, per_query: int, batch_size: int = 8
) -> list[PreferenceExample]:
    """UniRank's hard negatives: for each query, the `per_query` pairs of graded items (higher
    grade first) with the smallest margin in the scorer's expected grade — the pairs it gets
    wrong, or only just right. Scored without gradients; ties keep the items' order."""
    pairs_per_query = _graded_pairs_per_query(grades)
    if per_query <= 0 or not any(pairs_per_query.values()):
        return []
    values = torch.arange(len(scorer.labels), dtype=torch.float32, device=scorer.device)
    expected = []
    with torch.no_grad():
        for start in range(0, len(grades), batch_size):
            chunk = grades[start : start + batch_size]
            logits = scorer.label_logits([g.query for g in chunk], [g.item for g in chunk])
            expected.extend((logits.float().softmax(-1) @ values).tolist())
    mined = []
    for pairs in pairs_per_query.values():
        hardest = sorted(pairs, key=lambda pair: expected[pair[0]] - expected[pair[1]])
        mined.extend(
            PreferenceExample(grades[a].query, grades[a].item, grades[b].item)
            for a, b in hardest[:per_query]
        )
    return mined


def fine_tune(
    scorer: VlmScorer,
    grades: Sequence[GradeExample],
    pairs: Sequence[PreferenceExample] = (),
    *,
    out_dir: str | Path,
    epochs: int = 1,
    lr: float = 1e-4,
    rank: int = 8,
    alpha: int = 16,
    pair_weight: float = 1.0,
    margin: float = 0.5,
    hard_negatives_per_query: int = 4,
    batch_size: int | None = None,
    seed: int = 0,
    target_modules: Sequence[str] = DEFAULT_TARGET_MODULES,
    max_cpu_parameters: int = MAX_CPU_PARAMETERS,
    progress: Callable[[int, int], None] | None = None,
) -> FineTuneResult:
    """Train LoRA adapters on `grades` (cross-entropy on the label token), then on `pairs` and
    the `hard_negatives_per_query` hardest graded pairs of each query, mined anew every epoch
    after the grade step (hinge on the expected grades, `margin` apart), merge them and write
    the model and its
    processor to `out_dir` (replaced atomically). The scorer keeps the merged weights.
    `progress(steps_done, steps_total)` is called after every optimiser step."""
    from peft import LoraConfig, get_peft_model

    if not grades and not pairs:
        raise FineTuneRefused("nothing to learn from: no graded items and no preference pairs")
    _check_device(scorer, max_cpu_parameters)
    for example in grades:
        if not 0 <= example.grade < len(scorer.labels):
            raise FineTuneRefused(f"grade {example.grade} is outside the scorer's grade scale")
    out_dir = Path(out_dir)
    batch_size = batch_size or scorer.batch_size
    grade_values = torch.arange(len(scorer.labels), dtype=torch.float32, device=scorer.device)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = get_peft_model(
            scorer.model,
            LoraConfig(
                r=rank, lora_alpha=alpha, lora_dropout=0.0, target_modules=list(target_modules)
            ),
        )
    trained = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=lr)
    rng = np.random.default_rng(seed)
    result = FineTuneResult(path=out_dir, steps=0, parameters_trained=trained)
    # Eval mode (no dropout) with gradients: the same forward pass the scorer serves with.
    model.eval()
    pair_count = len(pairs) + hard_negative_count(grades, hard_negatives_per_query)
    total_steps = epochs * (-(-len(grades) // batch_size) + -(-pair_count // batch_size))
    for _ in range(epochs):
        total, batches = 0.0, 0
        # UniRank's order: the grade token first, then preference alignment.
        order = rng.permutation(len(grades))
        for start in range(0, len(grades), batch_size):
            chunk = [grades[i] for i in order[start : start + batch_size]]
            logits = scorer.label_logits([g.query for g in chunk], [g.item for g in chunk])
            target = torch.tensor([g.grade for g in chunk], device=logits.device)
            loss = F.cross_entropy(logits.float(), target)
            total += _step(optimizer, loss)
            batches += 1
            if progress is not None:
                progress(result.steps + batches, total_steps)
        epoch_pairs = list(pairs) + hard_negative_pairs(
            scorer, grades, per_query=hard_negatives_per_query, batch_size=batch_size
        )
        pair_order = rng.permutation(len(epoch_pairs))
        for start in range(0, len(epoch_pairs), batch_size):
            chunk = [epoch_pairs[i] for i in pair_order[start : start + batch_size]]
            queries = [p.query for p in chunk]
            better = scorer.label_logits(queries, [p.better for p in chunk]).float()
            worse = scorer.label_logits(queries, [p.worse for p in chunk]).float()
            gap = better.softmax(-1) @ grade_values - worse.softmax(-1) @ grade_values
            loss = pair_weight * F.relu(margin - gap).mean()
            total += _step(optimizer, loss)
            batches += 1
            if progress is not None:
                progress(result.steps + batches, total_steps)
        result.losses.append(total / max(batches, 1))
        result.steps += batches
    scorer.model = model.merge_and_unload().eval()
    _save_atomically(scorer, out_dir)
    return result


def _step(optimizer: torch.optim.Optimizer, loss: torch.Tensor) -> float:
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return float(loss.detach())


def _save_atomically(scorer: VlmScorer, out_dir: Path) -> None:
    """Write model and processor beside `out_dir`, then rename: a reader sees the old
    directory or the new one, never half of one."""
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        scorer.model.save_pretrained(tmp)
        scorer.processor.save_pretrained(tmp)
        old = None
        if out_dir.exists():
            old = out_dir.with_name(f".{out_dir.name}.old")
            shutil.rmtree(old, ignore_errors=True)
            os.replace(out_dir, old)
        os.replace(tmp, out_dir)
        if old is not None:
            shutil.rmtree(old, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
