"""Batched decoding: greedy, beam search and sampling on a tiny GPT, checked against simple references."""
import mindspore as ms
import numpy as np
import pytest

from gpt_exp.generate import generate
from gpt_exp.model import GPT, GPTConfig, load_state_dict, state_dict

PROMPTS = [[5, 17, 3, 42, 8, 1], [7], [60, 2, 9]]


@pytest.fixture(scope="module")
def models():
    ms.set_seed(0)
    # dropout on: decoding must switch it off, or nothing below would be deterministic
    return {arch: GPT(GPTConfig(arch, vocab_size=100, n_positions=24, n_embd=32, n_layer=2, n_head=4,
                                dropout=0.1)) for arch in ("gpt2", "gpt1")}


@pytest.fixture
def model(models):
    """Decoding does not depend on the architecture; the two tests that involve the model's masking run both."""
    return models["gpt2"]


def argmax_loop(model, prompt, max_new_tokens):
    """The reference: one unpadded sequence, the whole forward pass each step, argmax of the last logits."""
    model.set_train(False)
    tokens = list(prompt)
    for _ in range(max_new_tokens):
        logits = model.lm_logits(model(ms.Tensor([tokens], ms.int32))).asnumpy()
        tokens.append(int(logits[0, -1].argmax()))
    return tokens[len(prompt):]


def log_prob(model, prompt, continuation):
    model.set_train(False)
    tokens = prompt + continuation
    logits = model.lm_logits(model(ms.Tensor([tokens], ms.int32))).asnumpy()[0].astype(np.float64)
    log_probs = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    return sum(log_probs[len(prompt) - 1 + i, t] for i, t in enumerate(continuation))


@pytest.mark.parametrize("arch", ["gpt2", "gpt1"])
def test_greedy_equals_an_argmax_loop(models, arch):
    model = models[arch]
    assert generate(model, PROMPTS[:1], 6) == [argmax_loop(model, PROMPTS[0], 6)]


@pytest.mark.parametrize("arch,strategy", [("gpt2", "greedy"), ("gpt1", "greedy"), ("gpt2", "beam")])
def test_a_batch_of_different_lengths_equals_one_by_one(models, arch, strategy):
    model = models[arch]
    batched = generate(model, PROMPTS, 5, strategy=strategy, num_beams=3)
    assert batched == [generate(model, [p], 5, strategy=strategy, num_beams=3)[0] for p in PROMPTS]


def test_stops_at_eos_and_includes_it(model):
    unconstrained = generate(model, PROMPTS, 6)
    eos = unconstrained[0][2]
    stopped = generate(model, PROMPTS, 6, eos_token_id=eos)
    for free, out in zip(unconstrained, stopped):
        expected = free[:free.index(eos) + 1] if eos in free else free
        assert out == expected


def test_beam_with_one_beam_is_greedy(model):
    eos = generate(model, PROMPTS, 6)[1][3]
    assert generate(model, PROMPTS, 6, strategy="beam", num_beams=1, eos_token_id=eos) == \
        generate(model, PROMPTS, 6, eos_token_id=eos)


def test_beam_search_finds_a_likelier_continuation_than_greedy(model):
    greedy = generate(model, PROMPTS, 6)
    beam = generate(model, PROMPTS, 6, strategy="beam", num_beams=4)
    for prompt, g, b in zip(PROMPTS, greedy, beam):
        assert len(b) == 6 and log_prob(model, prompt, b) >= log_prob(model, prompt, g) - 1e-6


def test_sampling_is_reproducible_with_a_seed(model):
    def sample(seed):
        return generate(model, PROMPTS, 8, strategy="sample", temperature=1.5, top_p=0.9, seed=seed)

    assert sample(1) == sample(1)
    assert sample(1) != sample(2)


def test_top_k_1_and_tiny_top_p_are_greedy(model):
    greedy = generate(model, PROMPTS, 5)
    assert generate(model, PROMPTS, 5, strategy="sample", top_k=1, seed=0) == greedy
    assert generate(model, PROMPTS, 5, strategy="sample", top_p=1e-9, seed=0) == greedy


