"""Headline generation on real People's Daily pairs: the exact sequence under each truncation strategy,
the loss, a short fine-tune that learns real headlines and generates them back, zero-shot evaluation of a
run, and the errors a user meets first."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from conftest import ROOT, compose
from datasets import Dataset, DatasetDict
from hydra.utils import instantiate

from gpt_exp.data.sources import prepare
from gpt_exp.errors import ConfigError
from gpt_exp.tokenizers import bert_chinese, gpt2_bpe

CLS, SEP, PAD = 101, 102, 0
OPTIONS = ["merge_and_pad", "head", "tail", "head_tail"]
# the article tokens each truncation option keeps when n fit (n even: head_tail splits it evenly)
KEEP = {"merge_and_pad": lambda a, n: a[:n], "head": lambda a, n: a[:n], "tail": lambda a, n: a[len(a) - n:],
        "head_tail": lambda a, n: a[:n // 2] + a[len(a) - n // 2:]}


def cache_dir() -> Path:
    import os

    return Path(os.environ["GPT_EXP_CACHE"])


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in Path(path).read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def tokenizer():
    return bert_chinese(cache_dir())


@pytest.fixture(scope="module")
def samples(tokenizer):
    """Real test-split pairs: a long article with a short headline, the shortest article, the longest headline."""
    encoded = [(r, tokenizer.encode(r["article"]), tokenizer.encode(r["summarization"]))
               for r in read_jsonl(prepare("headlines_zh")["test"])]
    return {"long": next(e for e in encoded if len(e[1]) > 200 and len(e[2]) % 2 and len(e[2]) <= 21),
            "short": min(encoded, key=lambda e: len(e[1])),
            "long_summary": max(encoded, key=lambda e: len(e[2]))}


def build(record, tokenizer, overrides, split="test"):
    cfg = compose(["task=summarization", "task.generation.max_new_tokens=8", *overrides])
    task = instantiate(cfg.task, _convert_="all")
    task.prepare_tokenizer(tokenizer)
    arrays = task.build_arrays(DatasetDict({split: Dataset.from_list([record])}), tokenizer, cfg.truncation, cfg.data)
    return arrays[split], task


def check_row(arrays, expected_ids, summary_start):
    """The ids, the loss mask (the summary and its [SEP]) and the target positions of the one row."""
    ids, mask, positions = arrays["input_ids"][0], arrays["loss_mask"][0], arrays["target_positions"][0]
    assert ids.tolist() == expected_ids
    end = len(expected_ids) - expected_ids[::-1].index(SEP)  # one past the final [SEP]
    assert mask.tolist() == [0] * summary_start + [1] * (end - summary_start) + [0] * (len(ids) - end)
    assert positions[:end - summary_start].tolist() == list(range(summary_start, end))
    assert not positions[end - summary_start:].any()


@pytest.mark.parametrize("option", OPTIONS)
def test_too_long_cuts_the_article_by_the_strategy(samples, tokenizer, option):
    record, article, summary = samples["long"]
    kept = 64 - 3 - len(summary)
    arrays, _ = build(record, tokenizer, [f"truncation={option}", "task.max_seq_len=64"])
    check_row(arrays, [CLS] + KEEP[option](article, kept) + [SEP] + summary + [SEP], 2 + kept)
    # generation continues the same article cut, leaving room for max_new_tokens=8
    assert arrays.prompts[0] == [CLS] + KEEP[option](article, 64 - 2 - 8) + [SEP]
    assert arrays.references[0] == record["summarization"] and arrays.articles[0] == record["article"]


@pytest.mark.parametrize("option", OPTIONS)
def test_exactly_full_and_short_are_not_cut(samples, tokenizer, option):
    record, article, summary = samples["short"]
    full = [CLS] + article + [SEP] + summary + [SEP]
    arrays, _ = build(record, tokenizer, [f"truncation={option}", f"task.max_seq_len={len(full)}"])
    check_row(arrays, full, 2 + len(article))
    arrays, _ = build(record, tokenizer, [f"truncation={option}", f"task.max_seq_len={len(full) + 5}"])
    check_row(arrays, full + [PAD] * 5, 2 + len(article))


def test_merge_and_pad_keeps_a_long_headline_whole(samples, tokenizer):
    record, article, summary = samples["long_summary"]
    assert len(summary) == 31
    arrays, _ = build(record, tokenizer, ["truncation=merge_and_pad", "task.max_seq_len=48"])
    check_row(arrays, [CLS] + article[:45 - 31] + [SEP] + summary + [SEP], 2 + 14)
    # longest_first shares a budget of 45 between two long texts: 23 article + 22 headline tokens
    arrays, _ = build(record, tokenizer, ["truncation=head", "task.max_seq_len=48"])
    check_row(arrays, [CLS] + article[:23] + [SEP] + summary[:22] + [SEP], 2 + 23)


def test_loss_on_all_counts_every_real_token(samples, tokenizer):
    record, article, summary = samples["short"]
    length = len(article) + len(summary) + 3
    arrays, _ = build(record, tokenizer, ["task.loss_on=all", f"task.max_seq_len={length + 4}"])
    assert arrays["loss_mask"][0].tolist() == [0] + [1] * (length - 1) + [0] * 4
    assert arrays["target_positions"][0][:length - 1].tolist() == list(range(1, length))


def test_prompt_template_for_zero_shot(samples, tokenizer):
    record, article, summary = samples["short"]
    prompt = tokenizer.encode("摘要：")
    arrays, _ = build(record, tokenizer, ["task.bos=false", "task.prompt='摘要：'", "task.separator=false",
                                          "task.max_seq_len=128"])
    expected = article + prompt + summary + [SEP]
    check_row(arrays, expected + [PAD] * (128 - len(expected)), len(article) + len(prompt))
    assert arrays.prompts[0] == article + prompt


def test_a_vocabulary_without_separator_gets_one():
    tokenizer = gpt2_bpe(cache_dir())
    record = {"article": "The cat sat on the mat all day long.", "summarization": "A lazy cat."}
    arrays, task = build(record, tokenizer, ["tokenizer=gpt2_bpe", "task.max_seq_len=32"])
    assert tokenizer.vocab_size == 50258 and tokenizer.token_id("sep") == 50257
    article, summary = tokenizer.encode(record["article"]), tokenizer.encode(record["summarization"])
    eot = 50256  # <|endoftext|>: GPT-2's bos and eos
    expected = [eot] + article + [50257] + summary + [eot]
    assert arrays["input_ids"][0].tolist() == expected + [eot] * (32 - len(expected))  # padded with eos, masked
    assert task.decode(summary + [eot]) == "A lazy cat."


def test_decoding_gives_back_the_headline_text(tokenizer):
    """WordPiece decoding spaces out every token; the task joins Chinese text again."""
    _, task = build({"article": "一篇文章。", "summarization": "标题"}, tokenizer, [])
    unk = tokenizer.token_id("unk")
    references = [r["summarization"] for r in read_jsonl(prepare("headlines_zh")["test"])]
    plain = [r for r in references if unk not in tokenizer.encode(r)]  # the vocabulary lacks “ ” and —
    assert len(plain) > 100
    for reference in plain:
        assert task.decode(tokenizer.encode(reference) + [SEP]) == reference.lower()
    assert task.decode(tokenizer.encode("“垃圾猪”成灾") + [SEP]) == "垃圾猪成灾"  # [UNK] is never shown
    assert task.decode([tokenizer.backend.token_to_id("##3000")] + tokenizer.encode("年")) == "3000年"


def masked_next_token_loss(logits: np.ndarray, tokens: np.ndarray, loss_mask: np.ndarray) -> float:
    """The reference, in numpy: the cross-entropy of every next token, averaged over the targets loss_mask marks."""
    logits = logits[:, :-1].astype(np.float64)
    log_probs = logits - logits.max(-1, keepdims=True)
    log_probs -= np.log(np.exp(log_probs).sum(-1, keepdims=True))
    nll = -np.take_along_axis(log_probs, tokens[:, 1:, None].astype(np.int64), -1)[..., 0]
    weight = loss_mask[:, 1:]
    return float((nll * weight).sum() / max(weight.sum(), 1))


def test_the_network_loss_is_the_masked_next_token_loss(samples, tokenizer):
    """Projecting only the target positions onto the vocabulary changes nothing but the cost."""
    import mindspore as ms

    from gpt_exp.model import GPT, GPTConfig
    from gpt_exp.tasks.summarization import SummarizationNetwork

    ms.set_seed(0)
    model = GPT(GPTConfig("gpt2", vocab_size=tokenizer.vocab_size, n_positions=64, n_embd=16, n_layer=1, n_head=2,
                          dropout=0.0))
    model.set_train(False)
    network = SummarizationNetwork(model)
    for loss_on in ("summary", "all"):
        rows = [build(samples[name][0], tokenizer, [f"task.loss_on={loss_on}", "task.max_seq_len=64"])[0]
                for name in ("long", "short")]
        width = max(r["target_positions"].shape[1] for r in rows)
        ids, mask = (ms.Tensor(np.concatenate([r[key] for r in rows])) for key in ("input_ids", "loss_mask"))
        positions = ms.Tensor(np.concatenate([np.pad(r["target_positions"], ((0, 0), (0, width - r["target_positions"].shape[1])))
                                              for r in rows]))
        loss, _ = network(ids, mask, positions)
        reference = masked_next_token_loss(model.lm_logits(model(ids)).asnumpy(), ids.asnumpy(), mask.asnumpy())
        assert float(loss.asnumpy()) == pytest.approx(reference, rel=1e-5)
        assert 8 < float(loss.asnumpy()) < 12  # about ln(21128) = 9.96 for random weights


@pytest.mark.parametrize("strategy", ["greedy", "beam", "sample"])
def test_min_new_tokens_bars_an_early_stop(strategy):
    """A weak model's likeliest first token is often [SEP] (in every target); min_new_tokens bars it."""
    import mindspore as ms

    from gpt_exp.generate import generate
    from gpt_exp.model import GPT, GPTConfig

    ms.set_seed(0)
    model = GPT(GPTConfig("gpt2", vocab_size=50, n_positions=32, n_embd=16, n_layer=1, n_head=2, dropout=0.0))
    prompts = [[3, 4, 5], [7, 8]]
    options = dict(strategy=strategy, num_beams=3, seed=0)
    first = generate(model, prompts, 1, **options)
    eos = first[0][0]  # make the first choice the stop token: unconstrained greedy decoding ends at once
    if strategy == "greedy":
        assert generate(model, prompts, 6, eos_token_id=eos, **options)[0] == [eos]
    for tokens in generate(model, prompts, 6, eos_token_id=eos, min_new_tokens=3, **options):
        assert eos not in tokens[:3] and len(tokens) >= 3
    # a suppressed token is never chosen: the task bars [UNK], [PAD] and [CLS]
    banned = {t for row in generate(model, prompts, 6, **options) for t in row}
    for tokens in generate(model, prompts, 6, suppress_token_ids=tuple(banned), **options):
        assert len(tokens) == 6 and not banned & set(tokens)


