"""Evaluation metrics of the fine-tuning tasks, on plain numpy arrays.

The GPT-1 paper reports accuracy (classification, entailment, multiple choice), Matthews or F1 for
some GLUE sets, and Pearson / Spearman correlation for STS-B; these are those, checked against
known values in tests/test_metrics.py.
"""
from __future__ import annotations

import math

import numpy as np


def accuracy(predictions, labels) -> float:
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape or predictions.size == 0:
        raise ValueError(f"accuracy needs two equal, non-empty shapes; got {predictions.shape} and {labels.shape}")
    return float(np.mean(predictions == labels))


def macro_f1(predictions, labels, num_classes: int | None = None) -> float:
    """The unweighted mean of the per-class F1 scores (a class never predicted nor present is left out).

    Unlike accuracy it does not reward always answering the majority class: on an unbalanced set
    (vitaminc: 50 / 37 / 13 %) that strategy scores 0.50 accuracy but 0.22 macro-F1.
    """
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape or predictions.size == 0:
        raise ValueError(f"macro_f1 needs two equal, non-empty shapes; got {predictions.shape} and {labels.shape}")
    classes = range(num_classes) if num_classes else np.union1d(predictions, labels)
    scores = []
    for c in classes:
        true_pos = np.sum((predictions == c) & (labels == c))
        predicted, actual = np.sum(predictions == c), np.sum(labels == c)
        if predicted == 0 and actual == 0:
            continue
        scores.append(2 * true_pos / (predicted + actual))
    return float(np.mean(scores))


def pearson(x, y) -> float:
    """Pearson's r; nan when either side is constant (a model that predicts one score has no correlation)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"pearson needs two equal shapes of at least 2 values; got {x.shape} and {y.shape}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    from scipy import stats

    return float(stats.pearsonr(x, y)[0])


def spearman(x, y) -> float:
    """Spearman's rho: Pearson's r of the ranks (ties get their mean rank)."""
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    if x.shape != y.shape or x.size < 2:
        raise ValueError(f"spearman needs two equal shapes of at least 2 values; got {x.shape} and {y.shape}")
    if np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    from scipy import stats

    return float(stats.spearmanr(x, y)[0])


def cross_entropy(logits, labels) -> float:
    """Mean negative log-likelihood of `labels` under softmax(`logits`) (nats), computed stably."""
    logits = np.asarray(logits, np.float64)
    labels = np.asarray(labels)
    shifted = logits - logits.max(axis=-1, keepdims=True)
    log_probs = shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))
    return float(-np.mean(np.take_along_axis(log_probs, labels[:, None], axis=-1)))
