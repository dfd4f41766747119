"""The fine-tuning metrics against values worked out by hand or published with a well-known example."""
from __future__ import annotations

import math

import numpy as np
import pytest

from gpt_exp import metrics

# Anscombe's quartet, set I: its Pearson r is the famous 0.816 (0.81642 to five places)
ANSCOMBE_X = [10, 8, 13, 9, 11, 14, 6, 4, 12, 7, 5]
ANSCOMBE_Y1 = [8.04, 6.95, 7.58, 8.81, 8.33, 9.96, 7.24, 4.26, 10.84, 4.82, 5.68]


def test_accuracy():
    assert metrics.accuracy([0, 1, 1, 0], [0, 1, 0, 0]) == 0.75
    assert metrics.accuracy(np.array([2, 2]), np.array([2, 2])) == 1.0
    with pytest.raises(ValueError):
        metrics.accuracy([0, 1], [0, 1, 1])


def test_macro_f1_matches_scikit_learns_documented_example():
    # sklearn.metrics.f1_score docs: y_true=[0,1,2,0,1,2], y_pred=[0,2,1,0,0,1], average="macro" -> 0.26666...
    assert metrics.macro_f1([0, 2, 1, 0, 0, 1], [0, 1, 2, 0, 1, 2]) == pytest.approx(0.26666666666666666)


def test_macro_f1_does_not_reward_the_majority_class():
    labels = np.array([0] * 50 + [1] * 37 + [2] * 13)  # vitaminc's class shares
    majority = np.zeros(100, int)
    assert metrics.accuracy(majority, labels) == 0.5
    # class 0: precision .5, recall 1 -> F1 2/3; classes 1 and 2: F1 0
    assert metrics.macro_f1(majority, labels, num_classes=3) == pytest.approx((2 / 3) / 3)
    assert metrics.macro_f1(labels, labels, num_classes=3) == 1.0


def test_pearson_by_hand_and_anscombe():
    assert metrics.pearson([1, 2, 3], [1, 3, 2]) == pytest.approx(0.5)  # cov 1 / sqrt(2 * 2)
    assert metrics.pearson(ANSCOMBE_X, ANSCOMBE_Y1) == pytest.approx(0.81642, abs=5e-6)
    assert metrics.pearson([1, 2, 3], [-2, -4, -6]) == pytest.approx(-1.0)


def test_spearman_ranks_ties_and_ignores_monotone_bends():
    x = np.arange(1, 6)
    assert metrics.spearman(x, x ** 3) == pytest.approx(1.0)
    assert metrics.pearson(x, x ** 3) < 0.99
    # ties share their mean rank: ranks [1, 2.5, 2.5, 4] vs [1, 2, 3, 4] -> 4.5 / sqrt(4.5 * 5)
    assert metrics.spearman([1, 2, 2, 3], [1, 2, 3, 4]) == pytest.approx(4.5 / math.sqrt(22.5))


def test_correlation_of_a_constant_prediction_is_undefined():
    assert math.isnan(metrics.pearson([3, 3, 3], [1, 2, 3]))
    assert math.isnan(metrics.spearman([1, 2, 3], [0, 0, 0]))


def test_cross_entropy():
    assert metrics.cross_entropy(np.zeros((3, 4)), np.array([0, 1, 3])) == pytest.approx(math.log(4))
    # huge logits stay finite: log-softmax is computed stably
    assert metrics.cross_entropy(np.array([[1000.0, 0.0]]), np.array([1])) == pytest.approx(1000.0)


# --------------------------------------------------------------------------- bits per character

def test_bits_per_char_definition():
    # 10 characters coded in 10 * ln 2 nats: one bit each
    assert metrics.bits_per_char(10 * math.log(2), 10) == pytest.approx(1.0)
    assert metrics.bits_per_char(3.0, 4) == pytest.approx(3.0 / 4 / math.log(2))
    with pytest.raises(ValueError):
        metrics.bits_per_char(1.0, 0)


