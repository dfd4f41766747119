"""Text classification (GPT-1 Figure 1, top): [start] text [extract] -> linear head -> class.

Default data: Rotten Tomatoes review snippets, positive vs negative by the sign of their mean
rating (`data=movie_reviews`); Chinese product reviews with `data=chinese_reviews tokenizer=bert_chinese`.
`ClassifierTask` is the part entailment shares: a head over classes, cross-entropy, accuracy and macro-F1.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import mindspore
import numpy as np

from gpt_exp import metrics
from gpt_exp.tasks.finetune import FinetuneNetwork, LabelledTask, encode_texts
from gpt_exp.tasks.losses import mean_cross_entropy


class ClassificationNetwork(FinetuneNetwork):
    """The extract state of the (only) sequence -> class logits; cross-entropy against the label."""

    def outputs(self, features, present):
        return self.head(features[:, 0])                                  # [N, classes]

    def task_loss(self, outputs, labels):
        return mean_cross_entropy(outputs.astype(mindspore.float32), labels)


@dataclass(eq=False, kw_only=True)  # keyword arguments, as Hydra passes them
class ClassifierTask(LabelledTask):
    """One sequence per sample, one class out: what classification and entailment have in common."""

    main_metric = "accuracy"
    network_class: ClassVar[type] = ClassificationNetwork

    def metrics(self, outputs, labels):
        predicted = outputs.argmax(-1)
        return {"accuracy": metrics.accuracy(predicted, labels),
                "macro_f1": metrics.macro_f1(predicted, labels, self.n_outputs),
                "task_loss": metrics.cross_entropy(outputs, labels)}

    def describe_prediction(self, output, label):
        probs = np.exp(output - output.max())
        probs /= probs.sum()
        return self.label_names[int(label)], f"{self.label_names[int(np.argmax(output))]} (p={probs.max():.2f})"


@dataclass(eq=False, kw_only=True)  # keyword arguments, as Hydra passes them
class ClassificationTask(ClassifierTask):
    text_field: str = "text"
    label_field: str = "label"

    def texts(self, record):
        yield record[self.field("text_field")]

    def encode(self, split_records, tokenizer, template):
        return [[template.single(ids)] for ids in encode_texts(tokenizer, split_records[self.field("text_field")])]
