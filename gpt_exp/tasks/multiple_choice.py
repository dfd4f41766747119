"""Multiple choice (GPT-1 Figure 1, bottom): one sequence per candidate answer,

    [start] context [delimiter] answer_k [extract]   for k = 1..K,

a linear head scores each extract state, and a softmax across the K scores picks the answer.
Default data: BIG-bench social_iqa (3 choices). Questions with fewer choices than the most are
padded with empty candidates that can never win.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import mindspore
import numpy as np

from gpt_exp import metrics
from gpt_exp.errors import ConfigError
from gpt_exp.tasks.finetune import MASK_SCORE, FinetuneNetwork, FinetuneTask, encode_texts
from gpt_exp.tasks.losses import mean_cross_entropy


class MultipleChoiceNetwork(FinetuneNetwork):
    """A score per candidate ([N, K]); cross-entropy of the softmax across candidates."""

    def outputs(self, features, present):
        batch, n_choices, width = features.shape
        scores = self.head(features.reshape(-1, width)).reshape(batch, n_choices)
        return scores + (1.0 - present) * MASK_SCORE

    def task_loss(self, outputs, labels):
        return mean_cross_entropy(outputs.astype(mindspore.float32), labels)


@dataclass(eq=False, kw_only=True)  # keyword arguments, as Hydra passes them
class MultipleChoiceTask(FinetuneTask):
    context_field: str = "context"
    choices_field: str = "choices"
    label_field: str = "label"

    main_metric = "accuracy"
    network_class: ClassVar[type] = MultipleChoiceNetwork

    def texts(self, record):
        yield record[self.field("context_field")]
        yield from record[self.field("choices_field")]

    def encode(self, split_records, tokenizer, template):
        contexts = encode_texts(tokenizer, split_records[self.field("context_field")])
        choices = split_records[self.field("choices_field")]
        if not all(isinstance(c, list) and c for c in choices):
            raise ConfigError(f"data.choices_field={self.field('choices_field')!r} must hold a non-empty list of "
                              f"answers per record.")
        few = [i for i, options in enumerate(choices) if len(options) < 2]
        if few:  # one choice is always right: the model would learn nothing and score accuracy 1.0
            raise ConfigError(f"data.choices_field={self.field('choices_field')!r}: {len(few)} of {len(choices)} records "
                              f"have fewer than 2 choices (first: record {few[0]}, {len(choices[few[0]])} choice). "
                              f"Fix: give every question at least 2 answers, or the field that holds the list.")
        flat = encode_texts(tokenizer, [answer for options in choices for answer in options])
        samples, start = [], 0
        for context, options in zip(contexts, choices):
            answers = flat[start:start + len(options)]
            start += len(options)
            samples.append([template.pair(context, answer) for answer in answers])
        return samples

    def targets(self, split_records, split):
        labels = np.array(split_records[self.field("label_field")], np.int64)
        counts = np.array([len(c) for c in split_records[self.field("choices_field")]])
        bad = np.flatnonzero((labels < 0) | (labels >= counts))
        if bad.size:
            raise ConfigError(f"{bad.size} {split} records have a label outside their choices (first: record "
                              f"{bad[0]}, label {labels[bad[0]]} of {counts[bad[0]]} choices). Fix: data.label_field "
                              f"must be the index of the right answer in data.choices_field.")
        return labels.astype(np.int32)

    def metrics(self, outputs, labels):
        return {"accuracy": metrics.accuracy(outputs.argmax(-1), labels),
                "task_loss": metrics.cross_entropy(outputs, labels)}

    def describe_prediction(self, output, label):
        return f"choice {int(label) + 1}", f"choice {int(np.argmax(output)) + 1}"
