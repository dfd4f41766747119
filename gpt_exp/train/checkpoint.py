"""Checkpoints of everything a resumed run needs, written atomically and verified when read.

One `.ckpt` file holds the network, the optimizer moments and step, the loss-scaler state and a
JSON record of the loop (step, data position, best metric), so a killed run never leaves a
checkpoint whose parts disagree. The record also holds a sha256 over the tensors' bytes: MindSpore
reads a file with 4 KB of 0xFF in its middle without complaint (1,024 NaNs in an Adam moment), the
checksum refuses it. The learning-rate table is not saved: it is recomputed from the config, so a
resumed run may train for more steps than the run that wrote the checkpoint.

A run keeps its last `trainer.keep_checkpoints` step checkpoints (`step-000020.ckpt`) and a
symlink `last.ckpt` to the newest, so a damaged newest file falls back to the one before it.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import re
from pathlib import Path

import mindspore
import numpy as np
from mindspore import nn

log = logging.getLogger("gpt_exp")

STEP_FILE = re.compile(r"step-(\d+)\.ckpt$")
NOT_SAVED = ("optimizer.learning_rate.",)  # depends on trainer.max_steps: rebuilt, never restored


class CheckpointError(RuntimeError):
    """A checkpoint file that cannot be trusted: unreadable, damaged, or written by another setup."""


class TrainState(nn.Cell):
    """Groups every stateful part so that one checkpoint holds them all under stable names."""

    def __init__(self, network: nn.Cell, optimizer: nn.Optimizer, loss_scaler):
        super().__init__(auto_prefix=True)
        self.network = network
        self.optimizer = optimizer
        self.loss_scale = loss_scaler.scale_value
        self.loss_scale_counter = loss_scaler.counter

    def named_state(self) -> dict:
        return {name: p for name, p in self.parameters_and_names() if not name.startswith(NOT_SAVED)}


def tensors_sha256(arrays: dict[str, np.ndarray]) -> str:
    """One digest over every tensor's name, dtype, shape and bytes, in name order."""
    digest = hashlib.sha256()
    for name in sorted(arrays):
        array = np.ascontiguousarray(arrays[name])
        digest.update(f"{name}|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    return digest.hexdigest()


def save(state: TrainState, path: Path, record: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".tmp-{os.getpid()}-{path.name}")  # MindSpore insists on the .ckpt suffix
    named = state.named_state()
    arrays = {name: p.asnumpy() for name, p in named.items()}
    record = {**record, "sha256": tensors_sha256(arrays)}
    params = [{"name": name, "data": p} for name, p in named.items()]
    mindspore.save_checkpoint(params, str(tmp), append_dict={"record": json.dumps(record)})
    os.chmod(tmp, 0o644)  # MindSpore writes 0400: a user could not copy or replace it without chmod
    os.replace(tmp, path)


def read_verified(path: Path) -> tuple[dict, dict[str, np.ndarray]]:
    """(record, arrays) of a checkpoint whose tensors match the checksum in its record, else CheckpointError."""
    try:
        saved = mindspore.load_checkpoint(str(path))
        record = json.loads(str(saved.pop("record")))
    except Exception as error:  # MindSpore's "Failed to read the checkpoint file", a damaged record, ...
        raise CheckpointError(f"{path}: unreadable checkpoint ({_first_line(error)})") from None
    arrays = {name: p.asnumpy() for name, p in saved.items()}
    expected = record.get("sha256")
    if expected is None:  # written before checksums: usable, but nothing vouches for it
        log.warning("%s has no checksum (an older gpt_exp wrote it): loaded unverified", path)
    elif tensors_sha256(arrays) != expected:
        raise CheckpointError(f"{path}: damaged checkpoint (its tensors do not match the sha256 in its record)")
    return record, arrays


def load(state: TrainState, path: Path) -> dict:
    """Verifies the file, then loads the parameters into `state` in place and returns the loop record."""
    record, arrays = read_verified(path)
    named = state.named_state()
    for name, param in named.items():
        if name not in arrays:
            raise CheckpointError(f"{path} has no {name!r}: it was written by a different model or task setup")
        if tuple(arrays[name].shape) != tuple(param.shape):
            raise CheckpointError(f"{path}: {name} is {tuple(arrays[name].shape)} in the checkpoint, "
                                  f"{tuple(param.shape)} in this model: a different model setup")
    for name, param in named.items():  # only after every check, so a refused file changes nothing
        # copy_, not set_data: an already compiled graph keeps reading the parameter's old memory after set_data
        param.copy_(mindspore.Tensor(arrays[name], dtype=param.dtype))
    return record


def step_path(folder: Path, step: int) -> Path:
    return folder / f"step-{step:06d}.ckpt"


def step_files(folder: Path) -> list[tuple[int, Path]]:
    """The step checkpoints in `folder`, newest first."""
    found = [(int(m.group(1)), p) for p in folder.glob("step-*.ckpt") if (m := STEP_FILE.search(p.name))]
    return sorted(found, reverse=True)


def save_step(state: TrainState, folder: Path, step: int, record: dict, keep: int) -> Path:
    """Writes step-NNNNNN.ckpt, points last.ckpt at it, and deletes all but the newest `keep` step files."""
    path = step_path(folder, step)
    save(state, path, record)
    link = folder / f".tmp-{os.getpid()}-last.link"
    link.unlink(missing_ok=True)
    link.symlink_to(path.name)  # relative: the run directory may be moved
    os.replace(link, folder / "last.ckpt")
    for _, old in step_files(folder)[keep:]:
        old.unlink(missing_ok=True)
    return path


def candidates(folder: Path) -> list[Path]:
    """The checkpoints a resume tries, best first: what last.ckpt points at, then older step files."""
    ordered = []
    last = folder / "last.ckpt"
    if last.exists():
        ordered.append(last.resolve())
    ordered += [p.resolve() for _, p in step_files(folder)]
    return list(dict.fromkeys(ordered))


def remove_temp_files(folder: Path) -> list[Path]:
    """Deletes what interrupted saves left behind (`.tmp-<pid>-*`); returns what was removed."""
    removed = sorted(folder.glob(".tmp-*")) if folder.is_dir() else []
    for path in removed:
        path.unlink(missing_ok=True)
    return removed


def _first_line(error: Exception) -> str:
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else ''}"
