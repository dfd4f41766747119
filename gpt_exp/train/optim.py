"""AdamW with decoupled weight decay and a per-step learning-rate schedule (warmup, then decay)."""
from __future__ import annotations

import math

import numpy as np
from mindspore import Tensor, nn
from omegaconf import DictConfig


def learning_rates(peak_lr: float, max_steps: int, warmup_steps: int, schedule: str, min_lr_ratio: float) -> np.ndarray:
    """The learning rate of every optimizer step, as in nanoGPT's get_lr."""
    steps = np.arange(max_steps, dtype=np.float64)
    warmup = (steps + 1) / max(1, warmup_steps)
    progress = np.clip((steps - warmup_steps) / max(1, max_steps - warmup_steps), 0.0, 1.0)
    if schedule == "cosine":
        decay = min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + np.cos(math.pi * progress))
    elif schedule == "linear":
        decay = min_lr_ratio + (1 - min_lr_ratio) * (1 - progress)
    elif schedule == "constant":
        decay = np.ones_like(steps)
    else:
        raise ValueError(f"unknown scheduler.name={schedule!r}: cosine | linear | constant")
    return (peak_lr * np.where(steps < warmup_steps, warmup, decay)).astype(np.float32)


def build_optimizer(network: nn.Cell, optimizer: DictConfig, scheduler: DictConfig, max_steps: int):
    """AdamW over the network's trainable parameters; biases and LayerNorm weights are not decayed."""
    params = network.trainable_params()
    decayed = [p for p in params if p.ndim >= 2]
    not_decayed = [p for p in params if p.ndim < 2]
    lrs = learning_rates(optimizer.lr, max(1, max_steps), scheduler.warmup_steps, scheduler.name, scheduler.min_lr_ratio)
    groups = [{"params": decayed, "weight_decay": optimizer.weight_decay},
              {"params": not_decayed, "weight_decay": 0.0}]
    adamw = nn.AdamWeightDecay(groups, learning_rate=Tensor(lrs), beta1=optimizer.betas[0],
                               beta2=optimizer.betas[1], eps=optimizer.eps)
    return adamw, lrs