def test_never_exceeds_the_positions_and_sees_the_last_window(model):
    long_prompt = list(np.random.RandomState(0).randint(0, 100, 30))  # longer than n_positions=24
    out = generate(model, [long_prompt], 4)
    assert out == [argmax_loop(model, long_prompt[-24:], 1) + out[0][1:]]
    assert generate(model, [long_prompt], 2, max_positions=10)[0][0] == argmax_loop(model, long_prompt[-10:], 1)[0]


def test_follows_new_weights_and_a_resized_vocabulary():
    """generate caches a compiled step on the model: it must see load_state_dict and resizing."""
    ms.set_seed(1)
    model = GPT(GPTConfig("gpt2", vocab_size=100, n_positions=24, n_embd=32, n_layer=2, n_head=4))
    generate(model, PROMPTS[:1], 3)
    rng = np.random.RandomState(0)
    load_state_dict(model, {k: rng.normal(0, 0.3, v.shape).astype(np.float32)
                            for k, v in state_dict(model).items()})
    assert generate(model, PROMPTS[:1], 3) == [argmax_loop(model, PROMPTS[0], 3)]
    model.resize_token_embeddings(130)
    assert generate(model, PROMPTS[:1], 3) == [argmax_loop(model, PROMPTS[0], 3)]


def test_restores_training_mode(model):
    model.set_train(True)
    generate(model, PROMPTS[:1], 2)
    assert model.training
    model.set_train(False)
    generate(model, PROMPTS[:1], 2)
    assert not model.training


def test_rejects_bad_arguments(model):
    with pytest.raises(ValueError, match="strategy"):
        generate(model, PROMPTS, 2, strategy="nucleus")
    with pytest.raises(ValueError, match="at least one token"):
        generate(model, [[]], 2)


@pytest.mark.parametrize("arch", ["gpt2", "gpt1"])
def test_cached_prefill_and_extend_give_the_full_forward_logits(models, arch):
    """The key/value cache computes the same next-token logits as the whole forward pass, step by step."""
    from gpt_exp.generate import _CachedLogits

    model = models[arch]
    model.set_train(False)
    cached = _CachedLogits(model, n_rows=len(PROMPTS), max_new_tokens=4, window=24, pad_token_id=0)
    rows = [list(p) for p in PROMPTS]
    rng = np.random.RandomState(0)
    for _ in range(4):
        logits = cached(rows)
        for row, row_logits in zip(rows, logits):
            full = model.lm_logits(model(ms.Tensor([row], ms.int32))).asnumpy()[0, -1]
            np.testing.assert_allclose(row_logits, full, rtol=1e-4, atol=1e-4)
        rows = [row + [int(rng.randint(100))] for row in rows]


@pytest.mark.parametrize("arch,strategy", [("gpt2", "greedy"), ("gpt1", "greedy"), ("gpt2", "beam"),
                                           ("gpt1", "beam"), ("gpt2", "sample")])
def test_cached_decoding_chooses_the_same_tokens_as_uncached(models, arch, strategy):
    model = models[arch]
    kwargs = dict(strategy=strategy, num_beams=3, temperature=1.3, top_k=20, seed=3)
    assert generate(model, PROMPTS, 7, use_cache=True, **kwargs) == \
        generate(model, PROMPTS, 7, use_cache=False, **kwargs)


def test_cached_decoding_stops_at_eos_and_respects_min_new_tokens(model):
    free = generate(model, PROMPTS, 6, use_cache=False)
    eos = free[0][1]
    for min_new in (0, 3):
        assert generate(model, PROMPTS, 6, eos_token_id=eos, min_new_tokens=min_new, use_cache=True) == \
            generate(model, PROMPTS, 6, eos_token_id=eos, min_new_tokens=min_new, use_cache=False)


def test_top_tokens_equals_a_stable_full_sort_ties_included():
    from gpt_exp.generate import _top_tokens

    rng = np.random.default_rng(0)
    for _ in range(500):
        n = int(rng.integers(1, 40))
        row = rng.integers(0, 4, n).astype(float)  # many ties
        row[rng.random(n) < 0.3] = -np.inf  # suppressed tokens
        k = int(rng.integers(1, 8))
        assert list(_top_tokens(row, k)) == list(np.argsort(-row, kind="stable")[:k])


