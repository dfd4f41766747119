"""What a task owns: its input arrays, the network (head + loss) around the GPT, and its metrics.

The runner (gpt_exp/run.py) knows nothing task-specific; it calls these methods in order.
"""
from __future__ import annotations

from pathlib import Path
from typing import Iterator

import numpy as np
from mindspore import nn

from gpt_exp.metrics import SAMPLE_SCORES_FILE, save_sample_scores


class Task:
    name: str = "task"
    array_names: tuple[str, ...] = ()        # the network's inputs, in order
    loss_part_names: tuple[str, ...] = ()    # what the network returns besides the total loss
    main_metric: str = "loss"                # selects the best checkpoint; a sweep optimises it
    greater_is_better: bool = False

    def __init__(self, name: str, max_seq_len: int):
        self.name, self.max_seq_len = name, max_seq_len
        # split -> {score name: one value per sample} from the split's last evaluation (test: intervals)
        self.sample_scores: dict[str, dict[str, np.ndarray]] = {}

    def corpus_texts(self, records) -> Iterator[str]:
        """The texts a tokenizer trained on this task's data should see."""
        raise NotImplementedError

    def prepare_tokenizer(self, tokenizer) -> None:
        """Add the special tokens the task's input templates need."""

    def build_arrays(self, records, tokenizer, truncation, data) -> dict[str, dict[str, np.ndarray]]:
        """split -> {array name: fixed-shape array with one row per sample}."""
        raise NotImplementedError

    def tokens_per_sample(self, train_arrays: dict[str, np.ndarray]) -> int:
        """Tokens the model reads per training sample (the throughput's unit): a sequence of max_seq_len."""
        return self.max_seq_len

    def build_network(self, model) -> nn.Cell:
        """A Cell whose construct(*arrays) returns (loss, loss_parts)."""
        raise NotImplementedError

    def evaluate(self, network: nn.Cell, arrays: dict[str, np.ndarray], batch_size: int,
                 max_batches: int | None) -> dict[str, float]:
        raise NotImplementedError

    def final_report(self, model, tokenizer, splits, tracker, step: int) -> dict:
        """Anything shown once at the end (samples, generated text); returns summary values."""
        return {}

    def improves(self, metrics: dict[str, float], best: dict | None) -> bool:
        """Whether an evaluation beats the best so far on main_metric; a tie goes to the lower loss
        (a ROUGE-L of 0 at two evaluations of a short run must not keep the worse weights)."""
        if best is None:
            return True
        value = metrics[self.main_metric]
        if value == best["value"]:
            return metrics.get("loss", float("inf")) < best.get("loss", float("inf"))
        return value > best["value"] if self.greater_is_better else value < best["value"]

    def save_sample_scores(self, tracker) -> Path | None:
        """The test split's per-sample scores to <run>/test_scores.jsonl (gpt_exp.tools.compare's intervals)."""
        scores, run_dir = self.sample_scores.get("test"), getattr(tracker, "run_dir", None)
        if not scores or run_dir is None:
            return None
        path = Path(run_dir) / SAMPLE_SCORES_FILE
        save_sample_scores(path, scores)
        return path
