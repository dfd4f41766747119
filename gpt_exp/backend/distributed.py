"""The distributed group: one process alone, or data parallel over the processes msrun starts.

Data parallel (conf/distributed/data_parallel.yaml): MindSpore's launcher `msrun` starts one
process per device, on one host or many, and tells each its rank through the environment;
`mindspore.communication.init()` connects them. Every rank builds the same model from the same
seed, trains on its own 1/N of the training data, and the train step averages the gradients over
the ranks (an all-reduce) before clipping and the optimizer, so all ranks take the same step and
keep identical weights. The effective batch is N x trainer.batch_size x trainer.grad_accum_steps.
Only rank 0 writes anything: metrics, W&B run, checkpoints, exported model, samples.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np
from omegaconf import DictConfig, OmegaConf

from gpt_exp.backend import device as devices
from gpt_exp.errors import ConfigError

log = logging.getLogger("gpt_exp")

MSRUN_EXAMPLE = ("msrun --worker_num=2 --local_worker_num=2 --master_port=8118 --log_dir=msrun_logs --join=True "
                 "$(which gpt-exp) distributed=data_parallel hydra.run.dir=outputs/dp_run")


@dataclass(frozen=True)
class World:
    """This process's place among the training processes."""

    rank: int = 0
    size: int = 1

    @property
    def is_main(self) -> bool:
        """Rank 0 logs and saves for everyone."""
        return self.rank == 0

    def shard(self, arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Rank r keeps rows r, r+N, r+2N, ... of the largest multiple of N rows, so every rank
        has as many batches per epoch and no rank waits at an all-reduce the others never reach."""
        if self.size == 1:
            return arrays
        rows = len(next(iter(arrays.values()))) // self.size * self.size
        return {name: array[self.rank:rows:self.size] for name, array in arrays.items()}

    def grad_reducer(self, parameters):
        """A Cell averaging a gradient tuple over the ranks (fused all-reduce); None for one process."""
        if self.size == 1:
            return None
        from mindspore import nn

        return nn.DistributedGradReducer(parameters, mean=True, degree=self.size)

    def mean(self, value):
        """The mean of a tensor over the ranks (every rank must call it at the same point)."""
        if self.size == 1:
            return value
        from mindspore import ops

        return ops.AllReduce()(value) / self.size


def msrun_workers() -> int:
    """How many workers msrun started for this job (0: not started by msrun).

    msrun runs the same command once more as the scheduler (MS_ROLE=MS_SCHED): that process must
    reach `init()` too, which serves the cluster and ends the process when the workers are done.
    """
    if os.environ.get("MS_ROLE") not in ("MS_WORKER", "MS_SCHED"):
        return 0
    return int(os.environ.get("MS_WORKER_NUM", "1"))


class SingleProcess:
    """The default: this process trains alone on device.device_id."""

    def setup(self, device: DictConfig, target: str) -> World:
        workers = msrun_workers()
        if workers > 1:
            raise ConfigError(
                f"msrun started {workers} workers but distributed=none: each would train alone and all would "
                f"write the same run directory. Fix: add distributed=data_parallel to the command.")
        devices.configure(device, target)
        return World()


class DataParallel:
    """Data parallel over the processes msrun started (one per device; hosts joined by msrun)."""

    def __init__(self, backend: str | None = None):
        self.backend = backend

    def setup(self, device: DictConfig, target: str) -> World:
        import mindspore

        if msrun_workers() == 0 and not os.environ.get("RANK_TABLE_FILE"):
            raise ConfigError(
                "distributed=data_parallel needs one process per device, started by MindSpore's launcher, e.g.\n  "
                + MSRUN_EXAMPLE + "\nFix: start the run with msrun (docs/sweeps.md), or use distributed=none.")
        if target != "CPU":  # each worker drives its own device on its host; msrun sets DEVICE_ID to it
            device = OmegaConf.merge(device, {"device_id": int(os.environ.get("DEVICE_ID", device.device_id))})
        devices.configure(device, target)
        from mindspore.communication import get_group_size, get_rank, init

        init(self.backend)  # None: hccl on Ascend, nccl on GPU, MindSpore's own on the CPU
        world = World(get_rank(), get_group_size())
        mindspore.reset_auto_parallel_context()
        mindspore.set_auto_parallel_context(parallel_mode=mindspore.ParallelMode.DATA_PARALLEL,
                                            gradients_mean=True, device_num=world.size)
        log.info("data parallel: rank %d of %d on %s", world.rank, world.size, target)
        return world


class SilentTracker:
    """What ranks other than 0 record: nothing (the interface of gpt_exp.tracking.RunTracker)."""

    run_id = None
    wandb_run = None

    def log(self, metrics: dict, step: int) -> None:
        pass

    def log_table(self, key: str, columns: list, rows: list, step: int | None = None) -> None:
        pass

    def log_image(self, key: str, path, step: int | None = None) -> None:
        pass

    def set_summary(self, values: dict) -> None:
        pass

    def finish(self, status: str, extra: dict | None = None) -> None:
        pass
