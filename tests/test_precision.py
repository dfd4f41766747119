"""Mixed precision and loss scaling: overflow handling, which precisions train on this device, clear refusals."""
from __future__ import annotations

import os
import subprocess
import sys

import mindspore as ms
import numpy as np
import pytest
from conftest import ROOT, TINY, compose

from gpt_exp.errors import ConfigError
from gpt_exp.backend.cpu_matmul import bf16_fpmath_works, bf16_products_route
from gpt_exp.backend.precision import check_precision
from gpt_exp.tracking import read_metrics


def _tiny_step(precision_overrides, accum=1, compile=True):
    """A tiny GPT-2 LM network with gpt_exp's own optimizer, loss scaler and train step, on random tokens."""
    from gpt_exp.model.build import build_model
    from gpt_exp.backend.precision import apply_precision, make_loss_scaler
    from gpt_exp.tasks.lm import CausalLMNetwork
    from gpt_exp.train.optim import build_optimizer
    from gpt_exp.train.step import make_train_step

    cfg = compose(TINY + ["model.dropout=0.0"] + precision_overrides)
    ms.set_seed(0)
    network = apply_precision(CausalLMNetwork(build_model(cfg.model, 1024)), cfg.precision)
    network.set_train(True)
    optimizer, _ = build_optimizer(network, cfg.optimizer, cfg.scheduler, 100)
    scaler = make_loss_scaler(cfg.precision)
    step = make_train_step(network, optimizer, scaler, accum, cfg.trainer.max_grad_norm, compile)
    return network, optimizer, scaler, step


def _weights(network) -> dict:
    return {p.name: p.asnumpy().copy() for p in network.trainable_params()}


def _tokens(seed: int, accum: int = 1) -> ms.Tensor:
    return ms.Tensor(np.random.default_rng(seed).integers(0, 1024, (accum, 8, 65)).astype(np.int32))


def test_forced_overflow_skips_the_step_keeps_the_weights_and_lowers_the_scale():
    # fp16 O2 with a scale of 2^40: the float32 loss times 2^40 is finite, its gradients are not in fp16
    network, optimizer, scaler, step = _tiny_step(
        ["precision=fp16", "precision.loss_scale.init=1099511627776", "precision.loss_scale.factor=4"])
    before = _weights(network)
    loss, parts, grad_norm, finite = step(_tokens(0))
    assert not bool(finite.asnumpy())
    assert not np.isfinite(float(grad_norm.asnumpy()))
    after = _weights(network)
    assert all(np.array_equal(before[name], after[name]) for name in before), "a skipped step changed weights"
    assert float(scaler.scale_value.asnumpy()) == 2.0 ** 40 / 4
    assert int(optimizer.global_step.asnumpy()) == 0  # the optimizer never ran: no lr-schedule step either
    assert np.isfinite(float(loss.asnumpy()))  # the reported loss is unscaled with the scale of its own step

    # the scale keeps falling until the gradients fit, then the model trains
    for seed in range(1, 25):
        _, _, _, finite = step(_tokens(seed))
        if bool(finite.asnumpy()):
            break
    assert bool(finite.asnumpy()), f"still overflowing at scale {scaler.scale_value.asnumpy()}"
    assert any(not np.array_equal(before[n], p.asnumpy()) for n, p in ((p.name, p) for p in network.trainable_params()))


def test_scale_grows_after_a_window_of_finite_steps():
    _, _, scaler, step = _tiny_step(["precision=fp16", "precision.loss_scale.init=256",
                                     "precision.loss_scale.window=3"])
    scales = []
    for seed in range(6):
        _, _, _, finite = step(_tokens(seed))
        assert bool(finite.asnumpy())
        scales.append(float(scaler.scale_value.asnumpy()))
    assert scales == [256, 256, 512, 512, 512, 1024]


