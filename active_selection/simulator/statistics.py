"""Statistics of a simulation: the per-cell summaries over seeds (the results file's dict), paired
differences on the same seeds, and the 95% t-intervals the paired verdict reads."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict
from typing import TYPE_CHECKING

import numpy as np

from .world import search_share

if TYPE_CHECKING:
    from .loop import RunResult, SimulationPlan

# What a lead is advised to buy: the cheapest strategy within 1% of full annotation's NDCG@10
# (its mean over seeds). Exact equality with full's mean is a coin toss of seed noise at 3 seeds
# (a spread of ~0.01), and full always matches itself; `cost_to_match_full` keeps the strict
# definition for the record.
NEAR_FULL = 0.99


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return None, None
    return float(np.mean(values)), float(np.std(values))


def _finite(value: float) -> float | None:
    return None if value is None or math.isnan(value) else float(value)


def summarise(
    plan: SimulationPlan,
    runs: list[RunResult],
    baselines: list[dict[str, float]],
    *,
    seconds: float,
) -> dict:
    rows = []
    keys = sorted(
        {(r.strategy, r.budget, r.single_modal) for r in runs},
        key=lambda k: (list(plan.strategies).index(k[0]), not k[2], k[1]),
    )
    for strategy, budget, single_modal in keys:
        group = [
            r
            for r in runs
            if (r.strategy, r.budget, r.single_modal) == (strategy, budget, single_modal)
        ]
        mean, std = _mean_std([r.ndcg10 for r in group])
        judgment_keys = sorted({k for r in group for k in r.judgments})
        rows.append(
            {
                "strategy": strategy,
                "budget": budget,
                "single_modal": single_modal,
                "ndcg10_mean": mean,
                "ndcg10_std": std,
                "cost": float(np.mean([r.cost for r in group])),
                "cost_fraction": float(np.mean([r.cost_fraction for r in group])),
                "judgments": {
                    k: float(np.mean([r.judgments.get(k, 0) for r in group])) for k in judgment_keys
                },
                "supervision": {
                    k: float(np.mean([r.supervision.get(k, 0) for r in group]))
                    for k in sorted({k for r in group for k in r.supervision})
                },
                "seeds": len(group),
                "per_seed": [
                    {
                        "seed": r.seed,
                        "ndcg10": _finite(r.ndcg10),
                        "cost": r.cost,
                        "val_ndcg10": _finite(r.val_ndcg10),
                        "chosen": r.chosen,
                        "seconds": round(r.seconds, 2),
                        "reused_from": r.reused_from,
                        "calibration": r.calibration,
                    }  # fmt: skip
                    for r in group
                ],
            }
        )
    full_rows = [
        r for r in rows if r["strategy"] == "full" and r["single_modal"] and r["budget"] == 1.0
    ] or [r for r in rows if r["strategy"] == "full" and r["budget"] == 1.0]
    full_ndcg10 = full_rows[0]["ndcg10_mean"] if full_rows else None

    def cost_to_reach(level: float | None) -> dict[str, float | None]:
        """Per strategy, the smallest cost fraction whose mean NDCG@10 (single-modal on) reaches
        `level`."""
        return {
            strategy: min(
                (
                    r["cost_fraction"]
                    for r in rows
                    if r["strategy"] == strategy
                    and r["single_modal"]
                    and level is not None
                    and r["ndcg10_mean"] is not None
                    and r["ndcg10_mean"] >= level - 1e-12
                ),
                default=None,
            )
            for strategy in plan.strategies
        }

    cost_to_match = cost_to_reach(full_ndcg10)
    cost_to_near = cost_to_reach(None if full_ndcg10 is None else NEAR_FULL * full_ndcg10)
    baseline_names = sorted({k for b in baselines for k in b})
    return {
        "world": {
            **asdict(plan.world),
            "train_queries": plan.world.train_queries,
            "iso_anchor_policy": plan.policy,
            "iso_anchor_search_share": search_share(plan.world, plan.policy),
            "seeds": plan.seeds,
            "first_seed": plan.first_seed,
        },
        "training": asdict(plan.training),
        "full_ndcg10": full_ndcg10,
        "baselines": {
            name: float(np.mean([b[name] for b in baselines if name in b]))
            for name in baseline_names
        },
        "results": rows,
        "cost_to_match_full": cost_to_match,
        "cheapest_to_match_full": cheapest(cost_to_match),
        "near_full": NEAR_FULL,
        "cost_to_near_full": cost_to_near,
        "recommended": cheapest(cost_to_near),
        "paired": paired_differences(runs),
        "seconds": round(seconds, 1),
    }


def paired_differences(runs: Sequence[RunResult], subject: str = "iso_anchor") -> list[dict]:
    """`subject`'s NDCG@10 minus each other strategy's at the same budget, seed and supervision.

    Paired on the seed's world, the spread is that of the difference: worlds differ in how hard
    they are, which moves every strategy together and widens each one's own spread.
    """
    scores = {(r.strategy, r.budget, r.single_modal, r.seed): r.ndcg10 for r in runs}
    rows = []
    for against, budget, single_modal in sorted(
        {(r.strategy, r.budget, r.single_modal) for r in runs if r.strategy != subject},
        key=lambda k: (k[0], not k[2], k[1]),
    ):
        diffs = [
            mine - theirs
            for seed in sorted({r.seed for r in runs})
            if (mine := scores.get((subject, budget, single_modal, seed))) is not None
            and (theirs := scores.get((against, budget, single_modal, seed))) is not None
            and not math.isnan(mine) and not math.isnan(theirs)
        ]  # fmt: skip
        if diffs:
            rows.append(
                {
                    "strategy": subject,
                    "against": against,
                    "budget": budget,
                    "single_modal": single_modal,
                    "diff_mean": float(np.mean(diffs)),
                    "diff_std": float(np.std(diffs)),
                    "wins": sum(d > 0 for d in diffs),
                    "seeds": len(diffs),
                }  # fmt: skip
            )
    return rows


def cheapest(cost_to_match: dict[str, float | None]) -> str | None:
    reached = {s: c for s, c in cost_to_match.items() if c is not None}
    return min(reached, key=lambda s: (reached[s], s)) if reached else None


# Two-sided 95% quantiles of Student's t by degrees of freedom (beyond 30: the normal's).
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306,
        9: 2.262, 10: 2.228, 11: 2.201, 12: 2.179, 13: 2.160, 14: 2.145, 15: 2.131, 16: 2.120,
        17: 2.110, 18: 2.101, 19: 2.093, 20: 2.086, 25: 2.060, 30: 2.042}  # fmt: skip


def t95(df: int) -> float:
    """The two-sided 95% t quantile (the next smaller tabulated df: a wider, never narrower,
    interval)."""
    if df < 1:
        raise ValueError("at least two paired seeds are needed for an interval")
    if df > 30:
        return 1.96
    return _T95[max(k for k in _T95 if k <= df)]


def paired_interval(diffs: list[float]) -> dict[str, float]:
    """Mean of paired differences and its 95% t-interval (one difference per seed)."""
    n = len(diffs)
    mean = sum(diffs) / n
    sd = math.sqrt(sum((d - mean) ** 2 for d in diffs) / (n - 1)) if n > 1 else math.inf
    half = t95(n - 1) * sd / math.sqrt(n) if n > 1 else math.inf
    return {"mean": mean, "low": mean - half, "high": mean + half, "seeds": n}
