"""Textual entailment (GPT-1 Figure 1): [start] premise [delimiter] hypothesis [extract] -> class.

Default data: BIG-bench vitaminc_fact_verification (does the Wikipedia evidence support the claim:
True / False / Neither). The classes are unbalanced (50 / 37 / 13 %), so macro-F1 is reported too.
"""
from __future__ import annotations

from dataclasses import dataclass

from gpt_exp.tasks.classification import ClassifierTask
from gpt_exp.tasks.finetune import encode_texts


@dataclass(eq=False, kw_only=True)  # keyword arguments, as Hydra passes them
class EntailmentTask(ClassifierTask):
    premise_field: str = "premise"
    hypothesis_field: str = "hypothesis"
    label_field: str = "label"

    def texts(self, record):
        yield record[self.field("premise_field")]
        yield record[self.field("hypothesis_field")]

    def encode(self, split_records, tokenizer, template):
        premises = encode_texts(tokenizer, split_records[self.field("premise_field")])
        hypotheses = encode_texts(tokenizer, split_records[self.field("hypothesis_field")])
        return [[template.pair(p, h)] for p, h in zip(premises, hypotheses)]