def test_fp16_reports_the_same_loss_and_norm_as_fp32_on_the_first_step():
    # the reported loss and gradient norm are unscaled: fp16 at scale 2^16 agrees with fp32 at scale 1
    values = {}
    for name in ("fp32", "fp16"):
        _, _, _, step = _tiny_step([f"precision={name}"])
        loss, _, norm, finite = step(_tokens(7))
        assert bool(finite.asnumpy())
        values[name] = float(loss.asnumpy()), float(norm.asnumpy())
    assert values["fp16"][0] == pytest.approx(values["fp32"][0], rel=2e-3)
    assert values["fp16"][1] == pytest.approx(values["fp32"][1], rel=5e-2)


def test_amp_o1_runs_the_blocks_products_in_fp16():
    # O1 rewrites the network's source and silently leaves out what it cannot follow: with the block loop
    # written `for layer, block in enumerate(self.h)` it skipped every block and computed fp32's loss exactly
    losses = {}
    for name in ("fp32", "fp16"):
        _, _, _, step = _tiny_step([f"precision={name}"] + (["precision.amp_level=O1"] if name == "fp16" else []))
        losses[name] = float(step(_tokens(7))[0].asnumpy())
    assert losses["fp16"] != losses["fp32"] and losses["fp16"] == pytest.approx(losses["fp32"], rel=2e-3), losses


@pytest.mark.slow
def test_fp16_trains_in_the_runner_and_logs_scale_and_skipped_steps(tmp_path, shakespeare_excerpt):
    from gpt_exp.run import train

    run_dir = tmp_path / "run"
    overrides = TINY + shakespeare_excerpt + ["precision=fp16", "precision.loss_scale.init=1099511627776", "trainer.max_steps=40",
                        "trainer.eval_interval=40", "task.sample_prompts=[]"]
    train(compose(overrides), run_dir, "fp16")
    rows = [r for r in read_metrics(run_dir) if "train/loss" in r]
    scales = [r["train/loss_scale"] for r in rows]
    skipped = [r["train/skipped_steps"] for r in rows]
    assert scales[0] < 2.0 ** 40 and scales == sorted(scales, reverse=True)  # halved on every overflow
    assert 1 <= skipped[-1] < 30 and skipped == sorted(skipped)
    losses = [r["train/loss"] for r in rows]
    assert losses[-1] < losses[0] - 0.5 and losses[-1] < np.log(1024) - 0.5, losses


