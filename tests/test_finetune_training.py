"""The four GPT-1 fine-tuning tasks train on their real data; fine-tuning starts from a saved pre-training run."""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import TINY, compose
from safetensors.numpy import load_file

from gpt_exp.tokenizers import TextTokenizer
from gpt_exp.tracking import read_metrics

# TINY, with enough real records for the loss to move and short sequences for speed
FINETUNE = [o for o in TINY if not o.startswith(("data.max_train_samples", "data.max_eval_samples", "task.max_seq_len"))]
FINETUNE += ["data.max_train_samples=96", "data.max_eval_samples=24", "task.max_seq_len=48", "trainer.max_steps=20",
             "trainer.eval_interval=10", "trainer.checkpoint_interval=10"]

EXPECTED_METRICS = {
    "classification": {"accuracy", "macro_f1"},
    "entailment": {"accuracy", "macro_f1"},
    "similarity": {"pearson", "spearman", "mse"},
    "multiple_choice": {"accuracy"},
}


def _train(overrides, run_dir: Path) -> dict:
    from gpt_exp.run import train

    return train(compose(overrides), run_dir, run_dir.name)


def _logged(run_dir: Path, key: str) -> list[float]:
    return [row[key] for row in read_metrics(run_dir) if key in row]


@pytest.mark.parametrize("task", [
    "classification",
    pytest.param("entailment", marks=pytest.mark.slow),
    pytest.param("similarity", marks=pytest.mark.slow),
    pytest.param("multiple_choice", marks=pytest.mark.slow),
])
def test_each_task_trains_on_its_real_data(task, tmp_path):
    run_dir = tmp_path / task
    result = _train(FINETUNE + [f"task={task}"], run_dir)

    losses, task_losses, lm_losses = (_logged(run_dir, f"train/{k}") for k in ("loss", "task_loss", "lm_loss"))
    assert len(losses) == 4 and losses[-1] < losses[0] - 0.3, losses
    # L3 = L2 + 0.5 * L1, logged part by part
    assert losses[-1] == pytest.approx(task_losses[-1] + 0.5 * lm_losses[-1], rel=1e-4)
    vocab = TextTokenizer.load(run_dir / "tokenizer").vocab_size  # corpus BPE on few records: below 1024 + 3
    assert lm_losses[-1] < lm_losses[0] and lm_losses[0] < math.log(vocab) + 0.5

    evals = [row for row in read_metrics(run_dir) if "eval/loss" in row]
    assert len(evals) == 2
    for row in evals:
        assert {f"eval/{k}" for k in EXPECTED_METRICS[task] | {"task_loss", "lm_loss", "loss"}} <= set(row)
    main = {"classification": "accuracy", "entailment": "accuracy", "similarity": "pearson",
            "multiple_choice": "accuracy"}[task]
    assert result[f"best/{main}"] == max(row[f"eval/{main}"] for row in evals)  # the best checkpoint is kept ...
    assert (run_dir / "checkpoints" / "best.ckpt").exists()
    assert {f"test/{k}" for k in EXPECTED_METRICS[task]} <= set(result)      # ... and tested at the end
    assert all(np.isfinite(v) for k, v in result.items() if k.startswith("test/"))

    predictions = [json.loads(line) for line in (run_dir / "predictions.jsonl").read_text().splitlines()]
    assert len(predictions) == 20 and predictions[0]["input"].startswith("<|start|>")
    assert predictions[0]["input"].rstrip().endswith("<|extract|>")


@pytest.mark.slow
def test_the_head_on_the_extract_state_fits_real_reviews(tmp_path):
    # 64 real reviews as train, validation and test: reading the [extract] state, the head can fit them all
    rows = (Path(os.environ["GPT_EXP_CACHE"]) / "datasets" / "movie_reviews" / "train.jsonl").read_text().splitlines()
    data = tmp_path / "reviews.jsonl"
    data.write_text("\n".join(rows[:64]) + "\n")
    run_dir = tmp_path / "fit"
    result = _train(FINETUNE + ["task=classification", "data.name=null",
                                f"data.files={{train: {data}, validation: {data}, test: {data}}}",
                                "trainer.batch_size=16", "trainer.max_steps=40", "trainer.eval_interval=20"], run_dir)
    assert result["test/accuracy"] >= 0.95 and result["test/task_loss"] < 0.2, result


@pytest.mark.slow
def test_without_the_auxiliary_loss_the_lm_loss_is_measured_but_not_trained(tmp_path):
    run_dir = tmp_path / "no_aux"
    _train(FINETUNE + ["task=entailment", "task.lm_coef=0", "trainer.eval_interval=20"], run_dir)
    losses, task_losses, lm_losses = (_logged(run_dir, f"train/{k}") for k in ("loss", "task_loss", "lm_loss"))
    assert losses == pytest.approx(task_losses, rel=1e-6)  # L3 = L2 when lambda = 0
    # only the (tied) token embedding moves the LM loss now, through the task's gradient: it stays near ln(V)
    vocab = TextTokenizer.load(run_dir / "tokenizer").vocab_size
    assert all(value > math.log(vocab) - 1.0 for value in lm_losses), lm_losses
    assert _logged(run_dir, "eval/lm_loss")