def test_the_task_suppresses_tokens_no_summary_contains(samples, tokenizer):
    _, task = build(samples["short"][0], tokenizer, [])
    assert task._suppressed() == (PAD, 100, CLS)  # [PAD], [UNK], [CLS]; never [SEP], the stop token
    _, task = build(samples["short"][0], tokenizer, ["task.generation.suppress_special=false"])
    assert task._suppressed() == ()
    _, task = build({"article": "A long text.", "summarization": "Short."}, gpt2_bpe(cache_dir()), ["tokenizer=gpt2_bpe"])
    assert task._suppressed() == ()  # GPT-2's <|endoftext|> is bos, pad and eos at once: it must stay


# --------------------------------------------------------------------------- training and zero-shot

TINY_SUMMARIZATION = [
    "task=summarization", "model.n_layer=2", "model.n_embd=64", "model.n_head=2", "model.n_positions=96",
    "model.dropout=0.0", "task.max_seq_len=96", "task.generation.max_new_tokens=14", "trainer.batch_size=8",
    "scheduler.warmup_steps=5", "trainer.log_interval=5", "device=cpu",
]


def train(overrides, run_dir: Path) -> dict:
    from gpt_exp.run import train as run_train

    return run_train(compose(overrides), run_dir, "test")


@pytest.fixture(scope="module")
def learned_run(tmp_path_factory, tokenizer):
    """A tiny GPT fine-tuned on 8 real headline pairs (given as the user's own JSON-lines files) until it
    reproduces them: every part of the pipeline has to be right for ROUGE to reach 1.

    The articles are short enough (<= 80 tokens) that neither training (96 - 3 - headline) nor generation
    (96 - 2 - 14 new tokens) cuts them: a memorising model keys on exact positions, so a prompt cut shorter
    than in training would derail it, where a model that learned the task would not care."""
    folder = tmp_path_factory.mktemp("learned")
    records = [r for r in read_jsonl(prepare("headlines_zh")["train"])
               if len(r["summarization"]) <= 12 and len(tokenizer.encode(r["article"])) <= 80][:8]
    data = folder / "pairs.jsonl"
    data.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records), encoding="utf-8")
    run_dir = folder / "run"
    result = train(TINY_SUMMARIZATION + [
        "data=summarization_files", *(f"data.files.{s}={data}" for s in ("train", "validation", "test")),
        "trainer.max_steps=40", "trainer.eval_interval=20", "optimizer.lr=1e-2", "task.val_rouge_samples=8",
        "logger.mode=offline"], run_dir)
    return result, run_dir, records


