import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp
from scipy.stats import kendalltau
from sklearn.metrics import ndcg_score

from ranking.ml.metrics import (
    cross_modal_pair_accuracy,
    evaluate_pages,
    kendall_tau_b,
    kendall_tau_per_modality,
    mean_ndcg_at_k,
    ndcg_at_k,
)


@st.composite
def ranked_lists(draw, allow_score_ties=False):
    n = draw(st.integers(min_value=2, max_value=30))
    grades = draw(hnp.arrays(np.int64, n, elements=st.integers(0, 4)))
    if allow_score_ties:
        # Few distinct values, so many scores tie.
        scores = draw(hnp.arrays(np.float64, n, elements=st.integers(0, 3).map(float)))
    else:
        scores = draw(
            hnp.arrays(np.float64, n, elements=st.floats(-10, 10, allow_nan=False), unique=True)
        )
    k = draw(st.integers(min_value=1, max_value=n + 2))
    return scores, grades, k


@settings(max_examples=150, deadline=None)
@given(ranked_lists())
def test_ndcg_linear_gain_agrees_with_sklearn_on_random_cases(case):
    scores, grades, k = case
    expected = ndcg_score(grades[None, :], scores[None, :], k=k)
    assert ndcg_at_k(scores, grades, k=k, gain="linear") == pytest.approx(expected, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(ranked_lists())
def test_ndcg_exponential_gain_agrees_with_sklearn_on_exponentiated_grades(case):
    scores, grades, k = case
    expected = ndcg_score((2.0**grades - 1)[None, :], scores[None, :], k=k)
    assert ndcg_at_k(scores, grades, k=k) == pytest.approx(expected, abs=1e-12)


@settings(max_examples=150, deadline=None)
@given(ranked_lists(allow_score_ties=True))
def test_ndcg_averages_over_tied_scores_as_sklearn_does(case):
    scores, grades, k = case
    expected = ndcg_score(grades[None, :], scores[None, :], k=k)
    assert ndcg_at_k(scores, grades, k=k, gain="linear") == pytest.approx(expected, abs=1e-12)


def test_ndcg_is_one_for_the_ideal_order_and_ignores_unjudged_items():
    grades = np.array([3, -1, 0, 2, -1, 1])
    scores = np.array([10.0, 100.0, 0.0, 5.0, 99.0, 1.0])  # unjudged items scored highest
    assert ndcg_at_k(scores, grades, k=3) == pytest.approx(1.0)


def test_ndcg_of_query_without_relevant_items_is_zero_and_left_out_of_the_mean():
    assert ndcg_at_k(np.array([1.0, 2.0]), np.array([0, 0])) == 0.0
    mean = mean_ndcg_at_k([np.array([1.0, 2.0]), np.array([2.0, 1.0])], [[0, 0], [1, 0]])
    assert mean == pytest.approx(1.0)


def test_cross_modal_pair_accuracy_counts_only_pairs_across_modalities_with_different_grades():
    grades = np.array([2, 0, 1, 2])
    modalities = np.array([0, 0, 1, 1])
    # Cross-modal pairs with different grades: (0,2) right, (1,2) wrong, (1,3) right.
    scores = np.array([3.0, 2.0, 1.0, 4.0])
    assert cross_modal_pair_accuracy(scores, grades, modalities) == pytest.approx(2 / 3)
    assert math.isnan(cross_modal_pair_accuracy(scores, grades, np.zeros(4, dtype=int)))


def test_cross_modal_pair_accuracy_counts_a_tie_in_scores_as_half():
    assert cross_modal_pair_accuracy(np.array([1.0, 1.0]), [1, 0], [0, 1]) == 0.5


@settings(max_examples=100, deadline=None)
@given(ranked_lists(allow_score_ties=True))
def test_kendall_tau_b_agrees_with_scipy(case):
    scores, grades, _ = case
    expected = kendalltau(scores, grades).statistic
    got = kendall_tau_b(scores, grades)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected, abs=1e-12)


def _hand_rolled_tau_b(x, y) -> float:
    """The implementation scipy replaced (sign matrix over all pairs), kept as the reference."""
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    upper = np.triu(np.ones((len(x), len(x)), dtype=bool), k=1)
    dx = np.sign(x[:, None] - x[None, :])[upper]
    dy = np.sign(y[:, None] - y[None, :])[upper]
    denominator = np.sqrt(np.count_nonzero(dx) * np.count_nonzero(dy))
    return float(np.sum(dx * dy) / denominator) if denominator else float("nan")


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 4), st.integers(-3, 3)), min_size=0, max_size=25),
)
def test_kendall_tau_b_equals_the_previous_hand_rolled_one_with_ties_and_tiny_lists(pairs):
    x = np.array([a for a, _ in pairs], dtype=float)
    y = np.array([b for _, b in pairs], dtype=float)
    expected, got = _hand_rolled_tau_b(x, y), kendall_tau_b(x, y)
    if math.isnan(expected):
        assert math.isnan(got)
    else:
        assert got == pytest.approx(expected, rel=0, abs=1e-9)


def test_kendall_tau_per_modality_is_one_when_order_within_each_modality_is_kept():
    upstream = np.array([0.9, 0.1, 0.5, 30.0, 10.0])
    modalities = np.array([0, 0, 0, 1, 1])
    scores = np.array([3.0, 1.0, 2.0, -1.0, -5.0])  # scale changed, order kept
    assert kendall_tau_per_modality(scores, upstream, modalities) == {0: 1.0, 1: 1.0}


def test_evaluate_pages_reports_the_dashboard_figures():
    figures = evaluate_pages(
        [np.array([2.0, 1.0, 0.0])],
        [np.array([2, 1, 0])],
        [np.array([0, 1, 0])],
        [np.array([0.5, 3.0, 0.1])],
    )
    assert figures["ndcg@10"] == pytest.approx(1.0)
    assert figures["cross_modal_pair_accuracy"] == 1.0
    assert figures["kendall_tau[0]"] == 1.0
