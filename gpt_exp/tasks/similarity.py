"""Semantic similarity (GPT-1 Figure 1): a pair has no natural order, so both orders are read,

    [start] a [delimiter] b [extract]   and   [start] b [delimiter] a [extract],

their extract states are added and a linear head regresses the similarity score. Default data:
STS Benchmark (scores 0-5); metrics Pearson and Spearman correlation, as in the paper.
"""
from __future__ import annotations

import logging
import math
from dataclasses import dataclass
from typing import ClassVar, Sequence

import mindspore
import numpy as np
from mindspore import ops

from gpt_exp import metrics
from gpt_exp.errors import ConfigError
from gpt_exp.tasks.finetune import FinetuneNetwork, FinetuneTask, encode_texts

log = logging.getLogger(__name__)


class SimilarityNetwork(FinetuneNetwork):
    """Sum of the two orders' extract states -> one score; mean squared error against the target."""

    def outputs(self, features, present):
        return self.head(features.sum(1)).squeeze(-1)                     # [N]

    def task_loss(self, outputs, labels):
        return ops.mse_loss(outputs.astype(mindspore.float32), labels)


@dataclass(eq=False, kw_only=True)  # keyword arguments, as Hydra passes them
class SimilarityTask(FinetuneTask):
    text_a_field: str = "text_a"
    text_b_field: str = "text_b"
    score_field: str = "score"
    score_range: Sequence[float] = (0.0, 5.0)   # the lowest and highest score; the head regresses them as 0..1
    both_orders: bool = True                    # false: only [start] a [delimiter] b [extract] (half the compute)

    main_metric = "pearson"
    network_class: ClassVar[type] = SimilarityNetwork
    label_dtype = np.float32

    def __post_init__(self) -> None:
        super().__post_init__()
        low, high = (float(v) for v in self.score_range)
        if not high > low:
            raise ConfigError(f"task.score_range={list(self.score_range)} must be [low, high] with high > low.")
        self.low, self.high = low, high

    def texts(self, record):
        yield record[self.field("text_a_field")]
        yield record[self.field("text_b_field")]

    def encode(self, split_records, tokenizer, template):
        a = encode_texts(tokenizer, split_records[self.field("text_a_field")])
        b = encode_texts(tokenizer, split_records[self.field("text_b_field")])
        if self.both_orders:
            return [[template.pair(x, y), template.pair(y, x)] for x, y in zip(a, b)]
        return [[template.pair(x, y)] for x, y in zip(a, b)]

    def targets(self, split_records, split):
        scores = np.array(split_records[self.field("score_field")], np.float64)
        outside = np.sum((scores < self.low) | (scores > self.high))
        if outside:
            raise ConfigError(f"{outside} {split} scores lie outside task.score_range=[{self.low}, {self.high}]. "
                              f"Fix: task.score_range=[min, max] of your scores.")
        return (scores - self.low) / (self.high - self.low)  # the head regresses scores rescaled to 0..1

    def metrics(self, outputs, labels):
        result = {"pearson": metrics.pearson(outputs, labels), "spearman": metrics.spearman(outputs, labels)}
        for key, value in result.items():
            if math.isnan(value):  # a constant prediction: no correlation, and no nan to break "best so far"
                log.warning("%s: the model predicts one score for every pair; %s reported as 0", self.name, key)
                result[key] = 0.0
        span = self.high - self.low
        result["mse"] = float(np.mean((outputs - labels) ** 2) * span ** 2)  # in the data's own units
        result["task_loss"] = float(np.mean((outputs - labels) ** 2))
        return result

    def describe_prediction(self, output, label):
        span = self.high - self.low
        return f"{self.low + float(label) * span:.2f}", f"{self.low + float(output) * span:.2f}"
