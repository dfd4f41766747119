"""Batched decoding with gpt_exp's GPT: greedy, beam search, and sampling (temperature, top-k, top-p).

With `use_cache` (the default) the prompts run through the model once and every later step feeds one
token per sequence, reading the earlier tokens' keys and values from a cache (gpt_exp/model/kv_cache.py).
Without it, or when prompt + new tokens do not fit the model's positions, each step runs the model over
the whole batch again: slower, and the reference the cached path is tested against.

Prompts of different lengths are left-padded so that every row predicts its next token in the last
column; the attention mask hides the padding and position ids start at 0 on each row's first real
token, so a row computes the same logits in a batch as alone.

The forward passes are jit-compiled (a tiny model's step: ~3 ms in graph mode, ~150 ms in PyNative) and
cached on the model. To compile only a few shapes, the batch keeps a fixed number of rows (finished
ones ride along) and its width is padded up to a power of two (at least MIN_WIDTH): one compilation per width.

A sequence ends at `eos_token_id` (which is included, as the last of its new tokens) or after
`max_new_tokens`. When prompt + new tokens outgrow the model's positions, the model sees only the
last `max_positions` tokens (a sliding window, uncached), so the prompt is in effect truncated from the left.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import mindspore as ms
import numpy as np

from gpt_exp.model import kv_cache
from gpt_exp.model.gpt import MASK_VALUE

STRATEGIES = ("greedy", "beam", "sample")
MIN_WIDTH = 32  # the narrowest compiled batch: short prompts share one graph instead of compiling 1, 2, 4...


def generate(model, prompts: list[list[int]], max_new_tokens: int, strategy: str = "greedy",
             num_beams: int = 4, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             eos_token_id: int | None = None, pad_token_id: int = 0, seed: int | None = None,
             max_positions: int | None = None, length_penalty: float = 1.0,
             min_new_tokens: int = 0, suppress_token_ids: tuple[int, ...] = (),
             repetition_penalty: float = 1.0, no_repeat_ngram_size: int = 0,
             use_cache: bool = True) -> list[list[int]]:
    """The new tokens of each prompt (prompts are lists of token ids), eos included when reached.

    greedy: the most likely token; sample: a draw from the distribution after temperature, top_k
    (0 = off) and top_p (1.0 = off), reproducible with `seed`; beam: beam search with `num_beams`,
    returning the beam with the best log-probability / length**length_penalty (as HF does).
    min_new_tokens: eos cannot be chosen before that many new tokens (HF's min_new_tokens).
    suppress_token_ids: tokens never chosen, e.g. [UNK] and [PAD] (HF's suppress_tokens).
    repetition_penalty (1.0 = off) and no_repeat_ngram_size (0 = off) work as HF's options of those names
    (CTRL's penalty: a repeated token's logit divided by the penalty when positive, multiplied when
    negative; an n-gram never generated twice), except that only the new tokens count, not the prompt:
    a headline copies the words of its article, and must not be pushed away from them.
    use_cache: decode with a key/value cache when prompt + new tokens fit the window (same tokens, faster).
    """
    prompts = [[int(t) for t in p] for p in prompts]  # numpy rows would add element-wise below
    _check_options(prompts, strategy, temperature, num_beams, repetition_penalty, no_repeat_ngram_size)
    n_positions = model.config.n_positions
    window = min(max_positions or n_positions, n_positions)
    n_rows = len(prompts) * (num_beams if strategy == "beam" else 1)
    if use_cache and max(len(p) for p in prompts) + max_new_tokens <= window:
        next_logits = _CachedLogits(model, n_rows, max_new_tokens, window, pad_token_id)
    else:
        step = _compiled_step(model)
        next_logits = lambda rows: _next_token_logits(step, rows, n_rows, window, pad_token_id)  # noqa: E731
    if min_new_tokens > 0 and eos_token_id is not None:
        next_logits = _eos_barred(next_logits, min_new_tokens, eos_token_id)
    if suppress_token_ids:
        next_logits = _suppressed(next_logits, list(suppress_token_ids))
    if repetition_penalty != 1.0 or no_repeat_ngram_size:
        next_logits = _repetition_controlled(next_logits, repetition_penalty, no_repeat_ngram_size)

    was_training = model.training
    model.set_train(False)  # no dropout while decoding
    try:
        if strategy == "beam":
            return _beam_search(next_logits, prompts, max_new_tokens, num_beams, eos_token_id, length_penalty)
        if strategy == "greedy":
            choose = _argmax
        else:
            rng = np.random.default_rng(seed)
            choose = lambda logits: _sample(logits, temperature, top_k, top_p, rng)  # noqa: E731
        return _decode(next_logits, prompts, max_new_tokens, choose, eos_token_id)
    finally:
        model.set_train(was_training)


def _check_options(prompts: list[list[int]], strategy: str, temperature: float, num_beams: int,
                   repetition_penalty: float, no_repeat_ngram_size: int) -> None:
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (e.g. a BOS token) to condition on")
    if strategy == "sample" and temperature <= 0:
        raise ValueError(f"temperature must be > 0 for sampling, got {temperature} (use strategy='greedy')")
    if strategy == "beam" and num_beams < 1:
        raise ValueError(f"num_beams must be >= 1, got {num_beams}")
    if not repetition_penalty > 0:
        raise ValueError(f"repetition_penalty must be > 0 (1.0 = off), got {repetition_penalty}")
    if not isinstance(no_repeat_ngram_size, int) or no_repeat_ngram_size < 0:
        raise ValueError(f"no_repeat_ngram_size must be a whole number >= 0 (0 = off), got {no_repeat_ngram_size}")


def _compiled_step(model):
    """model(ids, mask, positions) -> logits of the last column, jit-compiled and cached on the model.

    Rebuilt when resize_token_embeddings has replaced the embedding (the compiled graph holds the
    parameter objects it was traced with); it is traced in eval mode, the only mode it runs in.
    """
    table = model.transformer.token_embedding().weight
    cached = model.__dict__.get("_generate_step")
    if cached is None or cached[0] is not table:

        @ms.jit
        def last_column_logits(input_ids, attention_mask, position_ids):
            hidden = model(input_ids, attention_mask, position_ids)
            return model.lm_logits(hidden[:, -1:, :])

        cached = (table, last_column_logits)
        object.__setattr__(model, "_generate_step", cached)  # plain attribute: Cell would register it
    return cached[1]


def _next_token_logits(step, rows: list[list[int]], n_rows: int, window: int, pad_token_id: int) -> np.ndarray:
    """Logits [len(rows), vocab] for the token after each row, which sees at most its last `window` tokens."""
    rows = [row[-window:] for row in rows]
    input_ids, attention_mask, position_ids = _left_padded(rows, n_rows, _width(rows, window), pad_token_id)
    logits = step(ms.Tensor(input_ids), ms.Tensor(attention_mask), ms.Tensor(position_ids))
    return logits.asnumpy()[:len(rows), 0, :].astype(np.float64)


def _left_padded(rows: list[list[int]], n_rows: int, width: int, pad_token_id: int):
    """[n_rows, width] input ids, attention mask and position ids; rows end in the last column."""
    rows = rows + [rows[0]] * (n_rows - len(rows))  # filler rows keep the compiled shape
    input_ids = np.full((n_rows, width), pad_token_id, np.int32)
    attention_mask = np.zeros((n_rows, width), np.int32)
    position_ids = np.zeros((n_rows, width), np.int32)
    for i, row in enumerate(rows):
        input_ids[i, width - len(row):] = row
        attention_mask[i, width - len(row):] = 1
        position_ids[i, width - len(row):] = np.arange(len(row))
    return input_ids, attention_mask, position_ids


def _width(rows: list[list[int]], window: int) -> int:
    return min(window, max(MIN_WIDTH, 1 << (max(len(row) for row in rows) - 1).bit_length()))


class _CachedLogits:
    """next_logits(rows) with a key/value cache.

    The first call runs the prompts (prefill); every later call must bring rows that each extend a row
    of the call before by one token, which is what the decoders do (beam search reorders and repeats
    rows: a row's cache is gathered from its parent's). The cache has a slot for each prompt column
    and each new token, so nothing is recompiled while decoding.
    """

    def __init__(self, model, n_rows: int, max_new_tokens: int, window: int, pad_token_id: int):
        self.prefill, self.extend = _compiled_cache_steps(model)
        self.n_rows, self.max_new_tokens, self.window, self.pad_token_id = n_rows, max_new_tokens, window, pad_token_id
        self.previous: dict[tuple, int] | None = None  # the last call's rows -> their batch index

    def __call__(self, rows: list[list[int]]) -> np.ndarray:
        logits = self._prefill(rows) if self.previous is None else self._extend(rows)
        self.previous = {tuple(row): i for i, row in enumerate(rows)}
        return logits[:len(rows)].astype(np.float64)

    def _prefill(self, rows):
        width = _width(rows, self.window)
        input_ids, attention_mask, position_ids = _left_padded(rows, self.n_rows, width, self.pad_token_id)
        self.slots = width + self.max_new_tokens
        self.next_slot = width
        self.key_valid = np.zeros((self.n_rows, self.slots), bool)
        self.key_valid[:, :width] = attention_mask.astype(bool)
        logits, self.keys, self.values = self.prefill(ms.Tensor(input_ids), ms.Tensor(attention_mask),
                                                      ms.Tensor(position_ids), self.slots)
        return logits.asnumpy()

    def _extend(self, rows):
        parents = [self.previous.get(tuple(row[:-1])) for row in rows]
        if None in parents:
            raise RuntimeError("cached decoding: a row does not extend a row of the previous step")
        if self.next_slot >= self.slots:
            raise RuntimeError(f"cached decoding: more than max_new_tokens={self.max_new_tokens} steps")
        parents += [0] * (self.n_rows - len(rows))
        input_ids = np.full((self.n_rows, 1), self.pad_token_id, np.int32)
        position_ids = np.zeros((self.n_rows, 1), np.int32)
        for i, row in enumerate(rows):
            input_ids[i, 0], position_ids[i, 0] = row[-1], len(row) - 1
        self.key_valid = self.key_valid[parents]
        self.key_valid[:, self.next_slot] = True
        key_mask = np.where(self.key_valid, 0.0, MASK_VALUE).astype(np.float32)[:, None, None, :]
        onehot = np.zeros((1, 1, self.slots, 1), np.float32)
        onehot[0, 0, self.next_slot, 0] = 1.0
        logits, self.keys, self.values = self.extend(
            ms.Tensor(input_ids), ms.Tensor(position_ids), ms.Tensor(key_mask), ms.Tensor(onehot),
            ms.Tensor(np.array(parents, np.int32)), ms.mutable(self.keys), ms.mutable(self.values))  # mutable: a
        # tuple of tensors is otherwise a constant of the graph, recompiled whenever its values change
        self.next_slot += 1
        return logits.asnumpy()


def _compiled_cache_steps(model):
    """(prefill, extend) of gpt_exp/model/kv_cache.py, jit-compiled and cached on the model like _compiled_step."""
    table = model.transformer.token_embedding().weight
    cached = model.__dict__.get("_generate_cache_steps")
    if cached is None or cached[0] is not table:

        @ms.jit
        def prefill(input_ids, attention_mask, position_ids, slots):
            return kv_cache.prefill(model, input_ids, attention_mask, position_ids, slots)

        @ms.jit
        def extend(input_ids, position_ids, key_mask, slot_onehot, parents, keys, values):
            keys, values = kv_cache.reorder(keys, parents), kv_cache.reorder(values, parents)
            return kv_cache.extend(model, input_ids, position_ids, key_mask, slot_onehot, keys, values)

        cached = (table, prefill, extend)
        object.__setattr__(model, "_generate_cache_steps", cached)
    return cached[1], cached[2]


def _eos_barred(next_logits, min_new_tokens: int, eos_token_id: int):
    """next_logits with eos at -inf on the first min_new_tokens calls.

    Both decoders call next_logits once per step with every growing sequence, all of which have as
    many new tokens as there were calls before: the call count is each row's length.
    """
    calls = 0

    def barred(rows):
        nonlocal calls
        logits = next_logits(rows)
        if calls < min_new_tokens:
            logits[:, eos_token_id] = -np.inf
        calls += 1
        return logits

    return barred


def _suppressed(next_logits, token_ids: list[int]):
    def suppressed(rows):
        logits = next_logits(rows)
        logits[:, token_ids] = -np.inf
        return logits

    return suppressed


def _repetition_controlled(next_logits, penalty: float, ngram_size: int):
    """next_logits with the repetition penalty and the n-gram ban applied to each row's new tokens.

    As in _eos_barred, every row of a call has as many new tokens as there were calls before.
    """
    calls = 0

    def controlled(rows):
        nonlocal calls
        logits = next_logits(rows)
        for i, row in enumerate(rows):
            new = row[len(row) - calls:] if calls else []
            if penalty != 1.0 and new:
                seen = np.unique(new)
                picked = logits[i, seen]
                logits[i, seen] = np.where(picked > 0, picked / penalty, picked * penalty)
            if ngram_size:
                logits[i, _banned_by_ngrams(new, ngram_size)] = -np.inf
        calls += 1
        return logits

    return controlled


def _banned_by_ngrams(tokens: list[int], n: int) -> list[int]:
    """The tokens that would complete an n-gram already in `tokens` (HF's no_repeat_ngram_size)."""
    if len(tokens) < n - 1 or not tokens:
        return []
    prefix = tuple(tokens[len(tokens) - n + 1:]) if n > 1 else ()
    return [tokens[j + n - 1] for j in range(len(tokens) - n + 1) if tuple(tokens[j:j + n - 1]) == prefix]


def _decode(next_logits, prompts, max_new_tokens, choose, eos_token_id) -> list[list[int]]:
    """Greedy or sampled decoding: one token per unfinished sequence per step."""
    new_tokens = [[] for _ in prompts]
    unfinished = list(range(len(prompts)))
    for _ in range(max_new_tokens):
        if not unfinished:
            break
        chosen = choose(next_logits([prompts[i] + new_tokens[i] for i in unfinished]))
        for i, token in zip(unfinished, chosen):
            new_tokens[i].append(int(token))
        unfinished = [i for i in unfinished if new_tokens[i][-1] != eos_token_id]
    return new_tokens


def _argmax(logits: np.ndarray) -> np.ndarray:
    return logits.argmax(axis=-1)


def _sample(logits: np.ndarray, temperature: float, top_k: int, top_p: float,
            rng: np.random.Generator) -> list[int]:
    logits = logits / temperature
    if top_k > 0:
        kth_largest = np.sort(logits, axis=-1)[:, -min(top_k, logits.shape[-1])][:, None]
        logits = np.where(logits < kth_largest, -np.inf, logits)
    probs = _softmax(logits)
    if top_p < 1.0:
        probs = _nucleus(probs, top_p)
    return [int(rng.choice(len(p), p=p)) for p in probs]


def _nucleus(probs: np.ndarray, top_p: float) -> np.ndarray:
    """Keep the most likely tokens until their mass reaches top_p (at least one), renormalized."""
    order = np.argsort(-probs, axis=-1)
    sorted_probs = np.take_along_axis(probs, order, axis=-1)
    mass_before = np.cumsum(sorted_probs, axis=-1) - sorted_probs
    drop = np.zeros_like(probs, dtype=bool)
    np.put_along_axis(drop, order, mass_before >= top_p, axis=-1)
    probs = np.where(drop, 0.0, probs)
    return probs / probs.sum(axis=-1, keepdims=True)


def _softmax(logits: np.ndarray) -> np.ndarray:
    shifted = np.exp(logits - logits.max(axis=-1, keepdims=True))
    return shifted / shifted.sum(axis=-1, keepdims=True)


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def _top_tokens(row: np.ndarray, k: int) -> np.ndarray:
    """The k largest entries' indices, largest first, ties by lower index: np.argsort(-row, kind="stable")[:k]
    without sorting the whole vocabulary (which took most of a cached beam search's time)."""
    if k >= len(row):
        return np.argsort(-row, kind="stable")
    kth_largest = np.partition(row, len(row) - k)[len(row) - k]
    candidates = np.flatnonzero(row >= kth_largest)  # ascending indices; ties with the k-th value included
    return candidates[np.argsort(-row[candidates], kind="stable")][:k]


@dataclass
class _Beam:
    tokens: list = field(default_factory=list)
    log_prob: float = 0.0
    finished: bool = False


def _beam_search(next_logits, prompts, max_new_tokens, num_beams, eos_token_id,
                 length_penalty) -> list[list[int]]:
    """Beam search for all prompts at once: their unfinished beams share each forward pass.

    Finished beams stay in the pool with their final log-probability, so a longer beam replaces one
    only by being more likely; with num_beams=1 this is exactly greedy decoding.
    """
    beams = [[_Beam()] for _ in prompts]  # one empty beam per prompt; it branches on the first step
    for _ in range(max_new_tokens):
        growing = [(p, beam) for p, pool in enumerate(beams) for beam in pool if not beam.finished]
        if not growing:
            break
        log_probs = _log_softmax(next_logits([prompts[p] + beam.tokens for p, beam in growing]))
        candidates = [[beam for beam in pool if beam.finished] for pool in beams]
        for (p, beam), row in zip(growing, log_probs):
            for token in _top_tokens(row, num_beams):  # more could never enter the top num_beams
                candidates[p].append(_Beam(beam.tokens + [int(token)], beam.log_prob + float(row[token]),
                                           int(token) == eos_token_id))
        beams = [sorted(pool, key=lambda b: b.log_prob, reverse=True)[:num_beams] for pool in candidates]
    best = lambda b: b.log_prob / max(len(b.tokens), 1) ** length_penalty  # noqa: E731
    return [max(pool, key=best).tokens for pool in beams]
