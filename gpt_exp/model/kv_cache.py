"""Incremental decoding with a key/value cache: the same network as `GPT.construct`, one new token at a time.

`prefill` runs the prompts once and returns the logits of their next token together with every layer's
keys and values; `extend` takes one new token per row, attends to the cached keys and values plus its
own, and returns the next logits and the grown cache. A step then costs one token's forward pass
instead of the whole sequence's.

The cache is a tuple of keys and one of values, a `[batch, n_head, slots, head_dim]` tensor per layer
(one stacked tensor was 15x slower to slice and restack on the CPU), allocated once for prompt + new
tokens, so both functions compile once per prompt width. A slot is written once (the prompt's slots by
`prefill`, slot `slot` by `extend`) and is zero until then; the additive key mask hides padding and
the slots not yet written, so causality needs no separate mask. The blocks are the model's own
Cells (same parameters, same LayerNorm / GELU / float32 softmax); only the attention is unrolled
here to read and write the cache. tests/test_generate.py checks the logits against the full forward.
Decoding only: dropout is not applied.
"""
from __future__ import annotations

import mindspore as ms
from mindspore import ops

from gpt_exp.model.gpt import gelu_new


def prefill(model, input_ids, attention_mask, position_ids, slots: int):
    """input_ids, attention_mask (1 = token, 0 = padding), position_ids [B, W].

    Returns the last column's logits [B, vocab] and the cache (keys, values), each a tuple of one
    [B, H, slots, D] tensor per layer, with the prompt in slots 0..W-1.
    """
    x = _embed(model, input_ids, position_ids)
    additive_mask = model.additive_mask(input_ids.shape[1], attention_mask)  # the same as GPT.construct's
    keys, values = [], []
    for block in model.transformer.h:
        x, k, v = _block(model, block, x, additive_mask, None, None, None)
        empty_slots = (0, 0, 0, slots - k.shape[2])  # ops.pad: (head_dim before, after, slots before, after)
        keys.append(ops.pad(k, empty_slots))
        values.append(ops.pad(v, empty_slots))
    return _last_logits(model, x), tuple(keys), tuple(values)


def extend(model, input_ids, position_ids, key_mask, slot_onehot, keys, values):
    """input_ids, position_ids [B, 1]; key_mask [B, 1, 1, slots] additive (0 = may attend), which must
    allow the new token's own slot; slot_onehot [1, 1, slots, 1], 1 at the slot the new token fills.

    Returns the next logits [B, vocab] and the cache with the new token's keys and values written.
    """
    x = _embed(model, input_ids, position_ids)
    new_keys, new_values = [], []
    for layer, block in enumerate(model.transformer.h):
        x, k, v = _block(model, block, x, key_mask, keys[layer], values[layer], slot_onehot)
        new_keys.append(k)
        new_values.append(v)
    return _last_logits(model, x), tuple(new_keys), tuple(new_values)


def reorder(cache, rows):
    """The cache of the given batch rows, in that order (beam search: each beam continues its parent's)."""
    return tuple(ops.gather(layer_cache, rows, 0) for layer_cache in cache)


def _embed(model, input_ids, position_ids):
    transformer = model.transformer
    if model.config.arch == "gpt2":
        return transformer.wte(input_ids) + transformer.wpe(position_ids)
    return transformer.tokens_embed(input_ids) + transformer.positions_embed(position_ids)


def _block(model, block, x, additive_mask, cached_k, cached_v, slot_onehot):
    """One block (pre-LN for GPT-2, post-LN for GPT-1), returning its output and the layer's keys/values."""
    if model.config.arch == "gpt2":
        attended, k, v = _attention(block.attn, block.ln_1(x), additive_mask, cached_k, cached_v, slot_onehot)
        x = x + attended
        return x + block.mlp.c_proj(gelu_new(block.mlp.c_fc(block.ln_2(x)))), k, v
    attended, k, v = _attention(block.attn, x, additive_mask, cached_k, cached_v, slot_onehot)
    n = block.ln_1(x + attended)
    return block.ln_2(n + block.mlp.c_proj(gelu_new(block.mlp.c_fc(n)))), k, v


def _attention(attn, x, additive_mask, cached_k, cached_v, slot_onehot):
    """CausalSelfAttention.construct, with the keys and values of earlier tokens read from the cache."""
    q, k, v = ops.split(attn.c_attn(x), x.shape[-1], axis=-1)
    q, k, v = attn.split_heads(q), attn.split_heads(k), attn.split_heads(v)
    if cached_k is not None:  # [B, H, 1, D] broadcast into its slot of [B, H, slots, D]
        k = cached_k + slot_onehot.astype(k.dtype) * k
        v = cached_v + slot_onehot.astype(v.dtype) * v
    scores = attn.query_key(q * attn.scale, k)
    probs = ops.softmax(scores.astype(ms.float32) + additive_mask.astype(ms.float32), axis=-1)
    y = attn.merge_heads(attn.weigh_values(probs.astype(v.dtype), v))
    return attn.c_proj(y), k, v


def _last_logits(model, x):
    if model.config.arch == "gpt2":
        x = model.transformer.ln_f(x)
    return model.lm_logits(x[:, -1:, :])[:, 0, :]

