"""Causal language-model pre-training: text packed into blocks, every next token predicted.

Besides the loss per token and the perplexity, every evaluation reports bits per character: the summed
next-token loss over the split (each document's eos included) divided by the characters of the split's
text, over ln 2. Blocks cover all the split's targets but the last few (fewer than task.max_seq_len);
they are counted at the blocks' mean loss, so the figure is the split's, whatever the tokenizer.
"""
from __future__ import annotations

import itertools
import math

import mindspore
import numpy as np
from mindspore import Tensor, nn

from gpt_exp import metrics
from gpt_exp.errors import ConfigError
from gpt_exp.tasks.base import Task
from gpt_exp.tasks.losses import mean_cross_entropy, token_cross_entropy
from gpt_exp.text import readable_text
from gpt_exp.train.batches import eval_batches


class CausalLMNetwork(nn.Cell):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def construct(self, tokens):
        # one block of max_seq_len + 1 tokens gives max_seq_len (input, next token) pairs
        logits = self.model.lm_logits(self.model(tokens[:, :-1]))
        batch, steps, vocab = logits.shape
        logits, targets = logits.reshape(-1, vocab).astype(mindspore.float32), tokens[:, 1:].reshape(-1)
        if self.training:  # the fused kernel; like Dropout, each compiled step sees one mode only
            loss = mean_cross_entropy(logits, targets)
            return loss, (loss,)
        # evaluation: each block's mean loss, so a padded last batch counts its real blocks only
        block_losses = token_cross_entropy(logits, targets).reshape(batch, steps).mean(1)
        return block_losses.mean(), (block_losses,)


class LanguageModelingTask(Task):
    array_names = ("tokens",)
    loss_part_names = ("lm_loss",)
    main_metric = "loss"

    def __init__(self, name: str, max_seq_len: int, sample_prompts=(), sample_max_new_tokens: int = 60,
                 sample_temperature: float = 0.8, sample_top_k: int = 40, text_field: str = "text"):
        super().__init__(name, max_seq_len)
        self.sample_prompts = list(sample_prompts)
        self.sample_max_new_tokens = sample_max_new_tokens
        self.sample_temperature, self.sample_top_k = sample_temperature, sample_top_k
        self.text_field = text_field

    def _check_text_field(self, records) -> None:
        fields = records["train"].column_names
        if self.text_field not in fields:
            raise ConfigError(f"task=lm reads the field data.text_field={self.text_field!r}, but the records of this "
                              f"data have {fields}. Fix: data.text_field=<one of them>, or a text corpus.")

    def corpus_texts(self, records):
        self._check_text_field(records)
        return (r[self.text_field] for r in records["train"])

    def build_arrays(self, records, tokenizer, truncation, data):
        self._check_text_field(records)
        eos = tokenizer.eos_id

        def tokenize(batch):
            return {"ids": [ids + [eos] for ids in tokenizer.encode_batch(batch[self.text_field])]}

        tokenized = records.map(tokenize, batched=True, remove_columns=records["train"].column_names,
                                desc="tokenizing")
        splits = {}
        for split in tokenized:
            documents = tokenized[split]["ids"]
            characters = sum(len(text) for text in records[split][self.text_field])
            targets = sum(len(ids) for ids in documents) - 1  # every token but the first is predicted
            splits[split] = TextBlocks(self._blocks(documents, split), split, characters / max(targets, 1))
        return splits

    def _blocks(self, documents, split: str) -> np.ndarray:
        """Concatenate the documents and cut blocks of max_seq_len + 1 tokens, overlapping by one."""
        flat = np.fromiter(itertools.chain.from_iterable(documents), dtype=np.int32)
        size = self.max_seq_len + 1
        count = (len(flat) - 1) // self.max_seq_len
        if count < 1:
            raise ConfigError(f"the {split} split has {len(flat)} tokens, fewer than one block of "
                              f"task.max_seq_len={self.max_seq_len} + 1. Fix: lower task.max_seq_len or give more text.")
        starts = np.arange(count) * self.max_seq_len
        return flat[starts[:, None] + np.arange(size)[None, :]]

    def build_network(self, model):
        return CausalLMNetwork(model)

    def evaluate(self, network, arrays, batch_size, max_batches):
        block_losses = []
        for batch, valid in eval_batches(arrays, batch_size, max_batches):
            _, (losses,) = network(Tensor(batch["tokens"]))
            block_losses.append(losses.asnumpy().astype(np.float64)[valid])  # repeated filler blocks left out
        losses = np.concatenate(block_losses)
        loss = float(losses.mean())
        result = {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}
        chars_per_target = getattr(arrays, "chars_per_target", None)
        if chars_per_target:  # blocks hold equally many targets, so their mean is the split's ratio
            chars = np.full(len(losses), self.max_seq_len * chars_per_target)
            block_bpc = losses * self.max_seq_len / chars / math.log(2)
            result["bits_per_char"] = metrics.bits_per_char(losses.sum() * self.max_seq_len, chars.sum())
            self.sample_scores[arrays.split] = {"bits_per_char": block_bpc, "chars": chars}
        return result

    def final_report(self, model, tokenizer, splits, tracker, step):
        from gpt_exp.generate import generate

        self.save_sample_scores(tracker)
        if not self.sample_prompts:
            return {}
        prompts = [tokenizer.encode(p) for p in self.sample_prompts]
        completions = generate(model, prompts, max_new_tokens=self.sample_max_new_tokens, strategy="sample",
                               temperature=self.sample_temperature, top_k=self.sample_top_k,
                               eos_token_id=tokenizer.eos_id, pad_token_id=tokenizer.pad_id, seed=0)
        rows = [[text, continuation(tokenizer, ids, new)] for text, ids, new in zip(self.sample_prompts, prompts, completions)]
        tracker.log_table("samples", ["prompt", "completion"], rows, step=step)
        return {"samples": rows}


class TextBlocks(dict):
    """A split's blocks {"tokens": [N, max_seq_len + 1]}, with its name and characters per predicted token."""

    def __init__(self, tokens: np.ndarray, split: str, chars_per_target: float):
        super().__init__(tokens=tokens)
        self.split, self.chars_per_target = split, chars_per_target


def continuation(tokenizer, prompt_ids: list[int], new_ids: list[int]) -> str:
    """The new tokens' text as it follows the prompt. Decoded together with the prompt, because a word-level
    BPE (corpus_bpe's `</w>`) puts the space between words only when it sees both of them; special tokens
    ([SEP], [UNK], eos) left out and Chinese joined as it is written (gpt_exp/text.py)."""
    prompt_text = readable_text(tokenizer, prompt_ids)
    whole = readable_text(tokenizer, list(prompt_ids) + list(new_ids))
    return whole[len(prompt_text):] if whole.startswith(prompt_text) else readable_text(tokenizer, new_ids)
