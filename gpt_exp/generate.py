"""Batched decoding with gpt_exp's GPT: greedy, beam search, and sampling (temperature, top-k, top-p).

There is no KV cache: each step runs the model over the whole batch again, which keeps this short and
obviously correct. Prompts of different lengths are left-padded so that every row predicts its next
token in the last column; the attention mask hides the padding and position ids start at 0 on each
row's first real token, so a row computes the same logits in a batch as alone.

The forward pass is jit-compiled (a tiny model's step: ~3 ms in graph mode, ~150 ms in PyNative) and
cached on the model. To compile only a few shapes, the batch keeps a fixed number of rows (finished
ones ride along) and its width is padded up to a power of two (at least MIN_WIDTH): one compilation per width.

A sequence ends at `eos_token_id` (which is included, as the last of its new tokens) or after
`max_new_tokens`. When prompt + new tokens outgrow the model's positions, the model sees only the
last `max_positions` tokens (a sliding window), so the prompt is in effect truncated from the left.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import mindspore as ms
import numpy as np

STRATEGIES = ("greedy", "beam", "sample")
MIN_WIDTH = 32  # the narrowest compiled batch: short prompts share one graph instead of compiling 1, 2, 4...


def generate(model, prompts: list[list[int]], max_new_tokens: int, strategy: str = "greedy",
             num_beams: int = 4, temperature: float = 1.0, top_k: int = 0, top_p: float = 1.0,
             eos_token_id: int | None = None, pad_token_id: int = 0, seed: int | None = None,
             max_positions: int | None = None, length_penalty: float = 1.0,
             min_new_tokens: int = 0, suppress_token_ids: tuple[int, ...] = ()) -> list[list[int]]:
    """The new tokens of each prompt (prompts are lists of token ids), eos included when reached.

    greedy: the most likely token; sample: a draw from the distribution after temperature, top_k
    (0 = off) and top_p (1.0 = off), reproducible with `seed`; beam: beam search with `num_beams`,
    returning the beam with the best log-probability / length**length_penalty (as HF does).
    min_new_tokens: eos cannot be chosen before that many new tokens (HF's min_new_tokens).
    suppress_token_ids: tokens never chosen, e.g. [UNK] and [PAD] (HF's suppress_tokens).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be one of {STRATEGIES}, got {strategy!r}")
    prompts = [[int(t) for t in p] for p in prompts]  # numpy rows would add element-wise below
    if any(len(p) == 0 for p in prompts):
        raise ValueError("every prompt needs at least one token (e.g. a BOS token) to condition on")
    if strategy == "sample" and temperature <= 0:
        raise ValueError(f"temperature must be > 0 for sampling, got {temperature} (use strategy='greedy')")
    if strategy == "beam" and num_beams < 1:
        raise ValueError(f"num_beams must be >= 1, got {num_beams}")
    n_positions = model.config.n_positions
    window = min(max_positions or n_positions, n_positions)
    n_rows = len(prompts) * (num_beams if strategy == "beam" else 1)
    step = _compiled_step(model)
    next_logits = lambda rows: _next_token_logits(step, rows, n_rows, window, pad_token_id)  # noqa: E731
    if min_new_tokens > 0 and eos_token_id is not None:
        next_logits = _eos_barred(next_logits, min_new_tokens, eos_token_id)
    if suppress_token_ids:
        next_logits = _suppressed(next_logits, list(suppress_token_ids))

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
    rows += [rows[0]] * (n_rows - len(rows))  # filler rows keep the compiled shape
    width = min(window, max(MIN_WIDTH, 1 << (max(len(row) for row in rows) - 1).bit_length()))
    input_ids = np.full((n_rows, width), pad_token_id, np.int32)
    attention_mask = np.zeros((n_rows, width), np.int32)
    position_ids = np.zeros((n_rows, width), np.int32)
    for i, row in enumerate(rows):  # left padding: every row ends in the last column
        input_ids[i, width - len(row):] = row
        attention_mask[i, width - len(row):] = 1
        position_ids[i, width - len(row):] = np.arange(len(row))
    logits = step(ms.Tensor(input_ids), ms.Tensor(attention_mask), ms.Tensor(position_ids))
    return logits.asnumpy()[:len(rows), 0, :].astype(np.float64)


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
            for token in np.argsort(-row, kind="stable")[:num_beams]:  # more could never enter the top num_beams
                candidates[p].append(_Beam(beam.tokens + [int(token)], beam.log_prob + float(row[token]),
                                           int(token) == eos_token_id))
        beams = [sorted(pool, key=lambda b: b.log_prob, reverse=True)[:num_beams] for pool in candidates]
    best = lambda b: b.log_prob / max(len(b.tokens), 1) ** length_penalty  # noqa: E731
    return [max(pool, key=best).tokens for pool in beams]
