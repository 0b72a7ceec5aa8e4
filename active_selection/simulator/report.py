"""Reporting a simulation: the plain-text table `simulate` prints and the PNG plot of NDCG@10
against cost."""

from __future__ import annotations

from pathlib import Path


def format_table(results: dict) -> str:
    lines = [
        f"{'strategy':<11}{'sm':<4}{'budget':>7}{'cost_frac':>10}{'ndcg10':>9}{'std':>7}"
        f"{'grades':>8}{'compares':>9}"
    ]
    for r in results["results"]:
        mean = "n/a" if r["ndcg10_mean"] is None else f"{r['ndcg10_mean']:.4f}"
        std = "" if r["ndcg10_std"] is None else f"{r['ndcg10_std']:.4f}"
        lines.append(
            f"{r['strategy']:<11}{'on' if r['single_modal'] else 'off':<4}{r['budget']:>7}"
            f"{r['cost_fraction']:>10.3f}{mean:>9}{std:>7}"
            f"{r['judgments'].get('grade', 0):>8.0f}{r['judgments'].get('compare', 0):>9.0f}"
        )
    paired = results.get("paired") or []
    if paired:
        lines.append("paired on the same seeds (NDCG@10 difference, mean ± std, seeds won):")
    for p in paired:
        lines.append(
            f"  {p['strategy']} - {p['against']:<7} sm {'on ' if p['single_modal'] else 'off'} "
            f"budget {p['budget']:<5}: {p['diff_mean']:+.4f} ± {p['diff_std']:.4f} "
            f"({p['wins']}/{p['seeds']})"
        )
    return "\n".join(lines)


def write_plot(results: dict, path: Path) -> None:
    """NDCG@10 against cost fraction, one line per strategy (solid: single-modal on, dashed: off),
    error bars one std over seeds; label-free baselines as grey lines, full's level dotted."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5))
    colours = {
        "iso_anchor": "tab:red", "top_p": "tab:blue", "top_p_cal": "tab:purple",
        "random": "tab:green", "full": "k",
    }  # fmt: skip
    strategies = list(dict.fromkeys(r["strategy"] for r in results["results"]))

    lines: dict[tuple[str, bool], list[dict]] = {}
    for r in sorted(results["results"], key=lambda r: r["cost_fraction"]):
        if r["ndcg10_mean"] is not None:
            lines.setdefault((r["strategy"], r["single_modal"]), []).append(r)
    points = {
        key: {(round(r["cost_fraction"], 6), round(r["ndcg10_mean"], 6)) for r in rows}
        for key, rows in lines.items()
    }
    for order, strategy in enumerate(strategies):
        for single_modal in (True, False):
            rows = lines.get((strategy, single_modal))
            if not rows:
                continue
            # Strategies that buy the same labels draw the same points (iso_anchor is top_p below
            # the cost of every top band): the one drawn first is drawn wider, so both show.
            mine = points[(strategy, single_modal)]
            under = sum(
                1 for later in strategies[order + 1 :]
                if mine & points.get((later, single_modal), set())
            )  # fmt: skip
            width = 1.5 + 2.0 * under
            ax.errorbar(
                [r["cost_fraction"] for r in rows], [r["ndcg10_mean"] for r in rows],
                yerr=[r["ndcg10_std"] or 0.0 for r in rows], marker="o", capsize=3,
                linewidth=width, markersize=2 + width, elinewidth=1, alpha=0.85,
                linestyle="-" if single_modal else "--", color=colours.get(strategy),
                label=f"{strategy} (single-modal {'on' if single_modal else 'off'})",
            )  # fmt: skip
    for i, (name, value) in enumerate(sorted(results["baselines"].items())):
        ax.axhline(value, color="grey", linewidth=1, linestyle=(0, (6, 2 + 2 * i)),
                   label=f"{name} (no labels) {value:.3f}")  # fmt: skip
    if results.get("full_ndcg10") is not None:
        ax.axhline(
            results["full_ndcg10"], color="k", linestyle=":",
            label=f"full at budget 1.0: {results['full_ndcg10']:.3f}",
        )  # fmt: skip
    ax.set_xscale("log")
    ax.set_xlabel("cost spent / cost of grading every training item (log)")
    ax.set_ylabel("NDCG@10 on held-out queries")
    ax.set_title("Reranker quality against annotation cost")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, format="png", dpi=110)
    plt.close(fig)
