"""bf16 matrix products with float32 accumulation on CPUs with AVX512-BF16 but no AMX, as MindSpore custom ops.

MindSpore 2.10's CPU MatMul hands oneDNN float32 operands; oneDNN down-converts them to bf16 (its "fpmath
mode", cpu_matmul.set_matmul_math) only on AMX. Given bf16 operands, oneDNN's matmul runs ~1.9x faster than
float32 on AVX512-BF16 too (AMD Zen 4, Intel Cooper Lake). gpt_exp/backend/kernels/bf16_matmul.cpp does that: it
converts both float32 operands to bf16 (round to nearest even), multiplies in oneDNN (the libdnnl.so.3 inside
MindSpore's wheel) and writes float32. It is compiled with g++ at first use into the cache, keyed by its source,
its flags and the MindSpore version, and wrapped as ahead-of-time `ops.Custom` operators with a hand-written
backward (dX = dY W^T, dW = X^T dY, on the same kernel). Tensors and weights stay float32.

Whether this CPU really runs them in bf16 is decided in gpt_exp/backend/precision.py (bf16_products_route).
"""
from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import mindspore
from mindspore import nn, ops

SOURCE = Path(__file__).resolve().parent / "kernels" / "bf16_matmul.cpp"
_FLAGS = ("-O2", "-std=c++17", "-shared", "-fPIC", "-pthread")


class KernelUnavailable(RuntimeError):
    """The custom kernel could not be built or loaded here (no g++, no oneDNN in MindSpore's wheel, ...)."""


def kernel_cache_dir() -> Path:
    """Where compiled kernels live: paths.cache_dir's default ($GPT_EXP_CACHE or ~/.cache/gpt_exp) + kernels/."""
    root = os.environ.get("GPT_EXP_CACHE") or Path.home() / ".cache" / "gpt_exp"
    return Path(root).expanduser() / "kernels"


def _onednn_path() -> Path:
    return Path(mindspore.__file__).resolve().parent / "lib" / "libdnnl.so.3"


@functools.lru_cache(maxsize=None)
def kernel_library() -> Path:
    """The compiled kernel, built once per source, flags and MindSpore version (a sweep's jobs share it)."""
    onednn = _onednn_path()
    if not onednn.exists():
        raise KernelUnavailable(f"MindSpore {mindspore.__version__} has no {onednn.name} in {onednn.parent}")
    key = hashlib.sha256(SOURCE.read_bytes() + " ".join(_FLAGS).encode() + mindspore.__version__.encode()
                         + str(onednn).encode()).hexdigest()[:16]
    target = kernel_cache_dir() / f"bf16_matmul-{key}.so"
    if target.exists():
        return target
    compiler = shutil.which(os.environ.get("CXX", "g++"))
    if compiler is None:
        raise KernelUnavailable("no C++ compiler (g++ or $CXX) on PATH to build the bf16 product kernel")
    target.parent.mkdir(parents=True, exist_ok=True)
    # build beside the target, then rename: jobs of a sweep that compile at once never load a half-written file
    with tempfile.TemporaryDirectory(dir=target.parent) as scratch:
        built = Path(scratch) / target.name
        command = [compiler, *_FLAGS, str(SOURCE), "-o", str(built), str(onednn), f"-Wl,-rpath,{onednn.parent}"]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300)
        if done.returncode != 0:
            raise KernelUnavailable(f"{' '.join(command)} failed: {done.stderr[-1500:]}")
        os.replace(built, target)
    return target


@functools.lru_cache(maxsize=None)
def _library() -> ctypes.CDLL:
    """The kernel as loaded in this process (the same copy MindSpore's custom ops call: one dlopen per path)."""
    library = ctypes.CDLL(str(kernel_library()))
    library.Bf16MatMulImplementation.restype = ctypes.c_char_p
    library.Bf16MatMulImplementation.argtypes = [ctypes.c_int64] * 3
    library.Bf16MatMulSetThreads.argtypes = [ctypes.c_int]
    library.Bf16MatMulSeconds.restype = ctypes.c_double
    return library


def implementation(m: int = 256, k: int = 256, n: int = 256) -> str:
    """The oneDNN implementation a bf16 product runs on here, e.g. brg_matmul:avx512_core_bf16."""
    return _library().Bf16MatMulImplementation(m, k, n).decode()


def set_threads(threads: int) -> None:
    """Threads of the kernel's own pool (MindSpore's runtime threads wait while a product runs)."""
    if _library().Bf16MatMulSetThreads(int(threads)) != 0:
        raise KernelUnavailable(f"the bf16 product kernel could not start {threads} threads")


def seconds_in_products() -> float:
    """Wall seconds this process has spent in the kernel's products (conversions included): a step's share."""
    return _library().Bf16MatMulSeconds()


def multiply_numpy(a, b):
    """a @ b through the kernel, outside MindSpore (float32 in, float32 out): what the probe uses."""
    import numpy as np

    a, b = np.ascontiguousarray(a, np.float32), np.ascontiguousarray(b, np.float32)
    out = np.empty((a.shape[0], b.shape[1]), np.float32)
    arrays = (a, b, out)
    params = (ctypes.c_void_p * 3)(*(x.ctypes.data for x in arrays))
    ndims = (ctypes.c_int * 3)(2, 2, 2)
    shape_rows = [(ctypes.c_int64 * 2)(*x.shape) for x in arrays]
    shapes = (ctypes.POINTER(ctypes.c_int64) * 3)(*(ctypes.cast(s, ctypes.POINTER(ctypes.c_int64)) for s in shape_rows))
    dtypes = (ctypes.c_char_p * 3)(*([b"float32"] * 3))
    status = _library().MatMulNN(3, params, ndims, shapes, dtypes, None, None)
    if status != 0:
        raise KernelUnavailable(f"the bf16 product kernel failed (status {status})")
    return out


def _custom(entry: str, out_shape) -> ops.Custom:
    return ops.Custom(f"{kernel_library()}:{entry}", out_shape=out_shape, out_dtype=mindspore.float32,
                      func_type="aot")


class _Bf16Kernels(nn.Cell):
    """The kernel's three layouts as custom ops: a @ b, a @ b^T and a^T @ b (forward and backward of both
    products below go through them; autodiff cannot see into the kernel)."""

    def __init__(self):
        super().__init__()
        self.nn = _custom("MatMulNN", lambda a, b: [a[0], b[1]])
        self.nt = _custom("MatMulNT", lambda a, b: [a[0], b[0]])
        self.tn = _custom("MatMulTN", lambda a, b: [a[1], b[1]])


class Bf16Product(_Bf16Kernels):
    """x [M, K] @ w [K, N] in bf16 with float32 accumulation; float32 in and out.

    backward: dx = dy @ w^T, dw = x^T @ dy, both through the same kernel (autodiff cannot see into it).
    """

    def construct(self, x, w):
        return self.nn(x, w)

    def bprop(self, x, w, out, dout):
        return self.nt(dout, w), self.tn(x, dout)


class Bf16ProductWithTransposed(_Bf16Kernels):
    """x [M, K] @ w^T for w [N, K] (the tied LM head: hidden @ wte^T), bf16 with float32 accumulation.

    backward: dx = dy @ w, dw = dy^T @ x.
    """

    def construct(self, x, w):
        return self.nt(x, w)

    def bprop(self, x, w, out, dout):
        return self.nn(dout, w), self.tn(dout, x)