@pytest.mark.slow
def test_bf16_matmul_trains_on_this_cpu_in_a_fresh_process(tmp_path, shakespeare_excerpt):
    if bf16_products_route() is None:
        pytest.skip("neither oneDNN's fpmath mode nor the custom op computes in bf16 here: refused (tested below)")
    run_dir = tmp_path / "run"
    args = TINY + shakespeare_excerpt + ["precision=bf16_matmul", "trainer.max_steps=40", "trainer.eval_interval=40",
                   "task.sample_prompts=[]", f"hydra.run.dir={run_dir}", f"paths.output_dir={run_dir}"]
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    done = subprocess.run([sys.executable, "-m", "gpt_exp", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "CPU matrix products in bfloat16" in done.stdout + done.stderr
    rows = [r for r in read_metrics(run_dir) if "train/loss" in r]
    losses = [r["train/loss"] for r in rows]
    assert losses[-1] < losses[0] - 0.5 and losses[-1] < np.log(1024) - 0.5, losses
    assert rows[-1]["train/skipped_steps"] == 0 and rows[-1]["train/loss_scale"] == 1.0


@pytest.mark.parametrize("level", ["O1", "O3"])  # O2 is the default, trained in the runner above
def test_every_fp16_amp_level_trains(level):
    _, _, scaler, step = _tiny_step(["precision=fp16", f"precision.amp_level={level}", "optimizer.lr=1e-2",
                                     "precision.loss_scale.init=1024"])
    batch = _tokens(3)
    losses = [float(step(batch)[0].asnumpy()) for _ in range(12)]
    assert all(np.isfinite(losses)) and losses[-1] < losses[0] - 1.0, losses


def test_bf16_products_after_the_first_kernel_are_refused():
    # oneDNN fixes its math mode at the first kernel of a process: asking later must fail, not compute in fp32
    from gpt_exp.backend.cpu_matmul import matmul_math_in_effect, set_matmul_math

    assert matmul_math_in_effect() == "float32"  # runs a kernel: from here on the mode is fixed
    with pytest.raises(ConfigError, match="new process"):
        set_matmul_math("bfloat16")
    assert matmul_math_in_effect() == "float32"


@pytest.mark.parametrize("overrides, target, match", [
    (["precision=bf16"], "CPU", r"precision=bf16 \(bfloat16\) on device=cpu.*precision=bf16_matmul"),
    (["precision=bf16_matmul"], "GPU", "precision=bf16 on GPU"),
    (["precision=fp32", "precision.dtype=float16"], "CPU", "amp_level=O0 casts nothing"),
    (["precision=fp16", "precision.amp_level=O4"], "CPU", "precision.amp_level='O4'"),
    (["precision=fp16", "precision.loss_scale.factor=0.5"], "CPU", "precision.loss_scale"),
    (["precision=fp16", "precision.loss_scale.init=0.5"], "CPU", "init must be >= 1"),
    (["precision=fp32", "precision.matmul_dtype=float16"], "CPU", "precision.matmul_dtype"),
    (["precision=fp16", "precision.matmul_dtype=bfloat16"], "CPU", "apply to float32 networks"),
])
def test_precision_config_errors_name_the_key_and_the_fix(overrides, target, match):
    with pytest.raises(ConfigError, match=match):
        check_precision(compose(overrides).precision, target)


def test_every_precision_option_is_valid_where_it_is_meant_to_run():
    for name, target in (("fp32", "CPU"), ("fp16", "CPU"), ("bf16", "Ascend"), ("bf16", "GPU"), ("fp32", "GPU")):
        check_precision(compose([f"precision={name}"]).precision, target)
    if bf16_products_route() is not None:
        check_precision(compose(["precision=bf16_matmul"]).precision, "CPU")
    else:
        with pytest.raises(ConfigError, match=r"oneDNN ISA .*computes float32 matrix products in float32.*Fix: "):
            check_precision(compose(["precision=bf16_matmul"]).precision, "CPU")
    if not bf16_fpmath_works():  # oneDNN's fpmath mode asked for by name: refused without AMX
        with pytest.raises(ConfigError, match=r"oneDNN ISA .*computes float32 matrix products in float32.*Fix: "):
            check_precision(compose(["precision=bf16_matmul", "precision.matmul_kernel=onednn_fpmath"]).precision,
                            "CPU")


def test_bf16_matmul_is_refused_fast_from_the_cli_where_the_probe_says_no(tmp_path):
    """Where oneDNN cannot compute bf16 products, the user gets one line and exit 2, before any data work.

    Without AMX oneDNN's fpmath mode is refused when asked for by name (auto takes the custom op there).
    """
    import time

    kernel = "auto" if bf16_products_route() is None else "onednn_fpmath"
    if bf16_fpmath_works():
        pytest.skip("bf16 products work here: test_bf16_matmul_trains_on_this_cpu_in_a_fresh_process trains with them")
    run_dir = tmp_path / "run"
    started = time.monotonic()
    done = subprocess.run([sys.executable, "-m", "gpt_exp", *TINY, "precision=bf16_matmul",
                           f"precision.matmul_kernel={kernel}", f"paths.output_dir={run_dir}",
                           f"hydra.run.dir={run_dir}"], cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "GPT_EXP_OFFLINE": "1"})  # a data download would fail, not wait
    assert done.returncode == 2, done.stderr[-2000:]
    assert time.monotonic() - started < 20  # two interpreters start (the CLI and the probe): ~6 s here
    assert f"config error: precision=bf16_matmul (precision.matmul_kernel={kernel}) on device=cpu" in done.stderr
    assert "Traceback" not in done.stderr and not (run_dir / "checkpoints").exists()
