"""What this CPU's matrix products really compute, found by probing, never read off its flags: the one
place gpt_exp (its config check, its runner, the benchmark and the tests' skip conditions) asks.

- `matmul_math_in_effect()`: what oneDNN does with a float32 product in this process (a product whose exact
  answer differs in fp32 and bf16); `set_matmul_math(dtype)` asks oneDNN for bf16 "fpmath mode".
- `bf16_fpmath_works()`: whether that mode computes in bf16 here (AMX: yes; AVX512-BF16 alone: it silently
  stays float32), probed in a fresh process because oneDNN takes its mode once per process.
- `bf16_custom_op_works()`: whether gpt_exp's bf16 product kernel (bf16_products.py) compiles and computes in bf16.
- `bf16_products_route(kernel)`: which of the two a run of `precision=bf16_matmul` uses.
- `cpu_model()`, `onednn_isa()`: what error messages and benchmarks name.
"""
from __future__ import annotations

import ctypes
import functools
import logging
import os
import platform
import subprocess
import sys
from pathlib import Path

from gpt_exp.errors import ConfigError

log = logging.getLogger(__name__)

# oneDNN's dnnl_fpmath_mode_t: strict = plain fp32, bf16 = may down-convert fp32 inputs to bf16
_FPMATH = {"float32": 0, "bfloat16": 1}
_fpmath_set_in_process: str | None = None  # oneDNN takes its math mode once per process (see set_matmul_math)


def bf16_products_route(kernel: str = "auto") -> str | None:
    """The way to bf16 products that really computes in bf16 on this CPU, by probing, not by its flags.

    auto prefers oneDNN's fpmath mode (AMX: every product, attention included), then the custom op
    (AVX512-BF16 or AMX: the dense layers and the LM head). None: neither computes in bf16 here.
    """
    if kernel in ("auto", "onednn_fpmath") and bf16_fpmath_works():
        return "onednn_fpmath"
    if kernel in ("auto", "custom_op") and bf16_custom_op_works():
        return "custom_op"
    return None


def bf16_custom_op_works() -> bool:
    """Whether gpt_exp's bf16 product kernel builds here and oneDNN runs it on bf16 instructions."""
    return _custom_op_probe()[0]


@functools.lru_cache(maxsize=None)
def _custom_op_probe() -> tuple[bool, str]:
    """(works, what was seen). Runs in this process: the kernel calls oneDNN directly, no MindSpore kernel.

    A product of (1 + 2^-9) x 1 reads 256 only if the operands were rounded to bf16; oneDNN's implementation
    name says whether it runs on bf16 instructions (avx512_core_bf16, amx) or emulates them (slower than fp32).
    """
    import numpy as np

    from gpt_exp.backend import bf16_products

    try:
        value = float(bf16_products.multiply_numpy(np.full((256, 256), 1 + 2 ** -9, np.float32),
                                                   np.ones((256, 256), np.float32))[0, 0])
        implementation = bf16_products.implementation()
    except (bf16_products.KernelUnavailable, OSError, AttributeError) as error:
        return False, str(error)
    on_bf16_instructions = "bf16" in implementation or "amx" in implementation
    return value == 256.0 and on_bf16_instructions, f"oneDNN implementation {implementation}, probe read {value}"


