"""Shuffled fixed-shape batches over in-memory numpy arrays, with a resumable position."""
from __future__ import annotations

import numpy as np


class BatchIterator:
    """Yields `accum` micro-batches stacked on a leading axis: every array is [accum, batch, ...].

    Epoch e uses the permutation drawn from (seed, e), so the position (epoch, index) is all it
    takes to continue a killed run on exactly the batches it would have seen.
    """

    def __init__(self, arrays: dict[str, np.ndarray], batch_size: int, accum: int, seed: int):
        self.arrays = arrays
        self.size = len(next(iter(arrays.values())))
        self.batch_size, self.accum, self.seed = batch_size, accum, seed
        if self.size < batch_size:
            raise ValueError(f"only {self.size} training samples for trainer.batch_size={batch_size}; "
                             f"lower trainer.batch_size or give more data")
        self.epoch, self.index = 0, 0
        self._order = self._permutation(0)

    def _permutation(self, epoch: int) -> np.ndarray:
        return np.random.default_rng([self.seed, epoch]).permutation(self.size)

    @property
    def batches_per_epoch(self) -> int:
        return self.size // self.batch_size

    def next(self) -> dict[str, np.ndarray]:
        rows = []
        for _ in range(self.accum):
            if self.index + self.batch_size > self.size:  # drop the ragged tail: shapes stay fixed
                self.epoch, self.index = self.epoch + 1, 0
                self._order = self._permutation(self.epoch)
            rows.append(self._order[self.index:self.index + self.batch_size])
            self.index += self.batch_size
        picked = np.stack(rows)
        return {name: array[picked] for name, array in self.arrays.items()}

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "index": self.index, "seed": self.seed}

    def load_state_dict(self, state: dict) -> None:
        self.seed, self.epoch, self.index = state["seed"], state["epoch"], state["index"]
        self._order = self._permutation(self.epoch)


def eval_batches(arrays: dict[str, np.ndarray], batch_size: int, max_batches: int | None = None):
    """Fixed-size batches in order, so one compiled graph serves them all.

    The last batch is filled up by repeating rows; `valid` marks the real ones.
    """
    size = len(next(iter(arrays.values())))
    count = -(-size // batch_size)
    if max_batches:
        count = min(count, max_batches)
    for b in range(count):
        idx = np.arange(b * batch_size, (b + 1) * batch_size)
        valid = idx < size
        yield {name: array[idx % size] for name, array in arrays.items()}, valid