@pytest.mark.slow
def test_fine_tuning_learns_real_headlines(learned_run):
    from gpt_exp.tracking import read_metrics
    from gpt_exp.wandb_records import find_run_file, read_finished_run

    result, run_dir, records = learned_run
    rows = read_metrics(run_dir)
    losses = [r["train/loss"] for r in rows if "train/loss" in r]
    assert losses[0] > 8 and losses[-1] < 1.0, losses  # from ~ln(21128) = 9.96 nats per headline token
    evals = [r for r in rows if "eval/rougeL" in r]
    assert len(evals) == 2 and evals[1]["eval/loss"] < evals[0]["eval/loss"]
    # ROUGE F1 x 100, as papers print it; nothing left empty
    assert result["test/rougeL"] > 90 and result["test/rouge1"] >= result["test/rougeL"], result
    assert result["test/empty_predictions"] == 0
    scores = read_jsonl(run_dir / "test_scores.jsonl")  # per-sample scores, for compare's 95% intervals
    assert len(scores) == 8 and set(scores[0]) == {"rouge1", "rouge2", "rougeL"}
    assert np.mean([s["rougeL"] for s in scores]) == pytest.approx(result["test/rougeL"])

    predictions = read_jsonl(run_dir / "test_predictions.jsonl")
    assert [p["reference"] for p in predictions] == [r["summarization"] for r in records]
    assert [p["article"] for p in predictions] == [r["article"] for r in records]
    generated = [p["generated"] for p in predictions]
    assert sum(g == r["summarization"] for g, r in zip(generated, records)) >= 6, generated
    assert all(isinstance(g, str) and "[" not in g and " " not in g for g in generated)

    # the same table reached W&B
    wandb_dir = find_run_file(run_dir).parent
    logged = [h for h in read_finished_run(run_dir)["history"] if "test_predictions/_type" in h]
    assert len(logged) == 1 and logged[0]["test_predictions/_type"] == "table-file"
    table = json.loads((wandb_dir / "files" / logged[0]["test_predictions/path"]).read_text())
    assert table["columns"] == ["article", "reference", "generated", "rougeL"] and len(table["data"]) == 8


