"""Evaluation metrics on plain numpy arrays, and the per-sample scores that give them intervals.

The GPT-1 paper reports accuracy (classification, entailment, multiple choice), Matthews or F1 for
some GLUE sets, and Pearson / Spearman correlation for STS-B; these are those, checked against
known values in tests/test_metrics.py. Bits per character is the tokenizer-independent LM metric.

Every task writes its test split's per-sample scores to `<run>/test_scores.jsonl` (one JSON object a
sample: ROUGE, correct = accuracy, bits_per_char with its characters as weight); `gpt_exp.tools.compare`
reads them back for 95% bootstrap intervals, so a table shows which differences are larger than noise.
"""
from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np

SAMPLE_SCORES_FILE = "test_scores.jsonl"
# a score averaged with a weight column (per-sample bits/char weighted by the sample's characters)
WEIGHT_OF = {"bits_per_char": "chars"}


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


def bits_per_char(total_nats: float, characters: float) -> float:
    """Summed next-token loss (nats) over a text / its characters / ln 2: bits per character of the text.

    Unlike a per-token loss or perplexity it does not depend on the tokenizer: runs with a byte-level BPE,
    a character vocabulary or a word-level BPE compare on one scale (nanoGPT's Shakespeare: ~1.5-2.8).
    """
    if not characters > 0:
        raise ValueError(f"bits_per_char needs a positive character count; got {characters}")
    return float(total_nats) / float(characters) / math.log(2)


def bootstrap_interval(values, n: int = 1000, seed: int = 0, weights=None, level: float = 0.95
                       ) -> tuple[float, float, float]:
    """(mean, low, high): the mean of per-sample `values` and its percentile bootstrap interval (95% by default).

    Resamples the samples with replacement `n` times; with `weights` the statistic is the weighted mean
    sum(w * v) / sum(w), e.g. bits/char of blocks weighted by their characters, which makes it the split's
    sum of nats over its sum of characters. Deterministic for a given `seed`.
    """
    values = np.asarray(values, np.float64)
    weights = np.ones_like(values) if weights is None else np.asarray(weights, np.float64)
    if values.ndim != 1 or values.size == 0 or weights.shape != values.shape:
        raise ValueError(f"bootstrap_interval needs a non-empty 1-D array (and weights of its shape); "
                         f"got {values.shape} and {weights.shape}")
    if not weights.sum() > 0:
        raise ValueError("bootstrap_interval: the weights sum to 0")
    mean = float(np.sum(weights * values) / np.sum(weights))
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, values.size, size=(n, values.size))
    picked_weights = weights[picks]
    totals = np.maximum(picked_weights.sum(axis=1), np.finfo(np.float64).tiny)
    means = (picked_weights * values[picks]).sum(axis=1) / totals
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(means, [tail, 100 - tail])
    return mean, float(low), float(high)


def save_sample_scores(path: Path, scores: dict[str, list | np.ndarray]) -> None:
    """Columns of per-sample scores (equal lengths) as JSON lines, one sample a line."""
    lengths = {name: len(column) for name, column in scores.items()}
    if len(set(lengths.values())) > 1:
        raise ValueError(f"per-sample score columns of different lengths: {lengths}")
    names = list(scores)
    columns = [np.asarray(scores[name], np.float64).tolist() for name in names]
    path.write_text("".join(json.dumps(dict(zip(names, row))) + "\n" for row in zip(*columns)))


def load_sample_scores(path: Path) -> dict[str, np.ndarray]:
    """What save_sample_scores wrote, as columns; {} when there is no file."""
    if not path.is_file():
        return {}
    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    names = [name for name in (rows[0] if rows else {})]
    return {name: np.array([row.get(name, math.nan) for row in rows], np.float64) for name in names}


def sample_intervals(scores: dict[str, np.ndarray], n: int = 1000, seed: int = 0) -> dict[str, tuple]:
    """{metric: (mean, low, high)} for every per-sample column except the weights."""
    weights = set(WEIGHT_OF.values())
    return {name: bootstrap_interval(values, n, seed, weights=scores.get(WEIGHT_OF.get(name, ""), None))
            for name, values in scores.items() if name not in weights and len(values)}
