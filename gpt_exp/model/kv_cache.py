"""Incremental decoding with a key/value cache: `GPT`'s own transformer, one new token at a time.

`prefill` runs the prompts once and returns the logits of their next token together with every layer's
keys and values; `extend` takes one new token per row, attends to the cached keys and values plus its
own, and returns the next logits and the grown cache. A step then costs one token's forward pass
instead of the whole sequence's.

Both run the model's transformer itself (gpt.py: its embeddings, blocks, attention and LayerNorms);
this module only lays out the cache. It is a tuple of keys and one of values, a
`[batch, n_head, slots, head_dim]` tensor per layer (one stacked tensor was 15x slower to slice and
restack on the CPU), allocated once for prompt + new tokens, so both functions compile once per prompt
width. A slot is written once (the prompt's slots by `prefill`, slot `slot` by `extend`) and is zero
until then; the additive key mask hides padding and the slots not yet written, so causality needs no
separate mask. tests/test_generate.py checks the logits against the full forward.
Decoding only: call it in eval mode (no dropout).
"""
from __future__ import annotations

from mindspore import ops


def prefill(model, input_ids, attention_mask, position_ids, slots: int):
    """input_ids, attention_mask (1 = token, 0 = padding), position_ids [B, W].

    Returns the last column's logits [B, vocab] and the cache (keys, values), each a tuple of one
    [B, H, slots, D] tensor per layer, with the prompt in slots 0..W-1.
    """
    additive_mask = model.additive_mask(input_ids.shape[1], attention_mask)  # the same as GPT.construct's
    hidden, presents = model.transformer(input_ids, position_ids, additive_mask)
    empty_slots = (0, 0, 0, slots - input_ids.shape[1])  # ops.pad: (head_dim before, after, slots before, after)
    keys = [ops.pad(k, empty_slots) for k, _ in presents]
    values = [ops.pad(v, empty_slots) for _, v in presents]
    return _last_logits(model, hidden), tuple(keys), tuple(values)


def extend(model, input_ids, position_ids, key_mask, slot_onehot, keys, values):
    """input_ids, position_ids [B, 1]; key_mask [B, 1, 1, slots] additive (0 = may attend), which must
    allow the new token's own slot; slot_onehot [1, 1, slots, 1], 1 at the slot the new token fills.

    Returns the next logits [B, vocab] and the cache with the new token's keys and values written.
    """
    past = tuple([(k, v, slot_onehot) for k, v in zip(keys, values)])
    hidden, presents = model.transformer(input_ids, position_ids, key_mask, past)
    new_keys = [k for k, _ in presents]
    new_values = [v for _, v in presents]
    return _last_logits(model, hidden), tuple(new_keys), tuple(new_values)


def reorder(cache, rows):
    """The cache of the given batch rows, in that order (beam search: each beam continues its parent's)."""
    return tuple(ops.gather(layer_cache, rows, 0) for layer_cache in cache)


def _last_logits(model, hidden):
    return model.lm_logits(hidden[:, -1:, :])[:, 0, :]
