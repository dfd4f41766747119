"""A checkpoint restores everything, and compiled graphs see the restored values."""
from __future__ import annotations

import mindspore
import numpy as np
from conftest import compose
from helpers import read_checkpoint_record
from mindspore import Tensor

from gpt_exp.model import GPT, GPTConfig
from gpt_exp.backend.precision import make_loss_scaler
from gpt_exp.tasks.lm import CausalLMNetwork
from gpt_exp.train import checkpoint
from gpt_exp.train.optim import build_optimizer
from gpt_exp.train.step import make_eval_step, make_train_step


def test_restored_weights_reach_the_compiled_graphs(tmp_path):
    mindspore.set_seed(0)
    cfg = compose(["device=cpu"])
    network = CausalLMNetwork(GPT(GPTConfig("gpt2", vocab_size=64, n_positions=32, n_embd=32, n_layer=1,
                                            n_head=2, dropout=0.0)))
    optimizer, _ = build_optimizer(network, cfg.optimizer, cfg.scheduler, max_steps=20)
    scaler = make_loss_scaler(cfg.precision)
    state = checkpoint.TrainState(network, optimizer, scaler)
    step = make_train_step(network, optimizer, scaler, accum_steps=1, max_grad_norm=1.0, compile=True)
    evaluate = make_eval_step(network, compile=True)
    tokens = Tensor(np.random.default_rng(0).integers(0, 64, size=(1, 4, 17)).astype(np.int32))

    for _ in range(2):
        step(tokens)
    saved_loss = float(evaluate(tokens[0])[0].asnumpy())
    checkpoint.save(state, tmp_path / "last.ckpt", {"step": 2})
    for _ in range(3):
        step(tokens)
    assert abs(float(evaluate(tokens[0])[0].asnumpy()) - saved_loss) > 1e-3
    assert int(optimizer.global_step.asnumpy()[0]) == 5

    record = checkpoint.load(state, tmp_path / "last.ckpt")
    assert record["step"] == 2 and read_checkpoint_record(tmp_path / "last.ckpt")["step"] == 2
    assert float(evaluate(tokens[0])[0].asnumpy()) == saved_loss
    assert int(optimizer.global_step.asnumpy()[0]) == 2