def cpu_model() -> str:
    """The CPU's name as /proc/cpuinfo gives it (for reports: never decide a capability from it)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


# oneDNN 3.x's dnnl_cpu_isa_t values, as dnnl_get_effective_cpu_isa() returns them
_ONEDNN_ISAS = {0x1: "sse41", 0x3: "avx", 0x7: "avx2", 0xf: "avx2_vnni", 0x1f: "avx2_vnni_2",
                0x27: "avx512_core", 0x67: "avx512_core_vnni", 0xe7: "avx512_core_bf16",
                0x1ef: "avx10_1_512 (avx512_core_fp16)", 0xfef: "avx10_1_512_amx (avx512_core_amx)",
                0x1fef: "avx10_1_512_amx_fp16"}


def onednn_isa() -> str:
    """The instruction set oneDNN (inside MindSpore) dispatches its CPU kernels to on this machine."""
    code = _onednn().dnnl_get_effective_cpu_isa()
    return _ONEDNN_ISAS.get(code, hex(code))


# Run in a fresh interpreter: oneDNN fixes its math mode at the first kernel of a process.
_FPMATH_PROBE = ("from gpt_exp.backend.cpu_matmul import _FPMATH, _onednn, matmul_math_in_effect\n"
                 "_onednn().dnnl_set_default_fpmath_mode(_FPMATH['bfloat16'])\n"
                 "print(matmul_math_in_effect())\n")


@functools.lru_cache(maxsize=None)
def bf16_fpmath_works() -> bool:
    """Whether oneDNN really computes float32 products in bf16 when asked, on this machine.

    Decided by what the CPU does, not by its flags: on an AMD Zen 4 (avx512_bf16, no AMX) oneDNN 3.10
    accepts the bf16 math mode and still computes in float32; on Intel with AMX it down-converts. The
    probe runs once per process, in a child process (~3 s), because the mode cannot be undone here.
    """
    env = {**os.environ, "GLOG_v": "3"}
    try:
        done = subprocess.run([sys.executable, "-c", _FPMATH_PROBE], env=env, capture_output=True, text=True,
                              timeout=120, cwd=Path(__file__).resolve().parent.parent)
    except (OSError, subprocess.TimeoutExpired) as error:
        log.warning("precision: the bf16 product probe did not run (%s); treating bf16 products as unavailable",
                    error)
        return False
    answer = done.stdout.strip().splitlines()[-1:] if done.returncode == 0 else []
    if answer not in (["bfloat16"], ["float32"]):
        log.warning("precision: the bf16 product probe failed (exit %d): %s", done.returncode, done.stderr[-500:])
        return False
    return answer == ["bfloat16"]


def _onednn():
    """The oneDNN library MindSpore's CPU kernels (MatMul, BatchMatMul) run on, as loaded in this process."""
    import mindspore  # here, not at the top: cpu_model() serves the benchmark's parent without MindSpore

    return ctypes.CDLL(str(Path(mindspore.__file__).parent / "lib" / "libdnnl.so.3"))


def set_matmul_math(dtype: str) -> None:
    """Let oneDNN compute float32 matrix products in `dtype` (bfloat16: on AMX / AVX512-BF16).

    oneDNN fixes its math mode for the process once the first MindSpore kernel has used it; later changes
    are ignored silently. So the mode is set once, checked with a probe product, and a later run in the
    same process that asks for another mode fails instead of computing in the wrong precision.
    """
    global _fpmath_set_in_process
    if dtype == "float32" and _fpmath_set_in_process in (None, "float32"):
        return  # oneDNN's default: nothing to set, nothing to check
    if _fpmath_set_in_process is not None and _fpmath_set_in_process != dtype:
        raise ConfigError(f"precision: this process already runs its CPU matrix products in {_fpmath_set_in_process} "
                          f"(oneDNN fixes that once per process); a run with {dtype} products needs a new process. "
                          f"Fix: start it from the command line (python -m gpt_exp ...), one precision per process.")
    _onednn().dnnl_set_default_fpmath_mode(_FPMATH[dtype])
    got = matmul_math_in_effect()
    if got != dtype:
        _onednn().dnnl_set_default_fpmath_mode(_FPMATH["float32"])
        raise ConfigError(f"precision: MindSpore's CPU matrix products still run in {got}, not {dtype}: a MindSpore "
                          f"kernel ran in this process before the precision was set, and oneDNN fixes its math mode "
                          f"then. Fix: start the run in a new process (python -m gpt_exp ... precision=...).")
    _fpmath_set_in_process = dtype
    log.info("precision: CPU matrix products in %s (oneDNN fpmath mode), tensors in float32", dtype)


def matmul_math_in_effect() -> str:
    """What a MindSpore CPU matrix product computes in right now, read off its result.

    (1 + 2^-9) has no bfloat16 form (7 mantissa bits) and rounds to 1, so a product of ones shows it.
    256^3 is large enough for oneDNN's AMX kernel (small products always run in float32).
    """
    import mindspore
    import numpy as np

    a = mindspore.Tensor(np.full((256, 256), 1 + 2 ** -9, np.float32))
    b = mindspore.Tensor(np.ones((256, 256), np.float32))
    value = float(mindspore.ops.matmul(a, b)[0, 0].asnumpy())
    return "bfloat16" if value == 256.0 else "float32"
