"""Precision: fp32, fp16 / bf16 mixed precision through MindSpore's amp API, and bf16 matrix products on a CPU.

The `precision` group (conf/precision/) picks one of:
- fp32: everything in float32.
- fp16: amp O1/O2/O3 in float16 with dynamic loss scaling (fp16's range is too small for raw gradients).
- bf16: amp in bfloat16, no loss scaling (bf16 keeps fp32's exponent range). Ascend / GPU only:
  MindSpore 2.10's CPU backend has no bfloat16 kernels (MatMul, Gather, BatchMatMul raise
  "Unsupported data type"), so on a CPU it is refused with the fix below.
- bf16_matmul: float32 tensors and weights, but the matrix products are computed by oneDNN in bf16
  with float32 accumulation, like PyTorch's bf16 autocast for products. Two ways (precision.matmul_kernel):
  onednn_fpmath: MindSpore's own MatMul / BatchMatMul with oneDNN's bf16 "fpmath mode"; oneDNN honours it
  only on CPUs with AMX, elsewhere (e.g. AMD Zen 4 with AVX512-BF16) it silently computes in float32.
  custom_op: the dense layers and the LM head call gpt_exp/backend/bf16_products.py's custom operator, which hands
  oneDNN bf16 operands (fast on AVX512-BF16 and AMX alike; the small attention products stay float32).
  `cpu_matmul.bf16_products_route()` probes what this machine really does (auto: fpmath where it works, else the
  custom op) and the config check refuses where neither computes in bf16.

What works where is measured in docs/performance.md.
"""
from __future__ import annotations

import logging
import os
import tempfile

import mindspore
from mindspore import amp, nn
from omegaconf import DictConfig

from gpt_exp.backend.cpu_matmul import (_custom_op_probe, bf16_products_route, cpu_model, onednn_isa,
                                        set_matmul_math)
from gpt_exp.errors import ConfigError

log = logging.getLogger(__name__)

DTYPES = {"float32": mindspore.float32, "float16": mindspore.float16, "bfloat16": mindspore.bfloat16}
AMP_LEVELS = ("O0", "O1", "O2", "O3", "auto")
MATMUL_DTYPES = (None, "float32", "bfloat16")
MATMUL_KERNELS = ("auto", "onednn_fpmath", "custom_op")


def check_precision(precision: DictConfig, device_target: str) -> None:
    """Every precision error, before data or model are loaded."""
    name = precision.get("name", precision.dtype)
    if precision.dtype not in DTYPES:
        raise ConfigError(f"precision.dtype={precision.dtype!r}: use one of {sorted(DTYPES)}")
    if precision.amp_level not in AMP_LEVELS:
        raise ConfigError(f"precision.amp_level={precision.amp_level!r}: use one of {', '.join(AMP_LEVELS)} "
                          f"(O1: listed ops in low precision; O2: the network in low precision, LayerNorm, softmax and "
                          f"loss in float32; O3: everything)")
    matmul = precision.get("matmul_dtype")
    if matmul not in MATMUL_DTYPES:
        raise ConfigError(f"precision.matmul_dtype={matmul!r}: use null, float32 or bfloat16")
    scale = precision.get("loss_scale")
    if scale:
        for key in ("init", "factor", "window"):
            if scale.get(key) is None:
                raise ConfigError(f"precision.loss_scale.{key} is missing: loss_scale needs init, factor and window "
                                  f"(or loss_scale: null for no scaling)")
        if not (float(scale.init) >= 1 and float(scale.factor) == int(scale.factor) >= 1 and int(scale.window) >= 1):
            raise ConfigError(f"precision.loss_scale={dict(scale)}: init must be >= 1, factor a whole number >= 1 and "
                              f"window >= 1 (e.g. init 65536, factor 2, window 1000)")
    if precision.dtype == "bfloat16" and device_target == "CPU":
        raise ConfigError(
            f"precision={name} (bfloat16) on device=cpu: MindSpore's CPU backend has no bfloat16 kernels (MatMul, "
            f"Gather, BatchMatMul fail with 'Unsupported data type'). Fix: precision=bf16_matmul (float32 tensors "
            f"with matrix products in bf16 through oneDNN, on CPUs with AMX or AVX512-BF16: the fast choice here), "
            f"or precision=fp32 / precision=fp16; bf16 mixed precision runs on Ascend and on GPUs with bf16.")
    if precision.dtype != "float32" and precision.amp_level == "O0":
        raise ConfigError(f"precision.dtype={precision.dtype} with precision.amp_level=O0 casts nothing. Fix: "
                          f"precision.amp_level=O2 (or O1 / O3 / auto), or precision=fp32.")
    kernel = precision.get("matmul_kernel") or "auto"
    if kernel not in MATMUL_KERNELS:
        raise ConfigError(f"precision.matmul_kernel={kernel!r}: use one of {', '.join(MATMUL_KERNELS)}")
    if matmul == "bfloat16":
        if precision.dtype != "float32":
            raise ConfigError(f"precision.matmul_dtype=bfloat16 with precision.dtype={precision.dtype}: bf16 matrix "
                              f"products apply to float32 networks. Fix: precision=bf16_matmul (dtype float32).")
        if device_target != "CPU":
            raise ConfigError(f"precision={name} (bf16 matrix products through oneDNN) is for the CPU, not "
                              f"{device_target}. Fix: precision=bf16 on {device_target}.")
        if bf16_products_route(kernel) is None:
            raise ConfigError(_no_bf16_products_message(name, kernel))


