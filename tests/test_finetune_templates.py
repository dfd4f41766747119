"""GPT-1's input templates, token by token, on the first real record of each task's default data.

GPT-2's byte-level BPE (OpenAI's own vocabulary, from the cache) is used because its tokens are
readable (`Ġ` = a leading space) and fixed, so the expected sequences can be written out in full.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import compose
from hydra.utils import instantiate

from gpt_exp.data.records import load_records
from gpt_exp.errors import ConfigError
from gpt_exp.tokenizers import gpt2_bpe

CACHE = Path(os.environ["GPT_EXP_CACHE"])
START, DELIM, EXTRACT = "<|start|>", "<|delimiter|>", "<|extract|>"


def build(overrides: list[str]):
    """(task, tokenizer, arrays by split, records) exactly as the runner builds them, without a model."""
    cfg = compose(["data.max_train_samples=8", "data.max_eval_samples=4", *overrides])
    task = instantiate(cfg.task, _convert_="all")
    records = load_records(cfg.data, CACHE)
    tokenizer = gpt2_bpe(CACHE)
    task.prepare_tokenizer(tokenizer)
    arrays = task.build_arrays(records, tokenizer, cfg.truncation, cfg.data)
    return task, tokenizer, arrays, records


def tokens(tokenizer, arrays, sample: int, sequence: int = 0) -> list[str]:
    """The real (unpadded) tokens of one sequence, as strings; checks the padding and the extract position too."""
    ids = arrays["input_ids"][sample, sequence]
    mask = arrays["attention_mask"][sample, sequence]
    length = int(mask.sum())
    assert mask[:length].all() and not mask[length:].any(), "padding must be on the right only"
    assert (ids[length:] == tokenizer.pad_id).all()
    assert arrays["extract_pos"][sample, sequence] == length - 1
    return [tokenizer.backend.id_to_token(int(i)) for i in ids[:length]]


def test_special_tokens_are_appended_by_role():
    tokenizer = gpt2_bpe(CACHE)
    task = instantiate(compose(["task=classification"]).task, _convert_="all")
    task.prepare_tokenizer(tokenizer)
    assert [tokenizer.token_id(r) for r in ("start", "delimiter", "extract")] == [50257, 50258, 50259]
    assert tokenizer.vocab_size == 50260
    task.prepare_tokenizer(tokenizer)  # a second task on the same tokenizer adds nothing
    assert tokenizer.vocab_size == 50260


def test_classification_template_on_a_movie_review():
    task, tokenizer, arrays, records = build(["task=classification"])
    assert records["train"][0]["text"].startswith("A worthy addition to the cinematic canon")
    assert tokens(tokenizer, arrays["train"], 0) == [
        START, "A", "Ġworthy", "Ġaddition", "Ġto", "Ġthe", "Ġcinematic", "Ġcanon", ",", "Ġwhich", ",", "Ġat", "Ġlast",
        "Ġcount", ",", "Ġnumbered", "Ġ52", "Ġdifferent", "Ġversions", ".", EXTRACT]
    assert arrays["train"]["labels"][0] == 1 and task.label_names == ["negative", "positive"]
    assert arrays["train"]["input_ids"].shape[1] == 1
    # every split is padded to one length: the longest sequence rounded up to 8, at most max_seq_len
    length = arrays["train"]["input_ids"].shape[2]
    longest = max(int(a["attention_mask"].sum(-1).max()) for a in arrays.values())
    assert length == -(-longest // 8) * 8 and all(a["input_ids"].shape[2] == length for a in arrays.values())


def test_entailment_template_on_a_vitaminc_pair():
    task, tokenizer, arrays, records = build(["task=entailment"])
    record = records["train"][0]
    premise = [tokenizer.backend.id_to_token(i) for i in tokenizer.encode(record["premise"])]
    assert premise[:10] == ["2020", "Ġcoron", "av", "irus", "Ġpand", "emic", "Ġin", "ĠNorth", "ĠCarolina", ":"]
    hypothesis = ["The", "Ġnumber", "Ġof", "Ġcoron", "av", "irus", "Ġcases", "Ġin", "ĠNorth", "ĠCarolina", "Ġprisons",
                  "Ġis", "Ġincreasing", "Ġ."]
    assert tokens(tokenizer, arrays["train"], 0) == [START, *premise, DELIM, *hypothesis, EXTRACT]
    assert task.label_names == ["True", "False", "Neither"] and arrays["train"]["labels"][0] == record["label"]


def test_similarity_reads_both_orders_of_an_stsb_pair():
    _, tokenizer, arrays, records = build(["task=similarity"])
    a = ["A", "Ġplane", "Ġis", "Ġtaking", "Ġoff", "."]
    b = ["An", "Ġair", "Ġplane", "Ġis", "Ġtaking", "Ġoff", "."]
    assert records["train"][0]["score"] == 5.0
    assert tokens(tokenizer, arrays["train"], 0, 0) == [START, *a, DELIM, *b, EXTRACT]
    assert tokens(tokenizer, arrays["train"], 0, 1) == [START, *b, DELIM, *a, EXTRACT]
    assert arrays["train"]["labels"][0] == pytest.approx(1.0)  # 5.0 on 0..5, rescaled to 0..1
    assert arrays["train"]["labels"].dtype == np.float32


def test_multiple_choice_builds_one_sequence_per_candidate():
    _, tokenizer, arrays, records = build(["task=multiple_choice"])
    context = ["Robin", "Ġlet", "ĠCarson", "Ġexplain", "Ġwhy", "Ġit", "Ġhappened", "Ġin", "Ġvery", "Ġmuch", "Ġdetail",
               ".", "ĠWhat", "Ġwill", "ĠRobin", "Ġwant", "Ġto", "Ġdo", "Ġnext", "?"]
    answers = [["Run", "away"], ["Expl", "ain", "Ġagain"], ["Be", "Ġsilent"]]
    assert records["train"][0]["choices"] == ["Runaway", "Explain again", "Be silent"]
    assert arrays["train"]["input_ids"].shape[1] == 3
    for k, answer in enumerate(answers):
        assert tokens(tokenizer, arrays["train"], 0, k) == [START, *context, DELIM, *answer, EXTRACT]
    assert arrays["train"]["labels"][0] == 2


@pytest.mark.parametrize("strategy, kept", [("head", slice(0, 14)), ("tail", slice(-14, None))])
def test_truncation_cuts_the_text_never_the_extract_token(strategy, kept):
    _, tokenizer, arrays, records = build(["task=classification", "task.max_seq_len=16", f"truncation={strategy}"])
    text = [tokenizer.backend.id_to_token(i) for i in tokenizer.encode(records["train"][0]["text"])]
    assert len(text) == 19
    assert tokens(tokenizer, arrays["train"], 0) == [START, *text[kept], EXTRACT]
    assert arrays["train"]["input_ids"].shape[2] == 16
    lengths = arrays["train"]["attention_mask"].sum(-1)[:, 0]
    ids = arrays["train"]["input_ids"][:, 0]
    assert (ids[np.arange(len(ids)), lengths - 1] == tokenizer.token_id("extract")).all()


def test_pairs_cut_the_longer_text_first_or_the_side_chosen():
    overrides = ["task=entailment", "task.max_seq_len=24"]
    _, tokenizer, arrays, records = build(overrides)  # pairs=longest_first, the truncation group's default
    record = records["train"][0]
    premise, hypothesis = tokenizer.encode(record["premise"]), tokenizer.encode(record["hypothesis"])
    assert len(premise) > 21 and len(hypothesis) == 14
    ids = arrays["train"]["input_ids"][0, 0].tolist()
    special = [tokenizer.token_id(r) for r in ("start", "delimiter", "extract")]
    # 21 tokens of budget: the long premise gives up tokens until it is as short as the hypothesis, then both share
    assert ids[:24] == [special[0], *premise[:11], special[1], *hypothesis[:10], special[2]]
    _, _, arrays, _ = build(overrides + ["truncation.pairs=second"])
    # pairs=second: the hypothesis gives up all its tokens before the premise loses one
    assert arrays["train"]["input_ids"][0, 0].tolist() == [special[0], *premise[:21], special[1], special[2]]


def _write(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_own_files_with_named_labels_and_ragged_choices(tmp_path):
    reviews = [{"review": f"review number {i}", "sentiment": ["bad", "good", "meh"][i % 3]} for i in range(9)]
    files = {s: _write(tmp_path / f"{s}.jsonl", reviews) for s in ("train", "validation", "test")}
    common = ["data.name=null", f"data.files={{train: {files['train']}, validation: {files['validation']}, "
                                f"test: {files['test']}}}"]
    task, _, arrays, _ = build(["task=classification", "data.text_field=review", "data.label_field=sentiment", *common])
    assert task.label_names == ["bad", "good", "meh"] and task.n_outputs == 3
    assert arrays["train"]["labels"][:3].tolist() == [0, 1, 2]
    with pytest.raises(ConfigError, match="task.label_names"):
        build(["task=classification", "data.text_field=review", "data.label_field=sentiment",
               "task.label_names=[bad,good]", *common])
    with pytest.raises(ConfigError, match="data.text_field='text'"):
        build(["task=classification", "data.label_field=sentiment", *common])

    questions = [{"context": f"question {i}", "choices": ["yes", "no", "maybe"][: 2 + i % 2], "label": i % 2}
                 for i in range(6)]
    files = {s: _write(tmp_path / f"mc_{s}.jsonl", questions) for s in ("train", "validation", "test")}
    _, tokenizer, arrays, _ = build(["task=multiple_choice", "data.name=null",
                                     f"data.files={{train: {files['train']}, validation: {files['validation']}, "
                                     f"test: {files['test']}}}"])
    mask = arrays["train"]["attention_mask"]
    assert mask.shape[1] == 3 and not mask[0, 2].any() and mask[1, 2].any()  # a 2-choice question's third row is empty
    assert tokens(tokenizer, arrays["train"], 1, 2)[-3:] == [DELIM, "maybe", EXTRACT]


def test_a_wrong_field_name_fails_before_a_tokenizer_is_trained():
    cfg = compose(["task=similarity", "data.text_b_field=sentence2", "data.max_train_samples=8", "data.max_eval_samples=4"])
    task = instantiate(cfg.task, _convert_="all")
    records = load_records(cfg.data, CACHE)
    with pytest.raises(ConfigError, match=r"data.text_b_field='sentence2'.*text_a.*Fix: data.text_b_field="):
        task.corpus_texts(records)
