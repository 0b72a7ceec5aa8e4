import numpy as np

from ranking.ml.baselines import (
    BASELINES,
    minmax_merge,
    raw_score_merge,
    round_robin_merge,
    zscore_merge,
)


def _order(scores):
    return np.argsort(-scores, kind="stable").tolist()


UPSTREAM = np.array([0.9, 0.5, 0.1, 3.0, -2.0])
MODALITIES = np.array([0, 0, 0, 1, 1])


def test_round_robin_interleaves_modalities_by_upstream_rank():
    assert _order(round_robin_merge(UPSTREAM, MODALITIES)) == [0, 3, 1, 4, 2]
    assert _order(round_robin_merge(UPSTREAM, MODALITIES, modality_order=[1, 0])) == [3, 0, 4, 1, 2]


def test_zscore_and_minmax_merge_normalise_within_each_modality():
    z = zscore_merge(UPSTREAM, MODALITIES)
    np.testing.assert_allclose(z[3:], [1.0, -1.0])
    np.testing.assert_allclose(minmax_merge(UPSTREAM, MODALITIES), [1.0, 0.5, 0.0, 1.0, 0.0])


def test_every_baseline_keeps_the_upstream_order_within_a_modality_and_puts_missing_last():
    upstream = np.array([0.2, np.nan, 0.7, 10.0, 30.0, 20.0])
    modalities = np.array([0, 0, 0, 1, 1, 1])
    for name, merge in BASELINES.items():
        scores = merge(upstream, modalities)
        assert scores[2] > scores[0] > scores[1], name
        assert scores[4] > scores[5] > scores[3], name


def test_raw_score_merge_compares_scales_as_they_are():
    assert _order(raw_score_merge(UPSTREAM, MODALITIES)) == [3, 0, 1, 2, 4]
