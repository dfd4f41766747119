"""The train step: accumulate gradients over micro-batches, unscale, check, clip, update.

Written once for every task and precision; under `trainer.compile=true` the whole step,
accumulation and loss-scale update included, is one `mindspore.jit` graph.
"""
from __future__ import annotations

import mindspore
from mindspore import amp, nn, ops


def global_norm(grads):
    return ops.sqrt(sum([ops.sum(ops.square(g.astype(mindspore.float32))) for g in grads]))


def make_train_step(network: nn.Cell, optimizer: nn.Optimizer, loss_scaler, accum_steps: int,
                    max_grad_norm: float | None, compile: bool):
    """Returns step(*arrays) -> (loss, loss_parts, grad_norm, is_finite).

    Every input array carries a leading axis of `accum_steps` micro-batches. `network(*micro_batch)`
    returns (loss, loss_parts). A step whose gradients overflow is skipped and lowers the loss scale.
    """

    def scaled_loss(*micro_batch):
        loss, parts = network(*micro_batch)
        return loss_scaler.scale(loss / accum_steps), parts

    grad_fn = mindspore.value_and_grad(scaled_loss, None, optimizer.parameters, has_aux=True)

    def train_step(*arrays):
        (loss, parts), grads = grad_fn(*[a[0] for a in arrays])
        for i in range(1, accum_steps):
            (more_loss, more_parts), more_grads = grad_fn(*[a[i] for a in arrays])
            loss = loss + more_loss
            parts = tuple(p + q for p, q in zip(parts, more_parts))
            grads = tuple(g + h for g, h in zip(grads, more_grads))
        grads = loss_scaler.unscale(grads)
        is_finite = amp.all_finite(grads)
        grad_norm = global_norm(grads)
        if max_grad_norm is not None:
            clip = ops.minimum(max_grad_norm / (grad_norm + 1e-6), 1.0)
            grads = tuple(g * clip.astype(g.dtype) for g in grads)
        if is_finite:
            optimizer(grads)
        loss_scaler.adjust(is_finite)
        parts = tuple(p / accum_steps for p in parts)
        return loss_scaler.unscale(loss), parts, grad_norm, is_finite

    return mindspore.jit(train_step) if compile else train_step


def make_eval_step(network: nn.Cell, compile: bool):
    """Returns step(*arrays) -> network outputs in inference mode (no dropout)."""

    def eval_step(*arrays):
        return network(*arrays)

    return mindspore.jit(eval_step) if compile else eval_step