LINES = ["ROMEO: But soft, what light through yonder window breaks?", "JULIET: O Romeo, Romeo!",
         "Wherefore art thou Romeo?", "Deny thy father and refuse thy name.", "Or, if thou wilt not,",
         "be but sworn my love, and I'll no longer be a Capulet.", "What's in a name?"]


@pytest.fixture(scope="module")
def gpt2_tokenizer():
    import os
    from pathlib import Path

    from gpt_exp.tokenizers import gpt2_bpe

    return gpt2_bpe(Path(os.environ["GPT_EXP_CACHE"]))


def tiny_gpt(vocab_size: int, seed: int = 0):
    import mindspore

    from gpt_exp.model import GPT, GPTConfig

    mindspore.set_seed(seed)
    return GPT(GPTConfig("gpt2", vocab_size=vocab_size, n_positions=64, n_embd=32, n_layer=1, n_head=2, dropout=0.0))


def lm_split(tokenizer, texts: list[str]):
    """The LM task's test split of `texts` with a block length that covers every target exactly."""
    from datasets import Dataset, DatasetDict

    from gpt_exp.tasks.lm import LanguageModelingTask

    targets = sum(len(tokenizer.encode(t)) + 1 for t in texts) - 1  # eos after each document
    length = next(n for n in range(12, 2, -1) if targets % n == 0 and (targets // n) % 3)
    task = LanguageModelingTask("lm", max_seq_len=length)
    records = DatasetDict({split: Dataset.from_list([{"text": t} for t in texts]) for split in ("train", "test")})
    return task, task.build_arrays(records, tokenizer, None, None)["test"], targets


def test_lm_bits_per_char_is_a_hand_count_with_a_uniform_model(gpt2_tokenizer):
    import mindspore

    task, split, targets = lm_split(gpt2_tokenizer, LINES)
    model = tiny_gpt(gpt2_tokenizer.vocab_size)
    table = model.transformer.token_embedding().weight
    table.set_data(mindspore.ops.zeros(table.shape, table.dtype))  # tied head: every logit 0, p = 1 / V
    network = task.build_network(model)
    network.set_train(False)
    result = task.evaluate(network, split, batch_size=3, max_batches=None)  # a padded last batch
    characters = sum(len(t) for t in LINES)
    # every one of the split's targets costs log2(V) bits
    assert result["bits_per_char"] == pytest.approx(targets * math.log2(gpt2_tokenizer.vocab_size) / characters,
                                                    rel=1e-5)
    assert result["loss"] == pytest.approx(math.log(gpt2_tokenizer.vocab_size), rel=1e-5)


def test_lm_bits_per_char_sums_the_tokens_losses_over_the_characters(gpt2_tokenizer):
    import mindspore

    task, split, targets = lm_split(gpt2_tokenizer, LINES)
    model = tiny_gpt(gpt2_tokenizer.vocab_size, seed=3)
    network = task.build_network(model)
    network.set_train(False)
    result = task.evaluate(network, split, batch_size=3, max_batches=None)
    blocks = split["tokens"]
    assert blocks.shape[0] * (blocks.shape[1] - 1) == targets
    logits = model.lm_logits(model(mindspore.Tensor(blocks[:, :-1]))).asnumpy()
    nats = metrics.cross_entropy(logits.reshape(-1, logits.shape[-1]), blocks[:, 1:].reshape(-1)) * targets
    expected = nats / sum(len(t) for t in LINES) / math.log(2)
    assert result["bits_per_char"] == pytest.approx(expected, rel=1e-5)
    # the per-block scores kept for intervals average back to the split's figure
    scores = task.sample_scores["test"]
    assert len(scores["bits_per_char"]) == blocks.shape[0]
    mean, low, high = metrics.bootstrap_interval(scores["bits_per_char"], weights=scores["chars"])
    assert mean == pytest.approx(expected, rel=1e-5) and low < mean < high


def test_auxiliary_lm_bits_per_char_of_a_fine_tune_is_a_hand_count(gpt2_tokenizer):
    import mindspore
    from conftest import compose
    from datasets import Dataset, DatasetDict
    from hydra.utils import instantiate

    from gpt_exp.tokenizers import TextTokenizer

    tokenizer = TextTokenizer(gpt2_tokenizer.backend, gpt2_tokenizer.special_tokens, "gpt2_bpe")
    cfg = compose(["task=classification", "task.label_names=[neg,pos]"])
    task = instantiate(cfg.task, _convert_="all")
    records = DatasetDict({split: Dataset.from_list([{"text": t, "label": i % 2} for i, t in enumerate(LINES)])
                           for split in ("train", "test")})
    task.prepare_tokenizer(tokenizer)
    arrays = task.build_arrays(records, tokenizer, cfg.truncation, cfg.data)["test"]
    model = tiny_gpt(tokenizer.vocab_size)
    table = model.transformer.token_embedding().weight
    table.set_data(mindspore.ops.zeros(table.shape, table.dtype))
    network = task.build_network(model)
    network.set_train(False)
    result = task.evaluate(network, arrays, batch_size=4, max_batches=None)
    # [start] text [extract]: every token after [start] is a target, each log2(V) bits under the uniform model
    targets = sum(len(tokenizer.encode(t)) + 1 for t in LINES)
    expected = targets * math.log2(tokenizer.vocab_size) / sum(len(t) for t in LINES)
    assert result["bits_per_char"] == pytest.approx(expected, rel=1e-5)
    scores = task.sample_scores["test"]
    assert scores["chars"].sum() == pytest.approx(sum(len(t) for t in LINES))
    assert set(scores["accuracy"]) <= {0.0, 1.0} and scores["accuracy"].mean() == pytest.approx(result["accuracy"])


# --------------------------------------------------------------------------- bootstrap intervals

def test_bootstrap_interval_of_a_proportion_matches_the_normal_approximation():
    values = np.array([1.0] * 200 + [0.0] * 200)  # p = 0.5, standard error sqrt(0.25 / 400) = 0.025
    mean, low, high = metrics.bootstrap_interval(values, n=1000, seed=0)
    assert mean == 0.5
    assert low == pytest.approx(0.5 - 1.96 * 0.025, abs=0.008) and high == pytest.approx(0.5 + 1.96 * 0.025, abs=0.008)
    assert metrics.bootstrap_interval(values, n=1000, seed=0) == (mean, low, high)  # seeded: reproducible


def test_bootstrap_interval_of_a_gaussian_mean():
    values = np.random.default_rng(1).normal(10.0, 2.0, 2000)
    mean, low, high = metrics.bootstrap_interval(values)
    half_width = 1.96 * values.std(ddof=1) / math.sqrt(len(values))  # ~0.088
    assert mean == pytest.approx(values.mean())
    assert (high - low) / 2 == pytest.approx(half_width, rel=0.12)
    assert low < mean < high


def test_bootstrap_interval_edge_cases():
    assert metrics.bootstrap_interval([3.0, 3.0, 3.0]) == (3.0, 3.0, 3.0)  # no spread, no interval
    # weighted: the ratio sum(w v) / sum(w), as bits/char of blocks weighted by their characters
    mean, low, high = metrics.bootstrap_interval([1.0, 3.0], weights=[3.0, 1.0])
    assert mean == pytest.approx(1.5) and 1.0 <= low <= mean <= high <= 3.0
    with pytest.raises(ValueError):
        metrics.bootstrap_interval([])


def test_sample_scores_round_trip(tmp_path):
    path = tmp_path / metrics.SAMPLE_SCORES_FILE
    metrics.save_sample_scores(path, {"accuracy": [1, 0, 1, 1], "bits_per_char": [2.0, 1.0, 2.0, 1.0],
                                      "chars": [10, 30, 10, 30]})
    scores = metrics.load_sample_scores(path)
    intervals = metrics.sample_intervals(scores)
    assert set(intervals) == {"accuracy", "bits_per_char"}  # the weights are not a score
    assert intervals["accuracy"][0] == 0.75 and intervals["bits_per_char"][0] == pytest.approx(100 / 80)
    assert metrics.load_sample_scores(tmp_path / "missing.jsonl") == {}
