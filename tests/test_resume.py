"""Resume: the records end at the checkpoint's step, checkpoints are verified, a run directory is never reused."""
from __future__ import annotations

import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import mindspore
import numpy as np
import pytest
from conftest import ROOT, TINY, compose
from helpers import read_checkpoint_record
from omegaconf import OmegaConf

from gpt_exp import resume
from gpt_exp.errors import ConfigError
from gpt_exp.model import GPT, GPTConfig
from gpt_exp.backend.precision import make_loss_scaler
from gpt_exp.tasks.lm import CausalLMNetwork
from gpt_exp.tracking import read_metrics
from gpt_exp.train import checkpoint
from gpt_exp.train.optim import build_optimizer, learning_rates
from gpt_exp.wandb_records import find_run_file, read_finished_run, read_run

# 20 steps, a log line every 5, a checkpoint every 10: a kill after step 15's line is between two checkpoints
SHORT = TINY + ["model.dropout=0.0", "trainer.max_steps=20", "trainer.log_interval=5", "trainer.eval_interval=10",
                "trainer.checkpoint_interval=10", "trainer.test_batches=2", "task.sample_prompts=[]",
                "logger.mode=offline"]


def _state(max_steps=20):
    cfg = compose(["device=cpu"])
    network = CausalLMNetwork(GPT(GPTConfig("gpt2", vocab_size=64, n_positions=32, n_embd=32, n_layer=1,
                                            n_head=2, dropout=0.0)))
    optimizer, _ = build_optimizer(network, cfg.optimizer, cfg.scheduler, max_steps=max_steps)
    return checkpoint.TrainState(network, optimizer, make_loss_scaler(cfg.precision))


def _weights(state) -> dict:
    return {name: p.asnumpy().copy() for name, p in state.named_state().items()}


def _damage(path: Path, kind: str) -> None:
    data = path.read_bytes()
    path.unlink()  # MindSpore writes checkpoints read-only
    middle = len(data) // 2
    path.write_bytes({"truncated": data[:middle],
                      "random": np.random.default_rng(0).bytes(len(data)),
                      "0xFF": data[:middle] + b"\xff" * 4096 + data[middle + 4096:]}[kind])


@pytest.mark.parametrize("kind", ["truncated", "random", "0xFF"])
def test_a_damaged_checkpoint_is_refused_in_one_line_and_changes_nothing(tmp_path, kind):
    state = _state()
    path = tmp_path / "step-000010.ckpt"
    checkpoint.save(state, path, {"step": 10})
    _damage(path, kind)
    before = _weights(state)
    with pytest.raises(checkpoint.CheckpointError) as info:
        checkpoint.load(state, path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message and ("damaged" in message or "unreadable" in message)
    assert all(np.array_equal(before[k], v) for k, v in _weights(state).items())


def test_the_learning_rate_table_is_not_saved(tmp_path):
    checkpoint.save(_state(max_steps=20), tmp_path / "a.ckpt", {"step": 20})
    names = mindspore.load_checkpoint(str(tmp_path / "a.ckpt")).keys()
    assert "optimizer.global_step" in names and not any("learning_rate" in n for n in names)
    longer = _state(max_steps=40)  # a larger trainer.max_steps: another table, the same state
    assert checkpoint.load(longer, tmp_path / "a.ckpt")["step"] == 20


def test_keeps_the_newest_step_checkpoints_and_falls_back_past_a_damaged_one(tmp_path, caplog):
    state, folder = _state(), tmp_path / "checkpoints"
    for step in (10, 20, 30):
        checkpoint.save_step(state, folder, step, {"step": step}, keep=2)
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt", "step-000020.ckpt", "step-000030.ckpt"]
    assert os.readlink(folder / "last.ckpt") == "step-000030.ckpt"

    _damage(folder / "step-000030.ckpt", "0xFF")
    (folder / f".tmp-{os.getpid() + 1}-last.ckpt").write_bytes(b"half a save")
    with caplog.at_level(logging.WARNING, logger="gpt_exp"):
        record, path = resume.load_newest_good(state, folder)
    assert record["step"] == 20 and path.name == "step-000020.ckpt"
    assert "step-000030.ckpt: damaged checkpoint" in caplog.text
    assert sorted(p.name for p in folder.iterdir()) == ["last.ckpt", "step-000020.ckpt"]  # no temp file left

    _damage(folder / "step-000020.ckpt", "truncated")
    with pytest.raises(ConfigError, match=r"no checkpoint in .* can be read \(damaged: step-000020.ckpt\)"):
        resume.load_newest_good(state, folder)


def test_metrics_are_cut_to_the_checkpoint_step(tmp_path):
    rows = [{"step": s, "time": 0.0, "train/loss": float(s)} for s in (5, 10, 15, 20)] + \
           [{"step": 20, "time": 0.0, "test/loss": 1.0}]
    (tmp_path / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows) + '{"step": 25, "tr')
    assert resume.cut_metrics(tmp_path, 10) == 4
    assert [r["step"] for r in read_metrics(tmp_path)] == [5, 10]
    assert resume.cut_metrics(tmp_path, 20) == 0


