"""LM pre-training end to end on the real Shakespeare corpus with a tiny GPT."""
from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, TINY, compose

from gpt_exp.tokenizers import TextTokenizer
from gpt_exp.tracking import read_metrics
from helpers import read_checkpoint_record as read_record
from gpt_exp.wandb_records import read_finished_run


def _train(overrides, run_dir: Path, name="test"):
    from gpt_exp.run import train

    return train(compose(overrides), run_dir, name)


def test_tiny_lm_trains_and_records_everything(tmp_path):
    run_dir = tmp_path / "run"
    result = _train(TINY + ["trainer.max_steps=40", "trainer.eval_interval=20", "logger.mode=offline",
                            "task.sample_max_new_tokens=8"], run_dir)
    rows = read_metrics(run_dir)
    train_losses = [r["train/loss"] for r in rows if "train/loss" in r]
    evals = [r["eval/loss"] for r in rows if "eval/loss" in r]
    # from the uniform guess ln(1024) = 6.93 nats per token, well down in 40 steps
    assert train_losses[-1] < math.log(1024) - 0.8 and train_losses[-1] < train_losses[0] - 0.5, train_losses
    assert len(evals) == 2 and evals[1] < evals[0]
    assert all(r["train/tokens_per_sec"] > 0 for r in rows if "train/loss" in r)
    assert result["test/loss"] > 0 and result["best/step"] == 40
    # bits per character, tokenizer-independent: logged at each evaluation, in the summary, per block for intervals
    bits = [r["eval/bits_per_char"] for r in rows if "eval/bits_per_char" in r]
    assert len(bits) == 2 and bits[1] < bits[0] and 1.0 < result["test/bits_per_char"] < 8.0
    scores = [json.loads(line) for line in (run_dir / "test_scores.jsonl").read_text().splitlines()]
    assert scores and set(scores[0]) == {"bits_per_char", "chars"}

    # the W&B offline run holds the same metrics, config and a clean exit
    wandb_run = read_finished_run(run_dir)
    logged = [h["train/loss"] for h in wandb_run["history"] if "train/loss" in h]
    assert logged == pytest.approx(train_losses, rel=1e-6)
    assert wandb_run["summary"]["test/loss"] == pytest.approx(result["test/loss"])
    assert wandb_run["config"]["model"]["n_layer"] == 2 and wandb_run["exit_code"] == 0

    # what a user opens afterwards
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "finished" and summary["summary"]["test/bits_per_char"] == result["test/bits_per_char"]
    assert (run_dir / "loss.png").stat().st_size > 10_000
    assert (run_dir / "model" / "model.safetensors").exists() and (run_dir / "model" / "tokenizer.json").exists()
    samples = [json.loads(line) for line in (run_dir / "samples.jsonl").read_text().splitlines()]
    assert [s["prompt"] for s in samples] == ["ROMEO:", "First Citizen:", "To be, or"]
    # the default LM vocabulary is cased and lossless: samples read the way the plays are written
    tokenizer = TextTokenizer.load(run_dir / "model")
    line = "  ROMEO. O, she doth teach the torches to burn bright!\nIt seems she hangs upon the cheek of night;"
    assert tokenizer.name == "byte_bpe" and tokenizer.decode(tokenizer.encode(line)) == line


def test_lm_task_picks_the_cased_vocabulary_and_the_fine_tunes_keep_gpt1s():
    assert compose([]).tokenizer._target_ == "gpt_exp.tokenizers.byte_bpe"
    assert compose(["task=classification"]).tokenizer._target_ == "gpt_exp.tokenizers.corpus_bpe"
    old = compose(["tokenizer=corpus_bpe"]).tokenizer  # the old default, one override away
    assert old._target_ == "gpt_exp.tokenizers.corpus_bpe" and old.lowercase
    # task=lm's own recipe wins over the trainer's and optimizer's defaults, the command line over it
    assert (compose([]).trainer.max_steps, compose([]).optimizer.lr) == (600, 2e-3)
    assert compose(["trainer.max_steps=5"]).trainer.max_steps == 5


def _cli(args, **kwargs):
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    return subprocess.Popen([sys.executable, "-m", "gpt_exp", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, **kwargs)


@pytest.mark.slow
def test_a_killed_run_resumes_with_the_same_numbers(tmp_path):
    # no dropout: the continued run must reproduce the uninterrupted one exactly
    common = TINY + ["model.dropout=0.0", "trainer.max_steps=24", "trainer.checkpoint_interval=4",
                     "trainer.eval_interval=12", "trainer.log_interval=4", "task.sample_prompts=[]"]
    straight = tmp_path / "straight"
    _train(common, straight)

    killed = tmp_path / "killed"
    process = _cli(common + [f"hydra.run.dir={killed}", f"paths.output_dir={killed}"])
    last = killed / "checkpoints" / "last.ckpt"
    deadline = time.time() + 300
    while time.time() < deadline and process.poll() is None:
        if last.exists() and 4 <= read_record(last)["step"] < 24:
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.05)
    process.wait()
    assert process.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    stopped_at = read_record(last)["step"]
    before = read_metrics(killed)

    resumed = _cli(common + [f"trainer.resume={killed}", f"hydra.run.dir={tmp_path / 'resume-hydra'}"])
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    after = read_metrics(killed)
    kept = [r for r in before if r["step"] <= stopped_at]  # later lines of the killed run are cut (gpt_exp.resume)
    assert after[:len(kept)] == kept, "the resumed run keeps the record up to its checkpoint"
    assert [r["step"] for r in after if "train/loss" in r] == list(range(4, 25, 4)), "each step once"
    final = {k: v for r in after if r["step"] == 24 for k, v in r.items()}
    reference = {k: v for r in read_metrics(straight) if r["step"] == 24 for k, v in r.items()}
    assert stopped_at < 24
    assert final["train/loss"] == pytest.approx(reference["train/loss"], rel=1e-4)
    assert final["eval/loss"] == pytest.approx(reference["eval/loss"], rel=1e-4)
