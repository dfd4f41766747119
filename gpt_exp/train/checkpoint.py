"""Checkpoints of everything a resumed run needs, written atomically.

One `.ckpt` file holds the network, the optimizer moments and step, the loss-scaler state and a
JSON record of the loop (step, data position, best metric), so a killed run never leaves a
checkpoint whose parts disagree.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import mindspore
from mindspore import nn


class TrainState(nn.Cell):
    """Groups every stateful part so that one checkpoint holds them all under stable names."""

    def __init__(self, network: nn.Cell, optimizer: nn.Optimizer, loss_scaler):
        super().__init__(auto_prefix=True)
        self.network = network
        self.optimizer = optimizer
        self.loss_scale = loss_scaler.scale_value
        self.loss_scale_counter = loss_scaler.counter

    def named_state(self) -> dict:
        return dict(self.parameters_and_names())


def save(state: TrainState, path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")  # MindSpore insists on the .ckpt suffix
    params = [{"name": name, "data": p} for name, p in state.named_state().items()]
    mindspore.save_checkpoint(params, str(tmp), append_dict={"record": json.dumps(record)})
    os.chmod(tmp, 0o644)  # MindSpore writes 0400: a user could not copy or replace it without chmod
    os.replace(tmp, path)


def load(state: TrainState, path: Path) -> dict:
    """Loads the parameters into `state` in place and returns the loop record."""
    saved = mindspore.load_checkpoint(str(path))
    record = json.loads(str(saved.pop("record")))
    for name, param in state.named_state().items():
        if name not in saved:
            raise KeyError(f"checkpoint {path} has no {name!r}: it was written by a different model or task setup")
        # copy_, not set_data: an already compiled graph keeps reading the parameter's old memory after set_data
        param.copy_(mindspore.Tensor(saved[name].asnumpy(), dtype=param.dtype))
    return record


def read_record(path: Path) -> dict:
    return json.loads(str(mindspore.load_checkpoint(str(path), choice_func=lambda n: n == "record")["record"]))
