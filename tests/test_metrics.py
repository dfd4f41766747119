"""The fine-tuning metrics against values worked out by hand or published with a well-known example."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gpt_exp import metrics

# Anscombe's quartet, set I: its Pearson r is the famous 0.816 (0.81642 to five places)
ANSCOMBE_X = [10, 8, 13, 9, 11, 14, 6, 4, 12, 7, 5]
ANSCOMBE_Y1 = [8.04, 6.95, 7.58, 8.81, 8.33, 9.96, 7.24, 4.26, 10.84, 4.82, 5.68]


def test_accuracy():
    assert metrics.accuracy([0, 1, 1, 0], [0, 1, 0, 0]) == 0.75
    assert metrics.accuracy(np.array([2, 2]), np.array([2, 2])) == 1.0
    with pytest.raises(ValueError):
        metrics.accuracy([0, 1], [0, 1, 1])


def test_macro_f1_matches_scikit_learns_documented_example():
    # sklearn.metrics.f1_score docs: y_true=[0,1,2,0,1,2], y_pred=[0,2,1,0,0,1], average="macro" -> 0.26666...
    assert metrics.macro_f1([0, 2, 1, 0, 0, 1], [0, 1, 2, 0, 1, 2]) == pytest.approx(0.26666666666666666)


def test_macro_f1_does_not_reward_the_majority_class():
    labels = np.array([0] * 50 + [1] * 37 + [2] * 13)  # vitaminc's class shares
    majority = np.zeros(100, int)
    assert metrics.accuracy(majority, labels) == 0.5
    # class 0: precision .5, recall 1 -> F1 2/3; classes 1 and 2: F1 0
    assert metrics.macro_f1(majority, labels, num_classes=3) == pytest.approx((2 / 3) / 3)
    assert metrics.macro_f1(labels, labels, num_classes=3) == 1.0


def test_pearson_by_hand_and_anscombe():
    assert metrics.pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)  # cov 1 / sqrt(2 * 2)
    assert metrics.pearson(ANSCOMBE_X, ANSCOMBE_Y1) == pytest.approx(0.81642, abs=5e-6)
    assert metrics.pearson([1, 2, 3], [-2, -4, -6]) == pytest.approx(-1.0)


def test_spearman_ranks_ties_and_ignores_monotone_bends():
    x = np.arange(1, 6)
    assert metrics.spearman(x, x ** 3) == pytest.approx(1.0)
    assert metrics.pearson(x, x ** 3) < 0.99
    # ties share their mean rank: ranks [1, 2.5, 2.5, 4] vs [1, 2, 3, 4] -> 4.5 / sqrt(4.5 * 5)
    assert metrics.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(22.5))


def test_correlation_of_a_constant_prediction_is_undefined():
    assert math.isnan(metrics.pearson([3, 3, 3], [1, 2, 3]))
    assert math.isnan(metrics.spearman([1, 2, 3], [0, 0, 0]))


def test_cross_entropy():
    assert metrics.cross_entropy(np.zeros((3, 4)), np.array([0, 1, 3])) == pytest.approx(math.log(4))
    # huge logits stay finite: log-softmax is computed stably
    assert metrics.cross_entropy(np.array([[1000.0, 0.0]]), np.array([1])) == pytest.approx(1000.0)