@pytest.mark.slow
def test_zero_shot_scores_a_run_without_training_it(learned_run, tmp_path):
    """experiment=summarization_zero_shot on the real held-out split: evaluation only, weights untouched."""
    from safetensors.numpy import load_file

    _, init_dir, _ = learned_run
    run_dir = tmp_path / "zero_shot"
    result = train(TINY_SUMMARIZATION + [
        "experiment=summarization_zero_shot", f"model.init_from={init_dir}", "task.max_seq_len=96",
        "data.max_eval_samples=4", "task.val_rouge_samples=4", "logger.mode=disabled"], run_dir)
    assert result["best/step"] == 0 and not (run_dir / "checkpoints").exists()
    for key in ("test/rouge1", "test/rouge2", "test/rougeL"):
        assert 0 <= result[key] <= 100
    assert result["test/rouge_samples"] == 4 and result["test/loss"] > 0
    predictions = read_jsonl(run_dir / "test_predictions.jsonl")
    assert len(predictions) == 4 and all(isinstance(p["generated"], str) for p in predictions)
    before, after = load_file(str(init_dir / "model" / "model.safetensors")), load_file(str(run_dir / "model" / "model.safetensors"))
    assert all(np.array_equal(before[k], after[k]) for k in before)


# --------------------------------------------------------------------------- errors

