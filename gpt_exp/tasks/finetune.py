"""What GPT-1's four fine-tuning tasks share (Radford et al. 2018, section 3.3 and Figure 1).

Every task rewrites a sample into one or more token sequences

    [start] text [extract]                    (classification)
    [start] text_a [delimiter] text_b [extract]   (entailment, similarity, multiple choice)

feeds them through the one pre-trained GPT, reads the hidden state at the [extract] token and puts
a small head on it. The loss is GPT-1's L3 = L2 + lm_coef * L1: the task's loss plus the language
modelling loss on the same sequences (real tokens only, never padding). lm_coef=0 switches the
auxiliary loss off; it is then still measured, without gradient, so both arms of the ablation log it.

A sample becomes S sequences (1 for classification and entailment, 2 orders for similarity, one per
candidate for multiple choice), so every task's arrays have the same layout:
    input_ids, attention_mask [N, S, L] int32;  extract_pos [N, S] int32;  labels [N]
and one network base reads them; a subclass only says how S extract states become outputs and a loss.
"""
from __future__ import annotations

import dataclasses
import logging
import math
from dataclasses import dataclass
from typing import ClassVar, Iterator, Sequence

import mindspore
import numpy as np
from mindspore import Tensor, nn, ops
from mindspore.common.initializer import Normal

from gpt_exp import metrics as metric_fns
from gpt_exp.errors import ConfigError
from gpt_exp.model.gpt import SeededDropout
from gpt_exp.tasks.base import Task
from gpt_exp.tasks.losses import token_cross_entropy
from gpt_exp.train.batches import eval_batches
from gpt_exp.truncation import truncate, truncate_pair

log = logging.getLogger(__name__)

SPECIAL_ROLES = ("start", "delimiter", "extract")
# GPT-1's own code calls them _start_, _delimiter_ and _classify_; any string absent from the vocabulary works
DEFAULT_SPECIAL_TOKENS = {"start": "<|start|>", "delimiter": "<|delimiter|>", "extract": "<|extract|>"}
MASK_SCORE = -1e4  # the score of a missing candidate (multiple choice with fewer choices than the most)


# --------------------------------------------------------------------------- input templates

class Template:
    """Token sequences [start] a ([delimiter] b) [extract] of at most `max_len` tokens.

    The special tokens are outside the budget the truncation group cuts, so the [extract] token,
    whose state the head reads, is never dropped. A pair gives up tokens by `truncation.pairs`
    (longest_first by default: the longer text first, as GPT-1 fits premise + hypothesis).
    """

    def __init__(self, tokenizer, max_len: int, truncation):
        self.start, self.delimiter, self.extract = (tokenizer.token_id(role) for role in SPECIAL_ROLES)
        self.max_len = max_len
        self.strategy = truncation.get("strategy", "head")
        self.head_fraction = truncation.get("head_fraction", 0.5)
        self.truncation = truncation
        if max_len < 4:
            raise ConfigError(f"task.max_seq_len={max_len} leaves no room for text between the special tokens. "
                              f"Fix: task.max_seq_len of at least 16.")

    def single(self, ids: Sequence[int]) -> list[int]:
        body = truncate(list(ids), self.max_len - 2, self.strategy, self.head_fraction)
        return [self.start, *body, self.extract]

    def pair(self, a: Sequence[int], b: Sequence[int]) -> list[int]:
        a, b = truncate_pair(list(a), list(b), self.max_len - 3, self.truncation)
        return [self.start, *a, self.delimiter, *b, self.extract]


def pack(samples: list[list[list[int]]], length: int, pad_id: int) -> dict[str, np.ndarray]:
    """Samples of S token lists each -> right-padded input_ids / attention_mask [N, S, length], extract_pos [N, S].

    A sample with fewer sequences than S (a question with fewer choices) gets empty rows: all
    padding, attention mask 0, which the multiple-choice head scores as missing.
    """
    count, n_seq = len(samples), max(len(s) for s in samples)
    input_ids = np.full((count, n_seq, length), pad_id, np.int32)
    attention_mask = np.zeros((count, n_seq, length), np.int32)
    extract_pos = np.zeros((count, n_seq), np.int32)
    for i, sequences in enumerate(samples):
        for j, ids in enumerate(sequences):
            input_ids[i, j, :len(ids)] = ids
            attention_mask[i, j, :len(ids)] = 1
            extract_pos[i, j] = len(ids) - 1
    return {"input_ids": input_ids, "attention_mask": attention_mask, "extract_pos": extract_pos}


