"""Causal language-model pre-training: text packed into blocks, every next token predicted."""
from __future__ import annotations

import itertools
import math

import mindspore
import numpy as np
from mindspore import Tensor, nn

from gpt_exp.errors import ConfigError
from gpt_exp.tasks.base import Task
from gpt_exp.tasks.losses import mean_cross_entropy
from gpt_exp.train.batches import eval_batches


class CausalLMNetwork(nn.Cell):
    def __init__(self, model):
        super().__init__()
        self.model = model

    def construct(self, tokens):
        # one block of max_seq_len + 1 tokens gives max_seq_len (input, next token) pairs
        logits = self.model.lm_logits(self.model(tokens[:, :-1]))
        vocab = logits.shape[-1]
        loss = mean_cross_entropy(logits.reshape(-1, vocab).astype(mindspore.float32), tokens[:, 1:].reshape(-1))
        return loss, (loss,)


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
        return {split: {"tokens": self._blocks(tokenized[split]["ids"], split)} for split in tokenized}

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
        total, count = 0.0, 0
        for batch, valid in eval_batches(arrays, batch_size, max_batches):
            if not valid.all() and count:
                break  # a padded tail batch would count repeated blocks twice
            loss, _ = network(Tensor(batch["tokens"]))
            total, count = total + float(loss.asnumpy()), count + 1
        loss = total / max(count, 1)
        return {"loss": loss, "perplexity": math.exp(min(loss, 50.0))}

    def final_report(self, model, tokenizer, splits, tracker, step):
        from gpt_exp.generate import generate

        if not self.sample_prompts:
            return {}
        prompts = [tokenizer.encode(p) for p in self.sample_prompts]
        completions = generate(model, prompts, max_new_tokens=self.sample_max_new_tokens, strategy="sample",
                               temperature=self.sample_temperature, top_k=self.sample_top_k,
                               eos_token_id=tokenizer.eos_id, pad_token_id=tokenizer.pad_id, seed=0)
        rows = [[text, continuation(tokenizer, ids, new)] for text, ids, new in zip(self.sample_prompts, prompts, completions)]
        tracker.log_table("samples", ["prompt", "completion"], rows, step=step)
        return {"samples": rows}


def continuation(tokenizer, prompt_ids: list[int], new_ids: list[int]) -> str:
    """The new tokens' text as it follows the prompt. Decoded together with the prompt, because a word-level
    BPE (corpus_bpe's `</w>`) puts the space between words only when it sees both of them."""
    prompt_text, whole = tokenizer.decode(prompt_ids), tokenizer.decode(list(prompt_ids) + list(new_ids))
    return whole[len(prompt_text):] if whole.startswith(prompt_text) else tokenizer.decode(new_ids)