# ----------------------------------------------------------------------------- the config of a resume

def _saved_run(tmp_path, overrides) -> Path:
    run_dir = tmp_path / "saved"
    run_dir.mkdir()
    OmegaConf.save(compose(overrides), run_dir / "config.yaml", resolve=True)
    return run_dir


def test_resume_by_directory_alone_takes_the_runs_own_config(tmp_path):
    run_dir = _saved_run(tmp_path, SHORT + ["model=gpt1-tiny"])
    given = compose([f"trainer.resume={run_dir}", "trainer.max_steps=40"])
    cfg = resume.resumed_config(given, compose([]))
    saved = OmegaConf.load(run_dir / "config.yaml")
    assert cfg.model == saved.model and cfg.optimizer == saved.optimizer and cfg.run_name == saved.run_name
    assert cfg.trainer.max_steps == 40 and cfg.trainer.resume == str(run_dir)
    assert cfg.trainer.log_interval == 5 and cfg.logger.mode == "offline"
    resume.check_same_run(cfg, run_dir)  # the safety net in run.check_config agrees


@pytest.mark.parametrize("override, key, was, given", [
    ("model=gpt2-tiny", "model.name", "gpt1-tiny", "gpt2-tiny"),  # another model: the first differing key
    ("optimizer.lr=0.1", "optimizer.lr", "0.003", "0.1"),
    ("trainer.batch_size=4", "trainer.batch_size", "8", "4"),
])
def test_a_resume_that_changes_the_run_is_refused_naming_the_key_and_both_values(tmp_path, override, key, was, given):
    run_dir = _saved_run(tmp_path, SHORT + ["model=gpt1-tiny"])
    with pytest.raises(ConfigError) as info:
        resume.resumed_config(compose([f"trainer.resume={run_dir}", override]), compose([]), [override.split("=")[0]])
    message = str(info.value)
    assert message.startswith(f"{key}={given}: ") and f"{key}={was}" in message and "\n" not in message
    with pytest.raises(ConfigError, match=key):  # a full config handed to train() directly: refused too
        resume.check_same_run(compose(SHORT + ["model=gpt1-tiny", f"trainer.resume={run_dir}", override]), run_dir)


def test_a_directory_that_holds_a_run_is_refused_unless_overwrite(tmp_path):
    from gpt_exp.run import train

    run_dir = tmp_path / "run"
    run_dir.mkdir()
    (run_dir / "metrics.jsonl").write_text('{"step": 10}\n')
    with pytest.raises(ConfigError) as info:
        train(compose(SHORT + [f"paths.output_dir={run_dir}"]), run_dir, "test")
    message = str(info.value)
    assert message.startswith(f"paths.output_dir={run_dir}: the directory already holds a run (metrics.jsonl)")
    assert f"trainer.resume={run_dir}" in message and "paths.overwrite=true" in message and "\n" not in message
    assert sorted(p.name for p in run_dir.iterdir()) == ["metrics.jsonl"]  # nothing written

    (run_dir / ".hydra").mkdir()
    (run_dir / "checkpoints").mkdir()
    resume.clear_run_dir(run_dir)  # what paths.overwrite=true does before the run
    assert [p.name for p in run_dir.iterdir()] == [".hydra"]


# ----------------------------------------------------------------------------- real runs

@pytest.fixture(scope="module")
def finished_run(tmp_path_factory, shakespeare_excerpt) -> Path:
    """One real 20-step run (offline W&B), copied by each test that resumes it."""
    from gpt_exp.run import train

    run_dir = tmp_path_factory.mktemp("finished") / "run"
    train(compose(shakespeare_excerpt + SHORT + [f"paths.output_dir={run_dir}"]), run_dir, "test")
    read_finished_run(run_dir)  # W&B's file complete before it is copied
    return run_dir


def _copy(run_dir: Path, tmp_path: Path) -> Path:
    target = tmp_path / "run"
    shutil.copytree(run_dir, target, symlinks=True)
    return target


