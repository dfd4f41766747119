"""Graph mode: the jit-compiled train step computes what PyNative computes, and compiles once per run."""
from __future__ import annotations

import mindspore as ms
import numpy as np
from conftest import TINY, compose
from mindspore.graph import api as graph_api


def _network(seed: int = 0):
    from gpt_exp.model.build import build_model
    from gpt_exp.tasks.lm import CausalLMNetwork

    cfg = compose(TINY + ["model.dropout=0.0"])
    ms.set_seed(seed)
    network = CausalLMNetwork(build_model(cfg.model, 1024))
    network.set_train(True)
    return cfg, network


def _train_step(network, cfg, compile: bool, precision="fp32", accum=2):
    from gpt_exp.backend.precision import make_loss_scaler
    from gpt_exp.train.optim import build_optimizer
    from gpt_exp.train.step import make_train_step

    optimizer, _ = build_optimizer(network, cfg.optimizer, cfg.scheduler, 50)
    scaler = make_loss_scaler(compose([f"precision={precision}"]).precision)
    return make_train_step(network, optimizer, scaler, accum, 0.5, compile)  # 0.5: clipping is active


def _batch(seed: int, accum=2) -> ms.Tensor:
    return ms.Tensor(np.random.default_rng(seed).integers(0, 1024, (accum, 8, 65)).astype(np.int32))


def _copy_weights(source, target):
    for s, t in zip(source.trainable_params(), target.trainable_params()):
        t.copy_(ms.Tensor(s.asnumpy()))


def test_jit_gradients_equal_pynative():
    _, network = _network()

    def loss_fn(tokens):
        return network(tokens)[0]

    grad_fn = ms.value_and_grad(loss_fn, None, network.trainable_params())
    jit_grad_fn = ms.jit(grad_fn)
    tokens = _batch(1)[0]
    loss, grads = grad_fn(tokens)
    jit_loss, jit_grads = jit_grad_fn(tokens)
    np.testing.assert_allclose(jit_loss.asnumpy(), loss.asnumpy(), rtol=1e-6)
    for p, g, h in zip(network.trainable_params(), grads, jit_grads):
        np.testing.assert_allclose(h.asnumpy(), g.asnumpy(), rtol=1e-4, atol=1e-6, err_msg=p.name)


def test_the_whole_step_in_graph_mode_matches_pynative():
    # accumulation over 2 micro-batches, loss scaling (fp16's config on fp32: scale 2^16), clipping, AdamW
    cfg, eager_net = _network()
    _, graph_net = _network(seed=1)
    _copy_weights(eager_net, graph_net)
    eager = _train_step(eager_net, cfg, compile=False, precision="fp16")
    graph = _train_step(graph_net, cfg, compile=True, precision="fp16")
    for seed in range(3):
        batch = _batch(10 + seed)
        e_loss, e_parts, e_norm, e_finite = eager(batch)
        g_loss, g_parts, g_norm, g_finite = graph(batch)
        assert bool(e_finite.asnumpy()) and bool(g_finite.asnumpy())
        np.testing.assert_allclose(g_loss.asnumpy(), e_loss.asnumpy(), rtol=1e-5)
        np.testing.assert_allclose(g_parts[0].asnumpy(), e_parts[0].asnumpy(), rtol=1e-5)
        np.testing.assert_allclose(g_norm.asnumpy(), e_norm.asnumpy(), rtol=1e-4)
    for e, g in zip(eager_net.trainable_params(), graph_net.trainable_params()):
        np.testing.assert_allclose(g.asnumpy(), e.asnumpy(), rtol=1e-4, atol=1e-6, err_msg=e.name)


def _train_step_compiles() -> int:  # the jit of the TrainStep Cell's construct
    return sum("gpt_exp.train.step.construct" in phase for phase in graph_api.ms_compile_cache)


def test_one_compile_for_every_step_of_a_run():
    cfg, network = _network()
    step = _train_step(network, cfg, compile=True, accum=1)
    before = _train_step_compiles()
    for seed in range(5):
        loss, *_ = step(_batch(seed, accum=1))
        loss.asnumpy()
    assert _train_step_compiles() - before == 1


def test_the_runner_compiles_its_train_step_once(tmp_path, shakespeare_excerpt):
    from gpt_exp.run import train

    before = _train_step_compiles()
    train(compose(TINY + shakespeare_excerpt + ["trainer.max_steps=12", "trainer.eval_interval=6", "task.sample_prompts=[]"]),
          tmp_path / "run", "compile-once")
    assert _train_step_compiles() - before == 1  # evaluation between steps does not force a recompile
