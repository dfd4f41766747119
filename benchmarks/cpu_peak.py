"""The CPU's peak FLOP/s per instruction set, measured here, for the benchmark's MFU.

A VM's /proc/cpuinfo shows the nominal clock (2.6 GHz on the project's hosts) and hides the turbo clock, and
the FLOP per cycle differ between CPUs with the same ISA (Intel Sapphire Rapids: two 512-bit FMA units, 64
fp32 FLOP/cycle; AMD Zen 4: AVX-512 on 256-bit units, 32). So the peak is measured, not looked up: a small C
program (compiled with gcc at run time) times
- the clock: a chain of dependent integer adds (1 cycle each on every x86 core);
- fp32: independent AVX-512 FMAs (`vfmadd231ps zmm`, 32 FLOP each), on `threads` OpenMP threads;
- bf16: independent AVX512-BF16 dot products (`vdpbf16ps zmm`, 64 FLOP each), where the CPU has them.
AMX (`tdpbf16ps`) needs a kernel permission request and tile set-up; its peak is the documented 1,024 bf16
FLOP per cycle per core (16 x 16 x 32 multiply-adds in 16 cycles) times the measured clock.
"""
from __future__ import annotations

import json
import math
import subprocess
import tempfile
from pathlib import Path

_SOURCE = r"""
#include <immintrin.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + 1e-9 * t.tv_nsec; }

static double clock_ghz(void) {  /* 8 dependent adds per iteration: 8 cycles */
  long n = 40000000, x = 0; double t = now();
  for (long i = 0; i < n; i++)
    __asm__ volatile("add $1,%0\n\tadd $1,%0\n\tadd $1,%0\n\tadd $1,%0\n\tadd $1,%0\n\tadd $1,%0\n\tadd $1,%0\n\tadd $1,%0" : "+r"(x));
  return 8.0 * n / (now() - t) / 1e9;
}

#define CHAINS 12  /* enough independent accumulators to cover the FMA latency on two ports */
static double fp32_gflops(long n) {
  double t = now(); float sink = 0;
  #pragma omp parallel reduction(+:sink)
  {
    __m512 acc[CHAINS], a = _mm512_set1_ps(1e-7f), b = _mm512_set1_ps(0.999f);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
    for (long i = 0; i < n; i++) {
      _Pragma("GCC unroll 12")
      for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_fmadd_ps(acc[c], b, a);
    }
    for (int c = 0; c < CHAINS; c++) sink += _mm512_reduce_add_ps(acc[c]);
  }
  double s = now() - t; if (sink == 1234.5f) puts("");
  return 32.0 * CHAINS * n * omp_get_max_threads() / s / 1e9;
}

#ifdef WITH_BF16
static double bf16_gflops(long n) {
  double t = now(); float sink = 0;
  #pragma omp parallel reduction(+:sink)
  {
    __m512 acc[CHAINS]; __m512bh a = (__m512bh)_mm512_set1_epi16(0x3c00), b = (__m512bh)_mm512_set1_epi16(0x3c00);
    for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_set1_ps((float)c);
    for (long i = 0; i < n; i++) {
      _Pragma("GCC unroll 12")
      for (int c = 0; c < CHAINS; c++) acc[c] = _mm512_dpbf16_ps(acc[c], a, b);
    }
    for (int c = 0; c < CHAINS; c++) sink += _mm512_reduce_add_ps(acc[c]);
  }
  double s = now() - t; if (sink == 1234.5f) puts("");
  return 64.0 * CHAINS * n * omp_get_max_threads() / s / 1e9;
}
#endif

int main(void) {  /* one core; best of 7 short runs each, interleaved, so a busy machine rarely spoils all */
  double ghz = 0, fp32 = 0, bf16 = -1;
  omp_set_num_threads(1);
  for (int r = 0; r < 7; r++) {
    double g = clock_ghz(); if (g > ghz) ghz = g;
    g = fp32_gflops(2000000); if (g > fp32) fp32 = g;
#ifdef WITH_BF16
    if (__builtin_cpu_supports("avx512bf16")) { g = bf16_gflops(2000000); if (g > bf16) bf16 = g; }
#endif
  }
  printf("{\"clock_ghz\": %.3f, \"fp32_core_gflops\": %.2f, \"bf16_core_gflops\": %.2f}\n", ghz, fp32, bf16);
  return 0;
}
"""


