"""bf16 products through gpt_exp's custom operator (CPUs with AVX512-BF16 or AMX): numerics, gradients, training."""
from __future__ import annotations

import mindspore as ms
import numpy as np
import pytest
from conftest import TINY, compose

from gpt_exp.errors import ConfigError
from gpt_exp.backend.cpu_matmul import bf16_custom_op_works, bf16_fpmath_works, bf16_products_route
from gpt_exp.backend.precision import check_precision

needs_custom_op = pytest.mark.skipif(not bf16_custom_op_works(),
                                     reason="the probe finds no bf16 products through the custom op on this CPU")


def to_bf16(x: np.ndarray) -> np.ndarray:
    """float32 rounded to bfloat16 (nearest even), kept as float32: what the kernel feeds oneDNN."""
    bits = x.astype(np.float32).view(np.uint32).astype(np.uint64)
    bits = (bits + 0x7FFF + ((bits >> 16) & 1)) & 0xFFFF0000
    return bits.astype(np.uint32).view(np.float32)


def _grads(cell, x, w, dy, compile):
    loss = lambda a, b: (cell(a, b) * ms.Tensor(dy)).sum()  # noqa: E731
    grad = ms.value_and_grad(loss, grad_position=(0, 1))
    _, (dx, dw) = (ms.jit(grad) if compile else grad)(ms.Tensor(x), ms.Tensor(w))
    return cell(ms.Tensor(x), ms.Tensor(w)).asnumpy(), dx.asnumpy(), dw.asnumpy()


@needs_custom_op
@pytest.mark.parametrize("compile", [False, True], ids=["pynative", "jit"])
def test_dense_product_and_its_gradients_are_bf16_products_of_the_operands(compile):
    from gpt_exp.backend.bf16_products import Bf16Product

    rng = np.random.default_rng(0)
    x, w, dy = (rng.standard_normal(s).astype(np.float32) for s in ((24, 40), (40, 72), (24, 72)))
    y, dx, dw = _grads(Bf16Product(), x, w, dy, compile)
    bx, bw, bdy = to_bf16(x), to_bf16(w), to_bf16(dy)
    np.testing.assert_allclose(y, bx @ bw, rtol=1e-5, atol=1e-5)  # float32 accumulation of bf16 operands
    np.testing.assert_allclose(dx, bdy @ bw.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, bx.T @ bdy, rtol=1e-5, atol=1e-5)
    assert np.abs(y - x @ w).max() > 1e-3  # and not float32 products: bf16 rounding shows


@needs_custom_op
@pytest.mark.parametrize("compile", [False, True], ids=["pynative", "jit"])
def test_transposed_product_for_the_tied_lm_head_and_its_gradients(compile):
    from gpt_exp.backend.bf16_products import Bf16ProductWithTransposed

    rng = np.random.default_rng(1)
    x, table, dy = (rng.standard_normal(s).astype(np.float32) for s in ((16, 32), (50, 32), (16, 50)))
    y, dx, dtable = _grads(Bf16ProductWithTransposed(), x, table, dy, compile)
    bx, bt, bdy = to_bf16(x), to_bf16(table), to_bf16(dy)
    np.testing.assert_allclose(y, bx @ bt.T, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dx, bdy @ bt, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dtable, bdy.T @ bx, rtol=1e-5, atol=1e-5)


@needs_custom_op
def test_bf16_products_follow_the_fp32_loss_curve_of_a_tiny_gpt2():
    """The same tiny GPT-2, data and seed: 30 steps with bf16 products stay within bf16's tolerance of fp32."""
    from gpt_exp.model.build import build_model
    from gpt_exp.backend.precision import choose_cpu_products, make_loss_scaler, setup_precision
    from gpt_exp.tasks.lm import CausalLMNetwork
    from gpt_exp.train.optim import build_optimizer
    from gpt_exp.train.step import make_train_step

    batch = ms.Tensor(np.random.default_rng(0).integers(0, 64, (1, 8, 65)).astype(np.int32))
    losses = {}
    for name, kernel in (("fp32", "auto"), ("bf16_matmul", "custom_op")):
        cfg = compose(TINY + ["model.dropout=0.0", f"precision={name}"]
                      + ([f"precision.matmul_kernel={kernel}"] if name == "bf16_matmul" else []))
        check_precision(cfg.precision, "CPU")
        setup_precision(cfg.precision, "CPU")
        ms.set_seed(0)
        model = build_model(cfg.model, 1024)
        switched = choose_cpu_products(model, cfg.precision, "CPU")
        if name == "bf16_matmul":
            assert switched == 2 * 4 + 1  # 2 blocks x (c_attn, attn c_proj, c_fc, mlp c_proj) + the LM head
        network = CausalLMNetwork(model)
        network.set_train(True)
        optimizer, _ = build_optimizer(network, cfg.optimizer, cfg.scheduler, 100)
        step = make_train_step(network, optimizer, make_loss_scaler(cfg.precision), 1, cfg.trainer.max_grad_norm,
                               True)
        losses[name] = np.array([float(step(batch)[0].asnumpy()) for _ in range(30)])
    fp32, bf16 = losses["fp32"], losses["bf16_matmul"]
    assert fp32[-1] < fp32[0] - 2.0, fp32  # it learns, so the comparison covers a real curve
    np.testing.assert_allclose(bf16, fp32, rtol=1e-2)
    assert np.abs(bf16 - fp32).max() > 1e-6  # the products really ran in bf16


def test_the_probe_picks_a_way_that_computes_in_bf16_or_refuses():
    route = bf16_products_route("auto")
    assert route == ("onednn_fpmath" if bf16_fpmath_works() else "custom_op" if bf16_custom_op_works() else None)
    if route is None:
        with pytest.raises(ConfigError, match="Fix: precision=fp32"):
            check_precision(compose(["precision=bf16_matmul"]).precision, "CPU")
    else:
        check_precision(compose(["precision=bf16_matmul"]).precision, "CPU")


@pytest.mark.skipif(bf16_fpmath_works() or not bf16_custom_op_works(),
                    reason="for CPUs where only the custom op computes in bf16 (AVX512-BF16 without AMX)")
def test_asking_for_fpmath_where_only_the_custom_op_works_points_to_auto():
    cfg = compose(["precision=bf16_matmul", "precision.matmul_kernel=onednn_fpmath"])
    with pytest.raises(ConfigError, match=r"needs AMX\. Fix: precision.matmul_kernel=auto \(picks custom_op"):
        check_precision(cfg.precision, "CPU")
    check_precision(compose(["precision=bf16_matmul", "precision.matmul_kernel=custom_op"]).precision, "CPU")


def test_an_unknown_matmul_kernel_is_refused():
    with pytest.raises(ConfigError, match="precision.matmul_kernel='cublas'"):
        check_precision(compose(["precision=bf16_matmul", "precision.matmul_kernel=cublas"]).precision, "CPU")
