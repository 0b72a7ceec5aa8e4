"""The README's grading-bias tables from `simulate --out` files:

    .venv/bin/python docs/measurements/grade_bias_table.py docs/measurements/grade_bias_*.json

Files of one --grade-bias are merged (runs of other seeds, e.g. `--first-seed 5`). Prints NDCG@10
mean ± std over seeds per strategy and budget, the paired differences (mean, 95% t-interval, seeds
won) and the paired verdict of each bias, as Markdown.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import django
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
django.setup()

from active_selection.recommendation import verdict  # noqa: E402
from active_selection.simulator.statistics import NEAR_FULL, paired_interval  # noqa: E402

STRATEGIES = ("iso_anchor", "top_p", "top_p_cal", "random", "full")
AGAINST_FULL = ("iso_anchor", "top_p_cal", "top_p")
SAME_BUDGET = (("iso_anchor", "top_p"), ("top_p_cal", "top_p"), ("iso_anchor", "top_p_cal"))


def bias_of(results: dict) -> float:
    return max((abs(b) for _, b in results["world"]["grade_bias"]), default=0.0)


def per_seed(results: dict) -> dict[tuple[str, float], dict[int, float]]:
    return {
        (row["strategy"], row["budget"]): {
            run["seed"]: run["ndcg10"] for run in row["per_seed"] if run["ndcg10"] is not None
        }
        for row in results["results"]
        if row["single_modal"]
    }


def difference(mine: dict[int, float], theirs: dict[int, float]) -> str:
    diffs = [mine[s] - theirs[s] for s in sorted(set(mine) & set(theirs))]
    if len(diffs) < 2:
        return "n/a"
    i = paired_interval(diffs)
    wins = sum(d > 0 for d in diffs)
    return f"{i['mean']:+.3f} [{i['low']:+.3f}, {i['high']:+.3f}] ({wins}/{len(diffs)})"


def merged(parts: list[dict]) -> dict:
    """One results dict of the runs of several files of one world (each seed once)."""
    rows: dict[tuple[str, float, bool], dict] = {}
    for part in parts:
        for row in part["results"]:
            key = (row["strategy"], row["budget"], row["single_modal"])
            into = rows.setdefault(key, {**row, "per_seed": [], "_cost": []})
            seen = {run["seed"] for run in into["per_seed"]}
            if seen & {run["seed"] for run in row["per_seed"]}:
                raise SystemExit(f"seed run twice in {key}")
            into["per_seed"] += row["per_seed"]
            into["_cost"] += [row["cost_fraction"]] * len(row["per_seed"])
    for row in rows.values():
        scores = [run["ndcg10"] for run in row["per_seed"] if run["ndcg10"] is not None]
        row["ndcg10_mean"] = float(np.mean(scores)) if scores else None
        row["ndcg10_std"] = float(np.std(scores)) if scores else None
        row["cost_fraction"] = float(np.mean(row.pop("_cost")))
        row["seeds"] = len(row["per_seed"])
    return {"world": parts[0]["world"], "results": list(rows.values())}


def main(paths: list[str]) -> None:
    by_bias: dict[float, list[dict]] = {}
    for path in paths:
        results = json.loads(Path(path).read_text())
        by_bias.setdefault(bias_of(results), []).append(results)
    files = [merged(by_bias[bias]) for bias in sorted(by_bias)]
    for results in files:
        seeds = sorted({run["seed"] for row in results["results"] for run in row["per_seed"]})
        print(f"- bias {bias_of(results):g}: seeds {', '.join(map(str, seeds))}")
    print("\nNDCG@10 mean±std over seeds (std with ddof 0, as `simulate` reports it)")
    print()
    budgets = sorted({row["budget"] for r in files for row in r["results"]})
    print("| bias | strategy | " + " | ".join(f"{b:g}" for b in budgets) + " |")
    print("|---|---|" + "---|" * len(budgets))
    for results in files:
        cells = {(row["strategy"], row["budget"]): row for row in results["results"]}
        for strategy in STRATEGIES:
            out = []
            for budget in budgets:
                row = cells.get((strategy, budget))
                if row is None or row["ndcg10_mean"] is None:
                    out.append("")
                    continue
                text = f"{row['ndcg10_mean']:.3f}±{row['ndcg10_std']:.3f}"
                if abs(row["cost_fraction"] - budget) > 0.005:
                    text += f" ({row['cost_fraction']:.3f})"
                out.append(text)
            print(f"| {bias_of(results):g} | {strategy} | " + " | ".join(out) + " |")
    print()
    scores = [per_seed(r) for r in files]
    header = " | ".join(f"bias {bias_of(r):g}" for r in files)
    print(f"| paired difference, mean [95% t-interval] (seeds won) | {header} |")
    print("|---|" + "---|" * len(files))
    small = [b for b in budgets if b < 1.0]
    rows = [(s, b, "full", 1.0) for s in AGAINST_FULL for b in small]
    rows += [(s, b, t, b) for s, t in SAME_BUDGET for b in small]
    for strategy, budget, against, their_budget in rows:
        cells = [
            difference(s.get((strategy, budget), {}), s.get((against, their_budget), {}))
            for s in scores
        ]
        label = f"{strategy} {budget:g} − {against} {their_budget:g}"
        print(f"| {label} | " + " | ".join(cells) + " |")
    print()
    for results in files:
        said = verdict(results=results)
        print(f"- bias {bias_of(results):g}: {said['sentence']}")
    print(f"\n(reaching full: the interval's low end within {1 - NEAR_FULL:.0%} of full's mean)")


if __name__ == "__main__":
    main(sys.argv[1:])