def cpu_flags() -> set[str]:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def nominal_clock_ghz() -> float | None:
    """The clock /proc/cpuinfo names (a VM shows its nominal clock, not the turbo it runs at)."""
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("cpu MHz"):
                return float(line.split(":", 1)[1]) / 1000
    except (OSError, ValueError):
        pass
    return None


def _compile(folder: Path) -> Path | None:
    source = folder / "peak.c"
    source.write_text(_SOURCE)
    binary = folder / "peak"
    for extra in (["-mavx512bf16", "-DWITH_BF16"], []):  # an old gcc may not know AVX512-BF16
        done = subprocess.run(["gcc", "-O3", "-fopenmp", "-mavx512f", *extra, str(source), "-o", str(binary)],
                              capture_output=True, text=True)
        if done.returncode == 0:
            return binary
    return None


def measure_peaks(threads: int) -> dict:
    """{'clock_ghz', 'fp32_gflops', 'bf16_gflops', 'amx_gflops', 'how'} for `threads` cores (None: not available).

    Measured on one core: the clock and the FLOP per cycle of each instruction, rounded to a power of two
    (Zen 4: 32 fp32, 64 bf16; Sapphire Rapids: 64 and 128); the peak is FLOP/cycle x clock x threads. A core
    measured alone reaches its turbo clock; with all cores busy the clock may be lower, so MFU is a lower bound.
    """
    flags = cpu_flags()
    peaks = {"clock_ghz": None, "fp32_gflops": None, "bf16_gflops": None, "amx_gflops": None,
             "fp32_flop_per_cycle": None, "bf16_flop_per_cycle": None}
    measured = _run_probe() if "avx512f" in flags else {}
    clock = measured.get("clock_ghz")
    if clock:
        for kind in ("fp32", "bf16"):
            core = measured.get(f"{kind}_core_gflops") or -1
            if core > 0:
                per_cycle = 2 ** round(math.log2(core / clock))
                peaks[f"{kind}_flop_per_cycle"] = per_cycle
                peaks[f"{kind}_gflops"] = per_cycle * clock * threads
    peaks["clock_ghz"] = clock or nominal_clock_ghz()
    if "amx_bf16" in flags and peaks["clock_ghz"]:
        peaks["amx_gflops"] = 1024 * peaks["clock_ghz"] * threads
    peaks["how"] = (f"FLOP/cycle measured on one core (fp32 vfmadd231ps zmm: {peaks['fp32_flop_per_cycle']}, "
                    f"bf16 vdpbf16ps zmm: {peaks['bf16_flop_per_cycle']}; AMX: 1,024 documented) x the measured "
                    f"clock x {threads} threads" if peaks["fp32_gflops"] else
                    "not measured (no gcc or no AVX-512): 64 fp32 / 128 bf16 / 1,024 AMX FLOP per cycle x clock")
    return peaks


def _run_probe() -> dict:
    with tempfile.TemporaryDirectory(prefix="gpt_exp_peak_") as folder:
        try:
            binary = _compile(Path(folder))
            if not binary:
                return {}
            done = subprocess.run([str(binary)], capture_output=True, text=True, timeout=120)
            return json.loads(done.stdout)
        except (OSError, subprocess.TimeoutExpired, json.JSONDecodeError):
            return {}


def peak_for(isa_kind: str, peaks: dict, threads: int) -> float:
    """GFLOP/s of the kind of product a row runs: 'fp32', 'avx512_bf16' or 'amx'."""
    measured = {"fp32": peaks.get("fp32_gflops"), "avx512_bf16": peaks.get("bf16_gflops"),
                "amx": peaks.get("amx_gflops")}.get(isa_kind)
    if measured:
        return measured
    clock = peaks.get("clock_ghz") or 2.6
    return {"fp32": 64, "avx512_bf16": 128, "amx": 1024}.get(isa_kind, 64) * clock * threads