# --------------------------------------------------------------------------- repetition controls

def penalized_argmax_loop(model, prompt, max_new_tokens, penalty=1.0, ngram=0):
    """The reference for repetition_penalty and no_repeat_ngram_size, written out as HF documents them,
    over the new tokens only: full forward each step, adjust the last logits, argmax."""
    model.set_train(False)
    new = []
    for _ in range(max_new_tokens):
        tokens = prompt + new  # right-padded to one width: causal attention never sees the padding, and
        padded = np.zeros((1, model.config.n_positions), np.int32)  # one shape compiles once in PyNative
        padded[0, :len(tokens)] = tokens
        logits = model.lm_logits(model(ms.Tensor(padded))).asnumpy()[0, len(tokens) - 1].astype(np.float64)
        for token in set(new):
            logits[token] = logits[token] / penalty if logits[token] > 0 else logits[token] * penalty
        if ngram:
            grams = {tuple(new[j:j + ngram]) for j in range(len(new) - ngram + 1)}
            for token in range(len(logits)):
                if len(new) >= ngram - 1 and tuple(new[len(new) - ngram + 1:] + [token]) in grams:
                    logits[token] = -np.inf
        new.append(int(logits.argmax()))
    return new


def repeated_ngrams(tokens, n):
    grams = [tuple(tokens[j:j + n]) for j in range(len(tokens) - n + 1)]
    return len(grams) - len(set(grams))


NEW = 16  # new tokens in every call below: the compiled decoding graphs are shared


@pytest.fixture(scope="module")
def looping_model():
    """A tiny random GPT whose greedy continuation repeats itself, as an untrained or weak model does."""
    ms.set_seed(4)
    model = GPT(GPTConfig("gpt2", vocab_size=100, n_positions=48, n_embd=16, n_layer=1, n_head=2, dropout=0.0))
    baseline = generate(model, PROMPTS, NEW)
    assert all(repeated_ngrams(row, 2) > 3 for row in baseline), baseline  # or the checks below prove nothing
    return model


def test_repetition_penalty_follows_the_reference(looping_model):
    got = generate(looping_model, PROMPTS, NEW, repetition_penalty=2.0)
    assert got == [penalized_argmax_loop(looping_model, p, NEW, penalty=2.0) for p in PROMPTS]
    plain = generate(looping_model, PROMPTS, NEW)
    assert generate(looping_model, PROMPTS, NEW, repetition_penalty=1.0) == plain
    # a strong penalty spreads the tokens out
    penalized = generate(looping_model, PROMPTS, NEW, repetition_penalty=5.0)
    assert sum(len(set(row)) for row in penalized) > sum(len(set(row)) for row in plain)


@pytest.mark.parametrize("strategy", ["greedy", "beam", "sample"])
@pytest.mark.parametrize("size", [1, 2, 3])
def test_no_repeat_ngram_size_never_repeats_an_ngram(looping_model, strategy, size):
    rows = generate(looping_model, PROMPTS, NEW, strategy=strategy, num_beams=3, seed=0, no_repeat_ngram_size=size)
    for row in rows:
        assert len(row) == NEW and repeated_ngrams(row, size) == 0, row
    if strategy == "greedy":
        assert rows[0] == penalized_argmax_loop(looping_model, PROMPTS[0], NEW, ngram=size)


def test_repetition_options_ignore_the_prompt(looping_model):
    """Only the new tokens count: a continuation may reuse the prompt's tokens (a headline copies its article)."""
    prompt = PROMPTS[0] + generate(looping_model, PROMPTS[:1], NEW, no_repeat_ngram_size=2)[0]
    new = generate(looping_model, [prompt] * len(PROMPTS), NEW, no_repeat_ngram_size=2)[0]  # the shapes above
    assert new == penalized_argmax_loop(looping_model, prompt, NEW, ngram=2)


def test_rejects_bad_repetition_options(model):
    with pytest.raises(ValueError, match="repetition_penalty"):
        generate(model, PROMPTS, 2, repetition_penalty=0.0)
    with pytest.raises(ValueError, match="no_repeat_ngram_size"):
        generate(model, PROMPTS, 2, no_repeat_ngram_size=-1)