def _no_bf16_products_message(name: str, kernel: str) -> str:
    """Why neither way to bf16 products works on this CPU, with what was probed."""
    fpmath = ("oneDNN computes float32 matrix products in float32 even when asked for bf16 (a probe product in a "
              "fresh process read 256.5, not 256): its implicit bf16 down-conversion needs AMX")
    custom = f"the bf16 product kernel does not run in bf16 here ({_custom_op_probe()[1]})"
    reasons = {"onednn_fpmath": fpmath, "custom_op": custom, "auto": f"{fpmath}; and {custom}"}[kernel]
    working = bf16_products_route("auto") if kernel != "auto" else None
    fix = (f"precision.matmul_kernel=auto (picks {working}, which computes in bf16 here)" if working
           else "precision=fp32 (the fastest choice here) or precision=fp16")
    return (f"precision={name} (precision.matmul_kernel={kernel}) on device=cpu: this CPU ({cpu_model()}; oneDNN "
            f"ISA {onednn_isa()}): {reasons}. Fix: {fix}.")


def setup_precision(precision: DictConfig, device_target: str) -> None:
    """Per-process numeric settings; call after the device is set and before the model is built."""
    if device_target != "CPU":
        return
    if cpu_products_kernel(precision, device_target) == "custom_op":
        from gpt_exp.backend import bf16_products

        # MindSpore's float32 MatMul stays as it is; the custom op's pool gets MindSpore's thread count
        bf16_products.set_threads(int(mindspore.get_context("runtime_num_threads") or os.cpu_count() or 1))
        log.info("precision: CPU matrix products in bfloat16 for the dense layers and the LM head (custom op, "
                 "oneDNN %s), tensors in float32", bf16_products.implementation())
        return
    set_matmul_math(precision.get("matmul_dtype") or "float32")


def cpu_products_kernel(precision: DictConfig, device_target: str) -> str | None:
    """How this run computes its bf16 products: onednn_fpmath, custom_op, or None (no bf16 products)."""
    if device_target != "CPU" or precision.get("matmul_dtype") != "bfloat16":
        return None
    return bf16_products_route(precision.get("matmul_kernel") or "auto")


def apply_precision(network: nn.Cell, precision: DictConfig) -> nn.Cell:
    """fp16 / bf16: MindSpore's amp casts at precision.amp_level. The network's loss comes out in float32."""
    if precision.dtype == "float32":
        return network
    if precision.amp_level != "O1":
        return amp.auto_mixed_precision(network, precision.amp_level, dtype=DTYPES[precision.dtype])
    # O1 rewrites the network's Python source. It counts every module under the working directory as user
    # code to rewrite, so run from a project whose .venv sits inside it, it descends into MindSpore itself
    # and fails ("... got _PyboostSoftmaxPrim"); it also writes the rewritten code to ./rewritten_network/.
    # A directory of its own fixes both (the files stay: jit reads their source when it compiles).
    previous = os.getcwd()
    os.chdir(tempfile.mkdtemp(prefix="gpt_exp_amp_o1_"))
    try:
        return amp.auto_mixed_precision(network, "O1", dtype=DTYPES[precision.dtype])
    finally:
        os.chdir(previous)


def choose_cpu_products(model: nn.Cell, precision: DictConfig, device_target: str) -> int:
    """Pick the faster form of the dense layers' products (and the LM head's) for this device and precision.

    fp32 on a CPU: the layers at least 4x wider out than in (the MLP's c_fc) multiply by their transposed
    weight (gpt_exp/model/gpt.py, Conv1D). Measured on GPT-2 small, batch 4 x 128, both forms timed in
    turns in one process: fp32 2-6% faster (2,450 -> 2,293 ms); with bf16 products (bf16_matmul) slower
    (1,427 -> 1,661 ms); switching c_attn (3x wider) too gained nothing.
    bf16 products through the custom op (cpu_products_kernel): every Conv1D and the tied LM head call it.
    Returns how many layers were switched. Call before compiling.
    """
    from gpt_exp.model.gpt import Conv1D

    if cpu_products_kernel(precision, device_target) == "custom_op":
        return _use_bf16_product_op(model)
    plain_fp32 = precision.dtype == "float32" and (precision.get("matmul_dtype") or "float32") == "float32"
    switch = device_target == "CPU" and plain_fp32
    count = 0
    for _, cell in model.cells_and_names():
        if isinstance(cell, Conv1D):
            n_in, n_out = cell.weight.shape
            cell.transposed_product = switch and n_out >= 4 * n_in
            count += cell.transposed_product
    return count


def _use_bf16_product_op(model: nn.Cell) -> int:
    from gpt_exp.backend.bf16_products import Bf16Product, Bf16ProductWithTransposed
    from gpt_exp.model.gpt import GPT, Conv1D

    count = 0
    for _, cell in model.cells_and_names():
        if isinstance(cell, Conv1D):
            cell.transposed_product = False
            cell.bf16_product = Bf16Product()
            count += 1
        elif isinstance(cell, GPT):
            cell.project_to_vocab = Bf16ProductWithTransposed()
            count += 1
    return count


def make_loss_scaler(precision: DictConfig) -> amp.DynamicLossScaler:
    """Dynamic loss scaling from precision.loss_scale; without it a fixed scale of 1.

    With scale 1 nothing changes numerically, but a step whose gradients are not finite is still skipped.
    """
    scale = precision.get("loss_scale")
    if not scale:
        return amp.DynamicLossScaler(scale_value=1.0, scale_factor=1, scale_window=2**31 - 1)
    return amp.DynamicLossScaler(scale_value=float(scale.init), scale_factor=int(scale.factor),
                                 scale_window=int(scale.window))
