"""Precision: fp32, or fp16 / bf16 mixed precision through MindSpore's amp API, with a loss scaler."""
from __future__ import annotations

import mindspore
from mindspore import amp, nn
from omegaconf import DictConfig

from gpt_exp.errors import ConfigError

DTYPES = {"float32": mindspore.float32, "float16": mindspore.float16, "bfloat16": mindspore.bfloat16}


def check_precision(precision: DictConfig, device_target: str) -> None:
    if precision.dtype not in DTYPES:
        raise ConfigError(f"precision.dtype={precision.dtype!r}: use one of {sorted(DTYPES)}")
    if precision.dtype == "bfloat16" and device_target == "CPU":
        raise ConfigError(
            "precision=bf16 on device=cpu: MindSpore's CPU backend has no bfloat16 kernels (MatMul, Gather, "
            "BatchMatMul fail with 'Unsupported data type'). Fix: precision=fp32 or precision=fp16 on the CPU; "
            "bf16 runs on Ascend (and GPUs with bf16 support).")


def apply_precision(network: nn.Cell, precision: DictConfig) -> nn.Cell:
    if precision.dtype == "float32" or precision.amp_level == "O0":
        return network
    return amp.auto_mixed_precision(network, precision.amp_level, dtype=DTYPES[precision.dtype])


def make_loss_scaler(precision: DictConfig) -> amp.DynamicLossScaler:
    """fp32 gets a fixed scale of 1: overflowing steps are still skipped, nothing else changes."""
    scale = precision.get("loss_scale")
    if not scale:
        return amp.DynamicLossScaler(scale_value=1.0, scale_factor=1, scale_window=2**31 - 1)
    return amp.DynamicLossScaler(scale_value=float(scale.init), scale_factor=int(scale.factor),
                                 scale_window=int(scale.window))