# --------------------------------------------------------------------------- the network

class FinetuneNetwork(nn.Cell):
    """GPT + head. construct(input_ids, attention_mask, extract_pos, labels) -> (L3, parts).

    parts = (task_loss, lm_loss, outputs, lm_sums, lm_counts): the two losses are logged as
    train/task_loss and train/lm_loss; the outputs (logits or scores, [N, ...]) and the per-sample
    LM loss sums and token counts let `FinetuneTask.evaluate` compute exact metrics over exactly
    the real samples of a padded evaluation batch, from the one compiled graph.
    """

    def __init__(self, model, n_outputs: int, lm_coef: float, head_dropout: float):
        super().__init__()
        self.model = model
        self.head = nn.Dense(model.config.n_embd, n_outputs, weight_init=Normal(0.02), bias_init="zeros")
        self.head_dropout = SeededDropout(head_dropout)
        self.lm_coef = float(lm_coef)
        self.use_lm_loss = self.lm_coef > 0  # a Python constant: graph mode compiles only the branch taken

    def construct(self, input_ids, attention_mask, extract_pos, labels):
        batch, n_seq, seq_len = input_ids.shape
        ids = input_ids.reshape(-1, seq_len)
        mask = attention_mask.reshape(-1, seq_len)
        hidden = self.model(ids, mask)                                           # [N*S, L, C]
        width = hidden.shape[-1]
        index = extract_pos.reshape(-1, 1, 1).broadcast_to((ids.shape[0], 1, width))
        features = ops.gather_elements(hidden, 1, index).reshape(batch, n_seq, width)
        present = attention_mask[:, :, 0].astype(mindspore.float32)             # [N, S]: 0 = missing candidate
        outputs = self.outputs(self.head_dropout(features.astype(mindspore.float32)), present)
        task_loss = self.task_loss(outputs, labels)

        lm_sums, lm_counts = self.lm_losses(hidden, ids, mask)
        lm_sums, lm_counts = lm_sums.reshape(batch, n_seq).sum(1), lm_counts.reshape(batch, n_seq).sum(1)
        lm_loss = lm_sums.sum() / ops.maximum(lm_counts.sum(), 1.0)
        if self.use_lm_loss:
            loss = task_loss + self.lm_coef * lm_loss
        else:  # measured for the record only: no gradient flows through the LM head
            lm_loss = ops.stop_gradient(lm_loss)
            loss = task_loss
        return loss, (task_loss, lm_loss, outputs, ops.stop_gradient(lm_sums), ops.stop_gradient(lm_counts))

    def lm_losses(self, hidden, ids, mask):
        """Per sequence: the summed next-token cross-entropy over real target tokens, and how many there are."""
        logits = self.model.lm_logits(hidden)[:, :-1]
        rows, steps, vocab = logits.shape
        per_token = token_cross_entropy(logits.reshape(-1, vocab).astype(mindspore.float32), ids[:, 1:].reshape(-1))
        per_token = per_token.reshape(rows, steps)
        weight = mask[:, 1:].astype(mindspore.float32)
        return (per_token * weight).sum(1), weight.sum(1)

    def outputs(self, features, present):
        """[N, S, C] extract states -> what the metrics read ([N, classes] logits, [N] scores ...)."""
        raise NotImplementedError

    def task_loss(self, outputs, labels):
        raise NotImplementedError


# --------------------------------------------------------------------------- the task base

