"""The simulate command: the real loop over a tiny generated world, its results file and plot."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from django.core.management import CommandError, call_command

from active_selection import simulator
from labeling.models import Project

TINY = [
    "--queries", "20", "--heldout-queries", "5", "--modalities", "2",
    "--items-per-modality", "6", "--seeds", "1", "--epochs", "2",
]  # fmt: skip


@pytest.fixture
def run(db, tmp_path):
    def run_command(*args: str) -> dict:
        out = tmp_path / "results.json"
        call_command("simulate", *TINY, *args, "--out", str(out), "--plot", str(tmp_path / "r.png"))
        return json.loads(out.read_text())

    return run_command


def test_simulate_writes_results_with_the_required_keys_and_a_png_plot(run, tmp_path):
    results = run("--strategies", "iso_anchor,full", "--budgets", "0.2,1.0")
    assert {"world", "full_ndcg10", "baselines", "results", "cost_to_match_full"} <= set(results)
    assert results["world"]["upstream_tau"] == simulator.WorldSpec().upstream_tau
    assert {"zscore_merge", "round_robin"} <= set(results["baselines"])
    assert len(results["results"]) == 4
    for row in results["results"]:
        assert row["cost_fraction"] <= row["budget"] + 1e-6
        assert 0.0 <= row["ndcg10_mean"] <= 1.0
        assert row["single_modal"] is True
        assert row["judgments"]["grade"] + row["judgments"]["compare"] > 0
    full = next(r for r in results["results"] if r["strategy"] == "full" and r["budget"] == 1.0)
    assert full["cost_fraction"] == pytest.approx(1.0)
    assert full["judgments"] == {
        "grade": 15 * 12,
        "compare": 0,
        "pages": full["judgments"]["pages"],
    }
    assert results["full_ndcg10"] == full["ndcg10_mean"]
    assert results["cost_to_match_full"]["full"] <= 1.0
    iso = {r["budget"]: r for r in results["results"] if r["strategy"] == "iso_anchor"}
    # Breadth first: a budget below the top bands of all queries buys pages with 90% of it (of
    # 0.2 x 180 grades), and comparisons (calibration, then searches) with the rest...
    assert iso[0.2]["judgments"]["grade"] <= 0.9 * 0.2 * 180
    assert iso[0.2]["judgments"]["compare"] > 0
    # ...and what is left after them goes to the searches.
    assert iso[1.0]["judgments"]["compare"] > 0, "iso_anchor spends the rest on the searches"
    assert iso[1.0]["supervision"]["pairs_implied"] > 0
    assert (tmp_path / "r.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert not Project.objects.exists(), "the simulated projects are removed"


def test_no_strategy_spends_more_than_its_budget(run):
    results = run(
        "--strategies", "iso_anchor,top_p,top_p_cal,random,full", "--budgets", "0.05,0.15",
        "--single-modal", "on,off", "--embedding-noise", "0.5",
    )  # fmt: skip
    assert results["world"]["embedding_noise"] == 0.5
    assert {(r["strategy"], r["single_modal"]) for r in results["results"]} == {
        (s, m) for s in simulator.KNOWN_STRATEGIES for m in (True, False)
    }
    for row in results["results"]:
        assert row["cost_fraction"] <= row["budget"] + 1e-6, row
        assert row["cost"] > 0, row


def test_the_per_query_policy_buys_searches_below_the_cost_of_every_top_band(run):
    # The project's budget_policy, set by the simulator: the same code as the product plans with.
    results = run("--strategies", "iso_anchor", "--budgets", "0.2", "--policy", "per_query")
    (row,) = results["results"]
    assert results["world"]["iso_anchor_policy"] == "per_query"
    assert row["judgments"]["compare"] > 0 and row["cost_fraction"] <= 0.2 + 1e-6


def test_search_share_keeps_what_one_query_s_searches_cost():
    spec = simulator.WorldSpec(modalities=3, items_per_modality=10, top_band=3, compare_cost=0.5)
    # one page of 9 grades; 3 searches (the reference into each other modality, and one into
    # the reference's own tail) x 2 anchors x 3 probes x 0.5 = 9
    assert simulator.search_share(spec, simulator.PER_QUERY) == pytest.approx(9 / 18)
    # The product's policy: pages for the whole budget first, searches with what is left.
    assert simulator.search_share(spec) == simulator.search_share(spec, "breadth_first") == 0.0
    with pytest.raises(ValueError, match="unknown policy"):
        simulator.search_share(spec, "deepest_first")


def _run(strategy: str, budget: float, ndcg10: float) -> simulator.RunResult:
    return simulator.RunResult(
        strategy=strategy, budget=budget, seed=0, single_modal=True, ndcg10=ndcg10, cost=budget,
        cost_fraction=budget, judgments={}, supervision={}, chosen={}, val_ndcg10=ndcg10,
        seconds=0.0, is_saturated=False,
    )  # fmt: skip


def test_the_recommendation_is_the_cheapest_strategy_within_one_percent_of_full():
    plan = simulator.SimulationPlan(strategies=("iso_anchor", "top_p", "full"), seeds=1)
    runs = [
        _run("full", 1.0, 0.900), _run("full", 0.3, 0.80),
        _run("top_p", 0.3, 0.890), _run("top_p", 0.2, 0.880),  # 98.9%, 97.8% of full
        _run("iso_anchor", 0.3, 0.8915), _run("iso_anchor", 0.5, 0.905),  # 99.1%, above full
    ]  # fmt: skip
    results = simulator.summarise(plan, runs, [{}], seconds=1.0)
    assert results["cost_to_match_full"] == {"iso_anchor": 0.5, "top_p": None, "full": 1.0}
    assert results["cost_to_near_full"] == {"iso_anchor": 0.3, "top_p": None, "full": 1.0}
    assert results["cheapest_to_match_full"] == results["recommended"] == "iso_anchor"
    runs = [r for r in runs if r.strategy != "iso_anchor"]
    assert simulator.summarise(plan, runs, [{}], seconds=1.0)["recommended"] == "full"


def test_first_seed_runs_later_seeds_so_a_run_can_add_seeds_to_an_earlier_ones(run):
    args = ("--strategies", "full", "--budgets", "1.0")
    first = run(*args)
    later = run(*args, "--first-seed", "3")
    assert [s["seed"] for s in first["results"][0]["per_seed"]] == [0]
    assert [s["seed"] for s in later["results"][0]["per_seed"]] == [3]
    assert (first["world"]["first_seed"], later["world"]["first_seed"]) == (0, 3)
    assert later["baselines"] != first["baselines"], "seed 3 is another world"


def test_simulate_refuses_no_seeds_and_a_negative_first_seed(run):
    for args in (("--seeds", "0"), ("--first-seed", "-1")):
        with pytest.raises(CommandError, match="--seeds must be at least 1"):
            run(*args)


def test_runs_that_bought_the_same_labels_share_one_training(run, monkeypatch):
    calls = []
    real = simulator.train_and_measure

    def counting(train_pages, *args, **kwargs):
        calls.append(simulator.supervision_fingerprint(train_pages))
        return real(train_pages, *args, **kwargs)

    monkeypatch.setattr(simulator.loop, "train_and_measure", counting)  # where run_once calls it
    results = run(
        "--strategies", "iso_anchor,top_p,random", "--budgets", "0.2", "--modalities", "1"
    )
    # With one modality iso_anchor has nothing to calibrate or search: it buys top_p's pages.
    assert len(calls) == len(set(calls)) == 2
    by_strategy = {r["strategy"]: r for r in results["results"]}
    assert by_strategy["iso_anchor"]["ndcg10_mean"] == by_strategy["top_p"]["ndcg10_mean"]


@pytest.mark.parametrize(
    "flag,value,message",
    [
        ("--embedding-noise", "-1", "--embedding-noise must be at least 0, not -1"),
        ("--grade-noise", "1.5", "--grade-noise must be in [0, 1], not 1.5"),
        ("--upstream-tau", "2", "--upstream-tau must be in [-1, 1], not 2"),
    ],
)
def test_a_world_option_out_of_range_is_refused_with_its_name(db, tmp_path, flag, value, message):
    from django.core.management.base import CommandError

    with pytest.raises(CommandError, match=message.replace("[", r"\[").replace("]", r"\]")):
        call_command("simulate", *TINY, flag, value, "--out", str(tmp_path / "r.json"))
    assert not (tmp_path / "r.json").exists()


def test_paired_differences_compare_strategies_on_the_same_seed_s_world():
    runs = [
        replace(_run("iso_anchor", 0.1, 0.80), seed=0), replace(_run("top_p", 0.1, 0.78), seed=0),
        replace(_run("iso_anchor", 0.1, 0.60), seed=1), replace(_run("top_p", 0.1, 0.61), seed=1),
        replace(_run("random", 0.1, 0.70), seed=0),  # seed 1 missing: paired on seed 0 only
        replace(_run("iso_anchor", 0.2, 0.9), seed=0),  # nothing to pair with
    ]  # fmt: skip
    paired = {(p["against"], p["budget"]): p for p in simulator.paired_differences(runs)}
    assert set(paired) == {("top_p", 0.1), ("random", 0.1)}
    top_p = paired[("top_p", 0.1)]
    # Unpaired, the worlds' spread (0.80 vs 0.60) would swamp a difference of 0.005.
    assert top_p["diff_mean"] == pytest.approx((0.02 - 0.01) / 2)
    assert top_p["diff_std"] == pytest.approx(0.015)
    assert (top_p["wins"], top_p["seeds"]) == (1, 2)
    assert paired[("random", 0.1)]["seeds"] == 1
    table = simulator.format_table({"results": [], "paired": list(paired.values())})
    assert "iso_anchor - top_p" in table and "+0.0050 ± 0.0150 (1/2)" in table