def test_devices_on_this_machine():
    from gpt_exp.run import check_config

    assert check_config(compose(["task=summarization", "device=cpu"])) == "CPU"
    assert check_config(compose(["task=summarization", "device=auto"])) == "CPU"
    with pytest.raises(ConfigError, match="no usable Ascend.*Fix: device=cpu"):
        check_config(compose(["task=summarization", "device=ascend"]))


def test_the_command_users_quote_first_explains_itself_on_a_cpu_machine():
    out = subprocess.run([sys.executable, "-m", "gpt_exp", "task=summarization", "device=ascend"], cwd=ROOT,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 2 and "config error: device=ascend" in out.stderr and "device=cpu" in out.stderr


@pytest.mark.parametrize("override,message", [
    ("task.loss_on=article", "task.loss_on='article'"),
    ("task.generation.strategy=nucleus", "task.generation.strategy='nucleus'"),
    ("task.generation.temperature=0", "task.generation.temperature=0"),
    ("task.generation.max_new_tokens=300", "task.generation.max_new_tokens=300"),
    ("task.val_rouge_samples=0", "task.val_rouge_samples=0"),
    ("task.generation.repetition_penalty=0", "task.generation.repetition_penalty=0"),
    ("task.generation.no_repeat_ngram_size=-1", "task.generation.no_repeat_ngram_size=-1"),
    ("task.generation.no_repeat_ngram_size=1.5", "task.generation.no_repeat_ngram_size=1.5"),
    ("experiment=summarization_zero_shot", "model.init_from is not set"),
])
def test_config_errors_name_the_key(override, message):
    from hydra.utils import get_class

    cfg = compose(["task=summarization", override])
    options = {k: v for k, v in instantiate(cfg.task, _convert_="all", _partial_=True).keywords.items()}
    with pytest.raises(ConfigError, match=message):
        get_class(cfg.task._target_)(**options)


def test_the_runner_reports_a_task_config_error_before_loading_anything(tmp_path):
    from gpt_exp.run import train as run_train

    with pytest.raises(ConfigError, match="model.init_from is not set"):  # not Hydra's InstantiationException
        run_train(compose(["experiment=summarization_zero_shot", "device=cpu", "logger.mode=disabled"]),
                  tmp_path / "run", "test")


def test_wrong_field_names_are_caught_before_training(tokenizer):
    with pytest.raises(ConfigError, match="data.summary_field='summary'"):
        build({"article": "一篇文章。", "summarization": "标题"}, tokenizer, ["data.summary_field=summary"])


# --------------------------------------------------------------------------- evaluation that does not mislead

def test_ties_on_rouge_go_to_the_lower_loss(samples, tokenizer):
    """Two evaluations at ROUGE-L 0 (a short run): the weights with the lower eval loss are kept."""
    _, task = build(samples["short"][0], tokenizer, [])
    best = {"value": 0.0, "step": 10, "loss": 7.35}
    assert task.improves({"rougeL": 0.0, "loss": 6.87}, best)
    assert not task.improves({"rougeL": 0.0, "loss": 7.40}, best)
    assert task.improves({"rougeL": 0.5, "loss": 9.0}, best)  # the main metric decides when it differs
    assert not task.improves({"rougeL": 0.0, "loss": 1.0}, {"value": 0.5, "step": 10, "loss": 7.35})
    assert task.improves({"rougeL": 0.0, "loss": 6.0}, {"value": 0.0, "step": 10})  # a resumed record without loss
    assert task.improves({"rougeL": 0.0, "loss": 6.0}, None)


def stop_at_once_model(vocab_size: int, stop: int):
    """A GPT whose every next-token distribution puts its mass on `stop`: hidden = ln_f's bias b, and only
    the stop token's embedding row is b, so its logit is |b|^2 and every other one 0."""
    import mindspore as ms

    from gpt_exp.model import GPT, GPTConfig

    model = GPT(GPTConfig("gpt2", vocab_size=vocab_size, n_positions=64, n_embd=16, n_layer=1, n_head=2, dropout=0.0))
    params = {p.name: p for p in model.get_parameters()}
    gamma, beta = params["transformer.ln_f.weight"], params["transformer.ln_f.bias"]
    bias = np.full(16, 2.0, np.float32)
    gamma.set_data(ms.Tensor(np.zeros(16, np.float32)))
    beta.set_data(ms.Tensor(bias))
    table = np.zeros((vocab_size, 16), np.float32)
    table[stop] = bias
    model.transformer.token_embedding().weight.set_data(ms.Tensor(table))
    return model


def test_empty_summaries_are_counted_and_warned(samples, tokenizer, caplog):
    arrays, task = build(samples["short"][0], tokenizer, ["task.max_seq_len=64"])
    task.model = stop_at_once_model(tokenizer.vocab_size, SEP)
    with caplog.at_level("WARNING"):
        scores = task.score(arrays, None)
    assert scores["empty_predictions"] == 1 and scores["rougeL"] == 0 and scores["gen_len"] == 0
    assert "1 of 1 generated summaries are empty" in caplog.text
    assert task.sample_scores["test"]["rougeL"].tolist() == [0.0]


def test_decoding_options_reach_the_decoder(samples, tokenizer):
    """task.generation.no_repeat_ngram_size / repetition_penalty from the config change what is generated."""
    record = samples["short"][0]
    arrays, task = build(record, tokenizer, ["task.max_seq_len=64"])
    _, controlled = build(record, tokenizer, ["task.max_seq_len=64", "task.generation.no_repeat_ngram_size=1",
                                             "task.generation.repetition_penalty=1.5"])
    assert controlled.generation["no_repeat_ngram_size"] == 1 and controlled.generation["repetition_penalty"] == 1.5
    import mindspore as ms

    from gpt_exp.model import GPT, GPTConfig

    ms.set_seed(0)
    model = GPT(GPTConfig("gpt2", vocab_size=tokenizer.vocab_size, n_positions=64, n_embd=16, n_layer=1, n_head=2,
                          dropout=0.0))
    task.model = controlled.model = model
    plain, distinct = task.summarize(arrays.prompts)[0], controlled.summarize(arrays.prompts)[0]
    assert len(set(plain)) < len(plain)  # an untrained model repeats itself ...
    assert len(set(distinct)) == len(distinct) > 0  # ... unless no token may come twice


def test_chinese_lm_samples_read_as_written(tokenizer):
    """LM samples of the People's Daily corpus (bert_chinese): joined, without [UNK] / [SEP] / [PAD]."""
    from gpt_exp.tasks.lm import continuation

    prompt, text = tokenizer.encode("中国"), tokenizer.encode("人民“日报”，1998年。")
    new = text + [SEP, PAD, CLS] + tokenizer.encode("新年")
    assert continuation(tokenizer, prompt, new) == "人民日报，1998年。新年"
