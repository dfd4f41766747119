"""The train step: accumulate gradients over micro-batches, unscale, check, clip, update.

Written once for every task and precision; under `trainer.compile=true` the whole step,
accumulation and loss-scale update included, is one `mindspore.jit` graph.
"""
from __future__ import annotations

import mindspore
from mindspore import amp, nn, ops

from gpt_exp.train.compile_cache import cached_step


def _sum_of_squares(g):
    g = g if g.dtype == mindspore.float32 else g.astype(mindspore.float32)  # no cast kernel for float32
    # the last axis first: MindSpore 2.10's CPU ReduceSum over a whole matrix was 2.5-4x slower than over
    # rows and then the row sums (0.56 s vs 0.13 s for GPT-2's [50257, 768] embedding gradient)
    squares = ops.square(g)
    return squares.sum(-1).sum() if g.ndim > 1 else squares.sum()


def global_norm(grads):
    """The L2 norm of all gradients together, summed in float32."""
    return ops.sqrt(sum([_sum_of_squares(g) for g in grads]))


def make_train_step(network: nn.Cell, optimizer: nn.Optimizer, loss_scaler, accum_steps: int,
                    max_grad_norm: float | None, compile: bool, grad_reducer=None, compile_cache=None):
    """Returns step(*arrays) -> (loss, loss_parts, grad_norm, is_finite).

    `grad_reducer` (data parallel, gpt_exp/backend/distributed.py) averages the gradients over the ranks
    before they are checked, clipped and applied, so every rank takes the same step.
    `compile_cache` (a folder, with `compile`): load the compiled graph from there, or save it there
    (gpt_exp/train/compile_cache.py).

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
        if grad_reducer is not None:
            grads = grad_reducer(grads)
        # Unscaling, the finite check and clipping cost one pass over the gradients, not three: the norm of
        # the scaled gradients is `scale` times the true norm, and it is finite exactly when every gradient
        # is (a sum of squares of finite float32 values overflows only past a norm of ~1e19, a step worth
        # skipping too). 148 IsFinite + ReduceAll kernels per GPT-2 step were ~7% of its time on the CPU.
        scale = loss_scaler.scale_value
        grad_norm = global_norm(grads) / scale
        is_finite = amp.all_finite((grad_norm,))
        factor = 1.0 / scale
        if max_grad_norm is not None:
            factor = factor * ops.minimum(max_grad_norm / (grad_norm + 1e-6), 1.0)
        grads = tuple(g * factor.astype(g.dtype) for g in grads)
        loss = loss / scale  # before `adjust` changes the scale
        if is_finite:
            optimizer(grads)
        loss_scaler.adjust(is_finite)
        parts = tuple(p / accum_steps for p in parts)
        return loss, parts, grad_norm, is_finite

    if not compile:
        return train_step
    # jit of a Cell, not of the function: a graph loaded from the compile cache binds the Cell's parameters
    # (weights, optimizer moments, loss scale) by name; a function's graph would bind none of them
    step = mindspore.jit(TrainStep(train_step, network, optimizer, loss_scaler, grad_reducer))
    return step if compile_cache is None else cached_step(step, compile_cache)


class TrainStep(nn.Cell):
    """The train step as a Cell that owns every parameter the step reads or updates."""

    def __init__(self, train_step, network, optimizer, loss_scaler, grad_reducer=None):
        super().__init__(auto_prefix=False)  # the parameters keep their names (checkpoints, the cache)
        self.network = network
        self.optimizer = optimizer
        self.loss_scale_value = loss_scaler.scale_value
        self.loss_scale_counter = loss_scaler.counter
        if isinstance(grad_reducer, nn.Cell):
            self.grad_reducer = grad_reducer
        self.train_step = train_step

    def construct(self, *arrays):
        return self.train_step(*arrays)


def make_eval_step(network: nn.Cell, compile: bool):
    """Returns step(*arrays) -> network outputs in inference mode (no dropout)."""

    def eval_step(*arrays):
        return network(*arrays)

    return mindspore.jit(eval_step) if compile else eval_step
