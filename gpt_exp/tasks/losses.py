"""Losses shared by the tasks."""
from __future__ import annotations

import mindspore
from mindspore import ops


def next_token_loss(logits, tokens, loss_mask=None):
    """Mean cross-entropy of predicting tokens[:, 1:] from logits[:, :-1].

    loss_mask [B, T] selects which *target* positions count (1) and which do not (0): padding,
    or the article when only the summary is learned.
    """
    vocab = logits.shape[-1]
    pred = logits[:, :-1].reshape(-1, vocab).astype(mindspore.float32)
    target = tokens[:, 1:].reshape(-1)
    if loss_mask is None:
        return ops.cross_entropy(pred, target)
    weight = loss_mask[:, 1:].reshape(-1).astype(mindspore.float32)
    per_token = ops.cross_entropy(pred, target, reduction="none")
    return (per_token * weight).sum() / ops.maximum(weight.sum(), 1.0)