@dataclass(eq=False, kw_only=True)  # keyword arguments, as Hydra passes them
class FinetuneTask(Task):
    """The shared half of the four GPT-1 fine-tuning tasks; subclasses say how a record becomes sequences.

    A dataclass, so the keys every fine-tune shares are declared once, here, and each subclass adds its
    own (its `*_field` keys name the record fields it reads): the constructor takes exactly the task's
    config keys, each a named argument, and an unknown key is a TypeError, never silently kept.
    """

    name: str
    max_seq_len: int
    lm_coef: float = 0.5                 # lambda of the auxiliary LM loss (0: off, still measured)
    head_dropout: float = 0.1            # dropout on the extract state before the head
    special_tokens: dict | None = None   # role -> token string; missing roles take DEFAULT_SPECIAL_TOKENS
    pad_to_multiple_of: int = 8
    show_predictions: int = 20           # test samples in predictions.jsonl at the end

    array_names = ("input_ids", "attention_mask", "extract_pos", "labels")
    loss_part_names = ("task_loss", "lm_loss")
    greater_is_better = True
    network_class: ClassVar[type] = FinetuneNetwork
    label_dtype = np.int32

    def __post_init__(self) -> None:
        lm_coef, head_dropout = self.lm_coef, self.head_dropout
        if not isinstance(lm_coef, (int, float)) or lm_coef < 0 or not math.isfinite(lm_coef):
            raise ConfigError(f"task.lm_coef={lm_coef} must be a number >= 0 (GPT-1 used 0.5; 0 turns the "
                              f"auxiliary LM loss off).")
        if not 0 <= head_dropout < 1:
            raise ConfigError(f"task.head_dropout={head_dropout} must be in [0, 1).")
        self.lm_coef, self.head_dropout = float(lm_coef), float(head_dropout)
        self.special_tokens = {**DEFAULT_SPECIAL_TOKENS, **(self.special_tokens or {})}
        unknown = set(self.special_tokens) - set(SPECIAL_ROLES)
        if unknown:
            raise ConfigError(f"task.special_tokens has unknown roles {sorted(unknown)}; the roles are {SPECIAL_ROLES}.")
        self.pad_to_multiple_of = max(1, int(self.pad_to_multiple_of))
        self.show_predictions = int(self.show_predictions)
        Task.__init__(self, self.name, self.max_seq_len)  # the base's shared state: a dataclass does not call it
        self.n_outputs = 1
        self._arrays: dict[str, dict[str, np.ndarray]] = {}
        self._outputs: dict[str, np.ndarray] = {}
        self._characters: dict[str, np.ndarray] = {}  # evaluated split -> characters of each sample's text

    @property
    def fields(self) -> dict[str, str]:
        """config key -> record field, for the `*_field` keys of this task (data.<key> sets them)."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self) if f.name.endswith("_field")}

    # ---- what a subclass provides
    def texts(self, record) -> Iterator[str]:
        """The texts of a record a tokenizer should learn from."""
        raise NotImplementedError

    def encode(self, split_records, tokenizer, template: Template) -> list[list[list[int]]]:
        """A split's records -> for each record its sequences, built with `template`."""
        raise NotImplementedError

    def targets(self, split_records, split: str) -> np.ndarray:
        raise NotImplementedError

    def metrics(self, outputs: np.ndarray, labels: np.ndarray) -> dict[str, float]:
        """Task metrics (and `task_loss`) from the outputs of the real samples of a split."""
        raise NotImplementedError

    def describe_prediction(self, output: np.ndarray, label) -> tuple[str, str]:
        """(gold, predicted) as a person reads them, for the predictions table."""
        raise NotImplementedError

    def setup_labels(self, records, data) -> None:
        """Learn the label set from the config / data before the arrays are built (classification)."""

    # ---- the Task interface
    def field(self, key: str) -> str:
        return getattr(self, key)

    def corpus_texts(self, records):
        self._check_fields(records)  # before a tokenizer is trained on them, not after
        return (text for record in records["train"] for text in self.texts(record) if text)

    def prepare_tokenizer(self, tokenizer) -> None:
        added = tokenizer.add_special_tokens(dict(self.special_tokens))
        log.info("special tokens %s: %d new, vocabulary now %d", self.special_tokens, added, tokenizer.vocab_size)

    def build_arrays(self, records, tokenizer, truncation, data):
        self._check_fields(records)
        self.setup_labels(records, data)
        template = Template(tokenizer, self.max_seq_len, truncation)
        encoded = {split: self.encode(records[split], tokenizer, template) for split in records}
        longest = max(len(ids) for samples in encoded.values() for sample in samples for ids in sample)
        # one padded length for every split (one compiled graph), no longer than the data needs
        multiple = self.pad_to_multiple_of
        length = min(self.max_seq_len, -(-longest // multiple) * multiple)
        self._arrays = {}
        for split, samples in encoded.items():
            if not samples:
                raise ConfigError(f"the {split} split is empty. Fix: check data.max_train_samples / "
                                  f"data.max_eval_samples and the data files.")
            arrays = pack(samples, length, tokenizer.pad_id)
            arrays["labels"] = self.targets(records[split], split).astype(self.label_dtype)
            self._arrays[split] = arrays
            if split != "train":  # only evaluated splits need them
                self._characters[split] = self._text_characters(records[split], tokenizer, template, arrays)
        n_seq = self._arrays["train"]["input_ids"].shape[1]
        log.info("%s: %d sequence(s) of %d tokens per sample (longest %d, task.max_seq_len=%d); "
                 "truncated samples: %s", self.name, n_seq, length, longest, self.max_seq_len,
                 {split: int(sum(any(len(ids) == self.max_seq_len for ids in sample) for sample in samples))
                  for split, samples in encoded.items()})
        return self._arrays

    def tokens_per_sample(self, train_arrays: dict[str, np.ndarray]) -> int:
        """Every sequence of a sample (a choice, an ordering of a pair) at the padded length."""
        _, n_seq, length = train_arrays["input_ids"].shape
        return n_seq * length

    def _text_characters(self, split_records, tokenizer, template: Template, arrays) -> np.ndarray:
        """Per sample, the characters of the text its sequences hold: their text tokens (not the special
        ones) at the split's characters per token. The split's sum is exact when nothing is truncated and
        each text sits in one sequence; for bits/char of the auxiliary LM whatever the tokenizer."""
        texts = [str(text) for record in split_records for text in self.texts(record)]
        tokens = sum(len(ids) for ids in encode_texts(tokenizer, texts))
        chars_per_token = sum(len(text) for text in texts) / max(tokens, 1)
        real = arrays["attention_mask"].astype(bool)
        special = np.isin(arrays["input_ids"], [template.start, template.delimiter, template.extract]) & real
        return (real.sum((1, 2)) - special.sum((1, 2))) * chars_per_token

    def build_network(self, model):
        return self.network_class(model, self.n_outputs, self.lm_coef, self.head_dropout)

    def evaluate(self, eval_step, arrays, batch_size, max_batches):
        outputs, lm_sums, lm_counts, labels = [], [], [], []
        for batch, valid in eval_batches(arrays, batch_size, max_batches):
            _, parts = eval_step(*[Tensor(batch[name]) for name in self.array_names])
            outputs.append(parts[2].asnumpy()[valid])
            lm_sums.append(parts[3].asnumpy()[valid])
            lm_counts.append(parts[4].asnumpy()[valid])
            labels.append(batch["labels"][valid])
        outputs, labels = np.concatenate(outputs), np.concatenate(labels)
        for split, split_arrays in self._arrays.items():
            if split_arrays is arrays:
                self._outputs[split] = outputs
        metrics = self.metrics(outputs, labels)
        lm_sums = np.concatenate(lm_sums).astype(np.float64)
        metrics["lm_loss"] = float(np.sum(lm_sums) / max(np.sum(np.concatenate(lm_counts)), 1.0))
        metrics["loss"] = metrics["task_loss"] + self.lm_coef * metrics["lm_loss"]
        split = next((s for s, a in self._arrays.items() if a is arrays), None)
        if split in self._characters:
            metrics.update(self._sample_scores(split, outputs, labels, lm_sums, metrics))
        return metrics

    def _sample_scores(self, split, outputs, labels, lm_sums, metrics) -> dict[str, float]:
        """Keeps the split's per-sample scores (accuracy, auxiliary-LM bits/char); returns the split's bits/char."""
        chars = self._characters[split][:len(lm_sums)]  # a validation limit evaluates the first batches
        scores = {"bits_per_char": np.where(chars > 0, lm_sums / np.maximum(chars, 1e-9) / math.log(2), 0.0),
                  "chars": chars}
        if "accuracy" in metrics:  # classification logits [N, K] and multiple-choice scores [N, S] alike
            scores["accuracy"] = (outputs.argmax(-1) == labels).astype(np.float64)
        self.sample_scores[split] = scores
        return {"bits_per_char": metric_fns.bits_per_char(lm_sums.sum(), chars.sum())} if chars.sum() > 0 else {}

    def final_report(self, model, tokenizer, splits, tracker, step):
        """The first test samples as the model saw them (special tokens shown), with gold and predicted answers."""
        self.save_sample_scores(tracker)
        outputs = self._outputs.get("test")
        if outputs is None or not self.show_predictions:
            return {}
        arrays = self._arrays["test"]
        rows = []
        for i in range(min(self.show_predictions, len(outputs))):
            shown = [tokenizer.decode(ids[mask.astype(bool)], skip_special_tokens=False)
                     for ids, mask in zip(arrays["input_ids"][i], arrays["attention_mask"][i]) if mask[0]]
            gold, predicted = self.describe_prediction(outputs[i], arrays["labels"][i])
            rows.append([" || ".join(shown), gold, predicted])
        tracker.log_table("predictions", ["input", "gold", "predicted"], rows, step=step)
        return {"predictions": rows}

    def _check_fields(self, records) -> None:
        columns = set(records["train"].column_names)
        for key, column in self.fields.items():
            if column not in columns:
                raise ConfigError(
                    f"data.{key}={column!r} is not a field of the {self.name} data (its fields: {sorted(columns)}). "
                    f"Fix: data.{key}=<the field that holds it>.")


@dataclass(eq=False, kw_only=True)  # keyword arguments, as Hydra passes them
class LabelledTask(FinetuneTask):
    """A task whose target is one of a fixed set of classes, read from `label_field`.

    Labels may be class indices or names. The names come from task.label_names, else from the
    built-in dataset, else from the data (sorted names, or 0..max for indices).
    """

    label_names: list[str] | None = None

    def __post_init__(self) -> None:
        super().__post_init__()
        self.label_names = list(self.label_names) if self.label_names else None

    def setup_labels(self, records, data) -> None:
        names = self.label_names
        if not names and data.get("name"):
            from gpt_exp.data.sources import find_dataset

            built_in = find_dataset(data.name)
            names = list(built_in.label_names) if built_in and built_in.label_names else None
        values = [v for split in records for v in records[split][self.field("label_field")]]
        if not names:
            if all(isinstance(v, str) for v in values):
                names = sorted(set(values))
            elif all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) for v in values):
                names = [str(i) for i in range(max(values) + 1)]
            else:
                raise ConfigError(f"data.label_field={self.field('label_field')!r} mixes label kinds "
                                  f"({sorted({type(v).__name__ for v in values})}). Fix: use class indices 0..K-1 "
                                  f"or class names throughout.")
        if len(names) < 2:
            raise ConfigError(f"the {self.name} data has a single class {names}: nothing to learn. Fix: check "
                              f"data.label_field, or give task.label_names.")
        self.label_names = names
        self.n_outputs = len(names)

    def label_index(self, value) -> int:
        if isinstance(value, str):
            if value not in self.label_names:
                raise ConfigError(f"label {value!r} is not one of task.label_names={self.label_names}. "
                                  f"Fix: task.label_names=[...] listing every class.")
            return self.label_names.index(value)
        if not 0 <= int(value) < len(self.label_names):
            hidden = (" -1 usually marks a hidden label (GLUE's test splits): give a test split with labels, "
                      "e.g. data.files.test=...") if int(value) == -1 else ""
            raise ConfigError(f"label {value} is outside 0..{len(self.label_names) - 1} "
                              f"(task.label_names={self.label_names}). Fix: task.label_names=[...] listing every "
                              f"class.{hidden}")
        return int(value)

    def targets(self, split_records, split):
        return np.array([self.label_index(v) for v in split_records[self.field("label_field")]], np.int32)


def encode_texts(tokenizer, texts: list[str]) -> list[list[int]]:
    return tokenizer.encode_batch([str(t) for t in texts]) if texts else []