@pytest.mark.slow
def test_a_finetune_starts_from_a_saved_pretraining_run(tmp_path):
    gpt1 = ["model=gpt1-tiny", *FINETUNE]
    pretrain = tmp_path / "pretrain"
    _train(gpt1 + ["task=lm", "data=shakespeare", "data.max_train_samples=6", "data.max_eval_samples=2",
                   "trainer.max_steps=30", "trainer.eval_interval=30", "trainer.checkpoint_interval=30",
                   "task.sample_prompts=[]"], pretrain)
    pretrained_vocab = TextTokenizer.load(pretrain / "tokenizer").vocab_size

    # the fine-tune's initial weights are the pre-training run's, with 3 embedding rows appended
    finetune = tmp_path / "finetune"
    _train(gpt1 + ["task=classification", f"model.init_from={pretrain}", "trainer.max_steps=0"], finetune)
    assert TextTokenizer.load(finetune / "tokenizer").vocab_size == pretrained_vocab + 3
    before, after = load_file(str(pretrain / "model" / "model.safetensors")), \
        load_file(str(finetune / "model" / "model.safetensors"))
    assert set(before) == set(after)
    for name, weight in before.items():
        if weight.shape[0] == pretrained_vocab and name.endswith("tokens_embed.weight"):
            assert after[name].shape == (pretrained_vocab + 3, weight.shape[1])
            np.testing.assert_array_equal(after[name][:pretrained_vocab], weight)
        else:
            np.testing.assert_array_equal(after[name], weight, err_msg=name)

    # the same vocabulary from random weights (tokenizer=saved): the pre-trained LM reads reviews better already
    scratch = tmp_path / "scratch"
    saved = [o for o in gpt1 if not o.startswith("tokenizer.")] + ["tokenizer=saved", f"tokenizer.path={pretrain}"]
    _train(saved + ["task=classification", "trainer.max_steps=0"], scratch)
    assert TextTokenizer.load(scratch / "tokenizer").vocab_size == pretrained_vocab + 3
    assert _logged(finetune, "eval/lm_loss")[0] < _logged(scratch, "eval/lm_loss")[0] - 0.5


def test_the_ablation_sweep_covers_table_5():
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from conftest import CONFIG_DIR

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        cfg = hydra_compose(config_name="train", overrides=["+sweep=gpt1_ablation"], return_hydra_config=True)
    params = {k: str(v).split(",") for k, v in cfg.hydra.sweeper.params.items()}
    assert params["task"] == ["classification", "entailment", "similarity", "multiple_choice"]
    assert params["ablation.arm"] == ["pretrained", "scratch"] and params["task.lm_coef"] == ["0.5", "0.0"]
    assert len(params["seed"]) >= 2
    data = {"classification": "movie_reviews", "entailment": "vitaminc", "similarity": "stsb_en",
            "multiple_choice": "social_iqa"}
    for task, dataset in data.items():
        for arm, init_from in (("pretrained", "outputs/gpt1_ablation/pretrain"), ("scratch", None)):
            job = compose(["+sweep=gpt1_ablation", f"task={task}", f"ablation.arm={arm}"])
            assert (job.data.name, job.model.init_from, job.model.arch) == (dataset, init_from, "gpt1")
            assert job.tokenizer.path == "outputs/gpt1_ablation/pretrain"  # one vocabulary for both arms


def test_the_ablation_table_averages_seeds(tmp_path):
    from omegaconf import OmegaConf

    from gpt_exp.tools import ablation

    results = {  # (task, init_from, lm_coef) -> test metric of seeds 1 and 2
        ("classification", "pre", 0.5): (0.70, 0.74), ("classification", None, 0.5): (0.50, 0.56),
        ("similarity", "pre", 0.0): (0.30, 0.40),
    }
    for n, ((task, init_from, lm_coef), values) in enumerate(results.items()):
        metric = "pearson" if task == "similarity" else "accuracy"
        for seed, value in zip((1, 2), values):
            run = tmp_path / f"{n}_{seed}"
            run.mkdir()
            OmegaConf.save(OmegaConf.create({"task": {"name": task, "lm_coef": lm_coef}, "seed": seed,
                                             "model": {"init_from": init_from}}), run / "config.yaml")
            (run / "summary.json").write_text(json.dumps({"status": "finished", "summary": {f"test/{metric}": value}}))
    (tmp_path / "crashed").mkdir()
    (tmp_path / "crashed" / "summary.json").write_text(json.dumps({"status": "failed"}))

    assert ablation.main(["table", str(tmp_path)]) == 0
    metrics_table, lm_table = (tmp_path / "ablation.md").read_text().split("Test LM loss")
    rows = {line.split(" | ")[0].strip("| "): line for line in metrics_table.splitlines()}
    assert "72.0 ± 2.8" in rows["pre-trained, aux LM (λ=0.5) [GPT-1]"]   # mean and sample std of .70, .74
    assert "53.0 ± 4.2" in rows["from scratch, aux LM (λ=0.5)"]
    assert "35.0 ± 7.1" in rows["pre-trained, no aux LM (λ=0)"]
    assert "| movie reviews | STS-B |" in lm_table
    assert (tmp_path / "ablation.png").stat().st_size > 5_000
