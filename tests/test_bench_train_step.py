"""The speed benchmark's --json rows, on gpt2-tiny with a few tiny steps (never its speed)."""
from __future__ import annotations

import json
import subprocess
import sys
from types import SimpleNamespace

import pytest
from conftest import ROOT

sys.path.insert(0, str(ROOT / "benchmarks"))
import bench_train_step  # noqa: E402
import cpu_peak  # noqa: E402

KEYS = {"model", "precision", "side", "setup", "tokens_per_s", "ms_per_step", "mfu", "peak_gflops", "isa",
        "product_kind", "cpu", "first_step_s", "load", "version", "note", "peak_rss_mb"}


def test_models_come_from_conf_model():
    models = bench_train_step.gpt2_models()
    assert {"gpt2-tiny", "gpt2"} <= set(models) and "gpt1" not in models  # gpt1 is another architecture
    assert models["gpt2"]["n_embd"] == 768 and models["gpt2-tiny"]["n_layer"] == 4


def test_the_peak_is_flop_per_cycle_times_the_clock():
    peaks = cpu_peak.measure_peaks(2)
    if peaks["fp32_gflops"] is None:
        pytest.skip(f"no gcc or no AVX-512 here: {peaks['how']}")
    assert peaks["fp32_flop_per_cycle"] in (16, 32, 64)  # 32 on AMD Zen 4, 64 on Intel with two FMA units
    assert peaks["fp32_gflops"] == pytest.approx(peaks["fp32_flop_per_cycle"] * peaks["clock_ghz"] * 2)
    assert 0.5 < peaks["clock_ghz"] < 7


@pytest.mark.slow  # ~30 s: a MindSpore compile and a PyTorch worker
def test_the_json_has_one_row_per_side_and_setting(tmp_path):
    python = bench_train_step.torch_python(SimpleNamespace(torch_python=None))
    if python is None:
        pytest.skip("no Python with torch + transformers (set GPT_EXP_BENCH_PYTHON)")
    out = tmp_path / "bench.json"
    done = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "bench_train_step.py"), "--models", "gpt2-tiny",
                           "--precisions", "fp32", "--torch-modes", "eager", "--torch-python", python, "--steps", "1",
                           "--repeats", "2", "--warmup", "0", "--batch-size", "2", "--seq-len", "16",
                           "--log-dir", str(tmp_path / "logs"), "--json", str(out)],
                          capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    rows = json.loads(out.read_text())
    assert [(r["side"], r["setup"]) for r in rows] == [("gpt_exp", "fp32"), ("pytorch", "eager fp32")]
    for row in rows:
        assert KEYS <= set(row), KEYS - set(row)
        assert row["tokens_per_s"] * row["ms_per_step"] / 1000 == pytest.approx(2 * 16)
        assert 0 < row["mfu"] < 1 and row["product_kind"] == "fp32" and row["cpu"] and row["steps"] == 2
    assert rows[0]["isa"].startswith("oneDNN (ISA ") and "PyTorch" in rows[1]["version"]
    assert "| gpt2-tiny | gpt_exp | fp32 |" in done.stdout and "CPU: " in done.stdout
