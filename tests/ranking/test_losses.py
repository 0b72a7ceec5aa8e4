import itertools
import math

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ranking.ml.features import PageBatch, PageTargets
from ranking.ml.losses import (
    LossWeights,
    grade_cross_entropy,
    interval_likelihood,
    list_mle,
    pairwise_hinge,
    smar_loss,
)
from ranking.ml.model import RerankerOutput


def plackett_luce_nll(scores: list[float], order: list[int]) -> float:
    """-log P(order) under Plackett-Luce, straight from the definition."""
    nll = 0.0
    for position, item in enumerate(order):
        remaining = order[position:]
        nll += math.log(sum(math.exp(scores[j]) for j in remaining)) - scores[item]
    return nll


def exact_tied_order_nll(scores: list[float], keys: list[float]) -> float:
    """-log of the total probability of every order that sorts `keys` descending."""
    total = 0.0
    for order in itertools.permutations(range(len(scores))):
        if all(keys[a] >= keys[b] for a, b in itertools.pairwise(order)):
            total += math.exp(-plackett_luce_nll(scores, list(order)))
    return -math.log(total)


small_scores = st.lists(st.floats(-3, 3, allow_nan=False), min_size=1, max_size=6)


@settings(max_examples=150, deadline=None)
@given(small_scores, st.randoms(use_true_random=False))
def test_list_mle_agrees_with_brute_force_plackett_luce_on_strict_orders(scores, rnd):
    keys = list(range(len(scores)))
    rnd.shuffle(keys)
    order = sorted(range(len(scores)), key=lambda i: -keys[i])
    got = list_mle(
        torch.tensor([scores], dtype=torch.float64),
        torch.tensor([keys], dtype=torch.float64),
        torch.ones(1, len(scores), dtype=torch.bool),
    )
    assert float(got[0]) == pytest.approx(plackett_luce_nll(scores, order), abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(small_scores, st.data())
def test_list_mle_with_ties_bounds_the_exact_tied_likelihood_and_ignores_tie_order(scores, data):
    n = len(scores)
    keys = data.draw(st.lists(st.integers(0, 2), min_size=n, max_size=n))
    s = torch.tensor([scores], dtype=torch.float64)
    k = torch.tensor([keys], dtype=torch.float64)
    mask = torch.ones(1, n, dtype=torch.bool)
    got = float(list_mle(s, k, mask)[0])
    assert got >= exact_tied_order_nll(scores, keys) - 1e-9
    # Reordering the items (and so the tied ones among themselves) changes nothing.
    perm = torch.tensor(data.draw(st.permutations(range(n))))
    assert float(list_mle(s[:, perm], k[:, perm], mask)[0]) == pytest.approx(got, abs=1e-9)


def test_list_mle_ignores_masked_items_and_their_scores():
    scores = torch.tensor([[1.0, -2.0, 0.5, 99.0]], requires_grad=True)
    keys = torch.tensor([[2.0, 0.0, 1.0, 5.0]])
    mask = torch.tensor([[True, True, True, False]])
    loss = list_mle(scores, keys, mask)
    expected = plackett_luce_nll([1.0, -2.0, 0.5], [0, 2, 1])
    assert float(loss[0].detach()) == pytest.approx(expected, abs=1e-6)
    loss.sum().backward()
    assert scores.grad[0, 3] == 0.0
    assert torch.isfinite(scores.grad).all()


def test_list_mle_of_a_row_without_items_is_zero_with_finite_gradient():
    scores = torch.zeros(1, 3, requires_grad=True)
    loss = list_mle(scores, torch.zeros(1, 3), torch.zeros(1, 3, dtype=torch.bool))
    loss.sum().backward()
    assert float(loss[0].detach()) == 0.0
    assert torch.isfinite(scores.grad).all()


def test_hinge_is_zero_when_every_pair_clears_the_margin():
    scores = torch.tensor([[3.0, 2.0, 0.0]])
    page, better, worse = torch.tensor([0, 0]), torch.tensor([0, 1]), torch.tensor([1, 2])
    loss = pairwise_hinge(scores, page, better, worse, torch.ones(2), gamma=1.0)
    assert float(loss) == 0.0


def test_hinge_charges_weighted_shortfall_of_the_margin():
    scores = torch.tensor([[1.0, 1.2]])
    page, better, worse = torch.tensor([0, 0]), torch.tensor([0, 1]), torch.tensor([1, 0])
    weights = torch.tensor([1.0, 0.5])
    loss = pairwise_hinge(scores, page, better, worse, weights, gamma=0.5)
    # pair 0: 0.5 - (1.0 - 1.2) = 0.7; pair 1: 0.5 - 0.2 = 0.3, weighed 0.5.
    assert float(loss) == pytest.approx((0.7 + 0.5 * 0.3) / 2)


def test_grade_cross_entropy_ignores_ungraded_items():
    logits = torch.randn(1, 3, 5)
    grades = torch.tensor([[2, -1, 4]])
    expected = torch.nn.functional.cross_entropy(logits[0, [0, 2]], torch.tensor([2, 4]))
    assert float(grade_cross_entropy(logits, grades)) == pytest.approx(float(expected))


def _toy_batch():
    features = torch.zeros(2, 4, 3)
    mask = torch.tensor([[True, True, True, True], [True, True, True, False]])
    modalities = torch.tensor([[0, 0, 1, 1], [0, 1, 1, 0]])
    targets = PageTargets(
        grades=torch.tensor([[2, 0, 1, -1], [0, 3, -1, -1]]),
        upstream_ranks=torch.tensor([[0, 1, 1, 0], [0, 0, 1, -1]]),
        pair_page=torch.tensor([0, 1]),
        pair_better=torch.tensor([3, 1]),
        pair_worse=torch.tensor([1, 0]),
        pair_weight=torch.tensor([1.0, 1.0]),
        pair_source=torch.tensor([1, 0]),  # implied, human
    )
    return PageBatch(features, mask, modalities), targets


def test_smar_loss_sums_weighted_parts_and_backpropagates():
    batch, targets = _toy_batch()
    logits = torch.randn(2, 4, 5, requires_grad=True)
    scores = logits.softmax(-1) @ torch.arange(5.0)
    weights = LossWeights(default_beta=0.2, beta={1: 0.5})
    total, parts = smar_loss(RerankerOutput(logits, scores), batch, targets, weights)
    assert set(parts) == {"ce", "listmle", "pair_human", "pair_implied", "single_modal", "total"}
    expected = (
        parts["ce"]
        + parts["listmle"]
        + weights.pair_human * parts["pair_human"]
        + weights.pair_implied * parts["pair_implied"]
        + parts["single_modal"]
    )
    assert parts["total"] == pytest.approx(expected, rel=1e-5)
    total.backward()
    assert torch.isfinite(logits.grad).all()


def test_smar_loss_without_single_modal_supervision_leaves_that_part_out():
    batch, targets = _toy_batch()
    logits = torch.randn(2, 4, 5)
    scores = logits.softmax(-1) @ torch.arange(5.0)
    _, parts = smar_loss(
        RerankerOutput(logits, scores), batch, targets, LossWeights(single_modal=False)
    )
    assert "single_modal" not in parts


def test_single_modal_term_follows_upstream_order_within_each_modality_only():
    batch, targets = _toy_batch()
    targets.grades.fill_(-1)
    for name in ("pair_page", "pair_better", "pair_worse", "pair_weight", "pair_source"):
        setattr(targets, name, getattr(targets, name)[:0])
    weights = LossWeights(ce=0, listmle=0)

    def single_modal(scores):
        logits = torch.zeros(2, 4, 5)
        return smar_loss(RerankerOutput(logits, scores), batch, targets, weights)[1]

    # Row 0: modality 0 upstream order is item 0 then 1, modality 1 is item 3 then 2.
    agree = torch.tensor([[4.0, 0.0, 0.0, 4.0], [0.0, 4.0, 0.0, 0.0]])
    disagree = torch.tensor([[0.0, 4.0, 4.0, 0.0], [0.0, 0.0, 4.0, 0.0]])
    assert single_modal(agree)["single_modal"] < single_modal(disagree)["single_modal"]
    # Cross-modal order is not the single-modal term's business: shifting a whole modality
    # leaves it unchanged.
    shifted = agree.clone()
    shifted[0, 2:] -= 3.0
    shifted[1, 1:3] -= 3.0
    assert single_modal(shifted)["single_modal"] == pytest.approx(
        single_modal(agree)["single_modal"], rel=1e-4
    )


def test_loss_weights_give_implied_pairs_less_weight_than_human_ones_by_default():
    weights = LossWeights()
    assert 0 < weights.pair_implied < weights.pair_human
    assert np.isclose(weights.beta_for(7), weights.default_beta)


def test_interval_likelihood_of_a_one_grade_interval_is_the_cross_entropy():
    logits = torch.randn(2, 4, 5)
    grades = torch.tensor([[0, 3, 4, 1], [2, 2, 0, 1]])
    mask = torch.ones(2, 4, dtype=torch.bool)
    nll = interval_likelihood(logits, grades, grades, mask)
    assert float(nll) == pytest.approx(float(grade_cross_entropy(logits, grades)), rel=1e-5)


def test_interval_likelihood_asks_only_for_the_interval():
    logits = torch.zeros(1, 2, 5, requires_grad=True)
    low, high = torch.tensor([[0, 1]]), torch.tensor([[4, 2]])
    mask = torch.tensor([[True, True]])
    nll = interval_likelihood(logits, low, high, mask)
    # Item 0's interval is every grade (no information: -log 1); item 1's holds 2 of 5 grades.
    assert nll.item() == pytest.approx((0.0 - math.log(2 / 5)) / 2, rel=1e-5)
    nll.backward()
    assert torch.allclose(logits.grad[0, 0], torch.zeros(5), atol=1e-7)
    grad = logits.grad[0, 1]
    assert (grad[1:3] < 0).all() and (grad[[0, 3, 4]] > 0).all(), "mass moves into [1, 2]"
    assert interval_likelihood(logits, low, high, torch.zeros(1, 2, dtype=torch.bool)) is None


def test_smar_loss_uses_intervals_only_where_no_grade_is_known():
    scores = torch.zeros(1, 3)
    logits = torch.randn(1, 3, 5)
    batch = PageBatch(
        torch.zeros(1, 3, 4),
        torch.ones(1, 3, dtype=torch.bool),
        torch.zeros(1, 3, dtype=torch.long),
    )
    empty = torch.zeros(0, dtype=torch.long)
    targets = PageTargets(
        grades=torch.tensor([[2, -1, -1]]), upstream_ranks=torch.tensor([[0, 1, 2]]),
        pair_page=empty, pair_better=empty, pair_worse=empty,
        pair_weight=torch.zeros(0), pair_source=empty,
        grade_low=torch.tensor([[0, 0, -1]]), grade_high=torch.tensor([[0, 0, -1]]),
    )  # fmt: skip
    weights = LossWeights(ce=0, listmle=0, single_modal=False, interval=1.0)
    _, parts = smar_loss(RerankerOutput(logits, scores), batch, targets, weights)
    # Item 0 has a grade (its interval is ignored), item 2 no interval: only item 1 counts.
    expected = -float(logits[0, 1].log_softmax(-1)[0])
    assert parts["interval"] == pytest.approx(expected, rel=1e-5)
    _, parts = smar_loss(RerankerOutput(logits, scores), batch, targets, LossWeights(
        ce=0, listmle=0, single_modal=False, interval=0.0))  # fmt: skip
    assert "interval" not in parts