def _as_if_killed_after_step_15(run_dir: Path) -> None:
    """What a kill after step 15's log line leaves: checkpoints of step 10, later log lines, no summary."""
    folder = run_dir / "checkpoints"
    (folder / "step-000020.ckpt").unlink()
    (folder / "last.ckpt").unlink()
    (folder / "last.ckpt").symlink_to("step-000010.ckpt")
    (folder / f".tmp-{os.getpid() + 1}-step-000020.ckpt").write_bytes(b"an interrupted save")
    rows = [r for r in read_metrics(run_dir) if r["step"] <= 15]
    (run_dir / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (run_dir / "summary.json").unlink()


def _resume(shakespeare_excerpt, run_dir: Path, *overrides):
    from gpt_exp.run import train

    return train(compose(shakespeare_excerpt + SHORT + [f"trainer.resume={run_dir}", *overrides]), run_dir, "test")


def _assert_each_step_once(run_dir: Path, max_steps: int, eval_interval: int = 10) -> list[dict]:
    rows = read_metrics(run_dir)
    train_steps = [r["step"] for r in rows if "train/loss" in r]
    assert train_steps == list(range(5, max_steps + 1, 5)), train_steps
    assert Counter(r["step"] for r in rows if "eval/loss" in r) == {s: 1 for s in range(eval_interval, max_steps + 1, eval_interval)}
    wandb_run = read_finished_run(run_dir)  # the one W&B record that `wandb sync` uploads
    history = wandb_run["history"]
    assert [h["_step"] for h in history] == sorted(set(r["step"] for r in rows)), "W&B holds each step once"
    local = {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}
    assert {h["_step"]: h["train/loss"] for h in history if "train/loss" in h} == pytest.approx(local, rel=1e-6)
    assert wandb_run["exit_code"] == 0
    return rows


@pytest.mark.slow  # a real 20-step run (shared) and a resumed one: ~25 s each on 2 cores
def test_a_resume_after_a_kill_records_each_step_once(finished_run, shakespeare_excerpt, tmp_path):
    run_dir = _copy(finished_run, tmp_path)
    _as_if_killed_after_step_15(run_dir)
    before = [r for r in read_metrics(run_dir) if r["step"] <= 10]
    wandb_id = read_checkpoint_record(run_dir / "checkpoints" / "last.ckpt")["wandb_id"]
    result = _resume(shakespeare_excerpt, run_dir)

    rows = _assert_each_step_once(run_dir, 20)
    assert rows[:len(before)] == before  # the rows up to the checkpoint are kept as they were
    assert not list((run_dir / "checkpoints").glob(".tmp-*"))
    reference = {r["step"]: r["train/loss"] for r in read_metrics(finished_run) if "train/loss" in r}
    resumed = {r["step"]: r["train/loss"] for r in rows if "train/loss" in r}
    assert resumed == pytest.approx(reference, rel=1e-4)  # no dropout: the numbers of the run that never stopped
    assert result["test/loss"] == pytest.approx(json.loads((finished_run / "summary.json").read_text())
                                                ["summary"]["test/loss"], rel=1e-4)
    # the earlier W&B record is out of `wandb sync`'s way; the new one has the same run id
    assert list((run_dir / "wandb" / "replaced").glob("offline-run-*"))
    assert resume.plan_wandb(run_dir, wandb_id, "disabled").run_id == wandb_id
    assert json.loads((run_dir / "summary.json").read_text())["wandb_id"] == wandb_id


@pytest.mark.slow  # a real 20-step run (shared) and a resumed one: ~25 s each on 2 cores
def test_a_damaged_newest_checkpoint_falls_back_to_the_one_before(finished_run, shakespeare_excerpt, tmp_path):
    run_dir = _copy(finished_run, tmp_path)
    _damage(run_dir / "checkpoints" / "step-000020.ckpt", "0xFF")
    result = _resume(shakespeare_excerpt, run_dir)  # from step 10: steps 15 and 20 again, each recorded once
    _assert_each_step_once(run_dir, 20)
    assert checkpoint.read_verified(run_dir / "checkpoints" / "last.ckpt")[0]["step"] == 20
    assert result["best/step"] == 20


@pytest.mark.slow  # a real 20-step run (shared) and a resumed one: ~25 s each on 2 cores
def test_a_larger_max_steps_recomputes_the_schedule(finished_run, shakespeare_excerpt, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # where a graph-compile failure would write rank_0/om/analyze_fail.ir
    run_dir = _copy(finished_run, tmp_path)
    _resume(shakespeare_excerpt, run_dir, "trainer.max_steps=30")
    rows = _assert_each_step_once(run_dir, 30)
    cfg = compose(SHORT)
    table = learning_rates(cfg.optimizer.lr, 30, cfg.scheduler.warmup_steps, cfg.scheduler.name,
                           cfg.scheduler.min_lr_ratio)
    lrs = {r["step"]: r["train/lr"] for r in rows if "train/lr" in r}
    assert lrs[25] == pytest.approx(float(table[24])) and lrs[30] == pytest.approx(float(table[29]))
    assert [r["step"] for r in rows if "test/loss" in r] == [30]  # the first finish's test row is gone
    assert not (tmp_path / "rank_0").exists()


@pytest.mark.slow  # a real 20-step run (shared) and a resumed one: ~25 s each on 2 cores
def test_a_refused_resume_records_its_error_and_adds_no_wandb_run(finished_run, shakespeare_excerpt, tmp_path):
    run_dir = _copy(finished_run, tmp_path)
    wandb_dirs = sorted(p.name for p in (run_dir / "wandb").iterdir())
    with pytest.raises(ConfigError, match=r"^model.n_layer=3: the run in .* was trained with model.n_layer=2"):
        _resume(shakespeare_excerpt, run_dir, "model.n_layer=3")
    summary = json.loads((run_dir / "summary.json").read_text())
    assert summary["status"] == "failed" and "model.n_layer=3" in summary["error"]
    assert summary["previous"]["status"] == "finished"
    assert "model.n_layer=3" in (run_dir / "error.txt").read_text()
    assert sorted(p.name for p in (run_dir / "wandb").iterdir()) == wandb_dirs


def _cli(args):
    env = {**os.environ, "HYDRA_FULL_ERROR": "1"}
    return subprocess.Popen([sys.executable, "-m", "gpt_exp", *args], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


@pytest.mark.slow
def test_a_killed_cli_run_resumed_by_its_directory_alone(tmp_path, shakespeare_excerpt):
    """A real SIGKILL after step 25's log line (checkpoints every 20), then `trainer.resume=<dir>` alone."""
    run_dir = tmp_path / "run"
    overrides = shakespeare_excerpt + SHORT + ["trainer.max_steps=40", "trainer.checkpoint_interval=20",
                                               "trainer.eval_interval=20", f"paths.output_dir={run_dir}",
                                               f"hydra.run.dir={tmp_path / 'hydra-first'}"]
    process = _cli(overrides)
    deadline = time.time() + 400
    while time.time() < deadline and process.poll() is None:
        if any(r["step"] >= 25 for r in _readable_rows(run_dir)):
            process.send_signal(signal.SIGKILL)
            break
        time.sleep(0.02)
    output, _ = process.communicate()
    assert process.returncode == -signal.SIGKILL, output
    assert read_checkpoint_record(run_dir / "checkpoints" / "last.ckpt")["step"] == 20, "killed too late"
    assert max(r["step"] for r in read_metrics(run_dir)) > 20

    refused = _cli([f"trainer.resume={run_dir}", "model=gpt1-tiny", f"hydra.run.dir={tmp_path / 'hydra-refused'}"])
    output, _ = refused.communicate(timeout=300)
    assert refused.returncode == 2 and "config error: model.name=gpt1-tiny: the run in" in output, output
    assert "Traceback" not in output and len(list((run_dir / "wandb").glob("*run-*"))) == 1
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "failed"

    resumed = _cli([f"trainer.resume={run_dir}", f"hydra.run.dir={tmp_path / 'hydra-resumed'}"])
    output, _ = resumed.communicate(timeout=600)
    assert resumed.returncode == 0, output
    assert "W&B is off" not in output and "W&B failed" not in output, output
    assert find_run_file(run_dir) is not None, f"no W&B run file after the resume: {sorted((run_dir / 'wandb').rglob('*'))}\n{output}"
    _assert_each_step_once(run_dir, 40, eval_interval=20)
    assert json.loads((run_dir / "summary.json").read_text())["status"] == "finished"
    killed_wandb = [read_run(f) for f in (run_dir / "wandb" / "replaced").glob("*/run-*.wandb")]
    assert killed_wandb and killed_wandb[0]["exit_code"] is None  # the killed attempt's record, set aside


def _readable_rows(run_dir: Path) -> list[dict]:
    try:
        return read_metrics(run_dir)
    except (json.JSONDecodeError, OSError):  # a line being written
        return []
