"""Sweeps through the command line: the presets, real multiruns (grid, crash, Optuna), launcher
configs, the W&B sweep definition and its local driver.

The end-to-end runs train a tiny GPT for a few steps on an excerpt of the real Shakespeare corpus
(a few KB per split, so evaluating the test split takes a second, not minutes).
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from conftest import CONFIG_DIR, ROOT, TINY

from gpt_exp.tools.compare import compare
from gpt_exp.errors import ConfigError
from gpt_exp.wandb_records import find_run_file, iter_records, read_finished_run

SWEEPS = ROOT / "conf" / "sweep"
SHORT = ["trainer.max_steps=6", "trainer.eval_interval=3", "trainer.log_interval=2", "trainer.checkpoint_interval=6",
         "task.sample_max_new_tokens=4", "trainer.compile=false"]


def without(overrides: list[str], *keys: str) -> list[str]:
    return [o for o in overrides if o.split("=", 1)[0] not in keys]


def cli(args: list[str], timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "HYDRA_FULL_ERROR": "1", "GLOG_v": "3"}
    return subprocess.run([sys.executable, "-m", "gpt_exp", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)


def compose_with_hydra(overrides: list[str]):
    from hydra import compose, initialize_config_dir

    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        return compose(config_name="train", overrides=overrides, return_hydra_config=True)


def wandb_run(run_dir: Path) -> dict:
    """The offline W&B run, once its exit record is written (W&B's service may still be flushing)."""
    return read_finished_run(run_dir)


def wandb_group(run_dir: Path) -> str:
    for record in iter_records(find_run_file(run_dir)):
        if record.WhichOneof("record_type") == "run":
            return record.run.run_group


def job_dirs(sweep_dir: Path) -> list[Path]:
    return sorted((p for p in sweep_dir.iterdir() if p.is_dir() and p.name[0].isdigit()),
                  key=lambda p: int(p.name.split("_")[0]))


# --- the presets ----------------------------------------------------------------------------------

def test_presets_are_a_config_group_in_help():
    done = cli(["--help"], timeout=120)
    assert done.returncode == 0, done.stderr
    line = next(line for line in done.stdout.splitlines() if line.startswith("sweep:"))
    options = line.removeprefix("sweep: ").split(", ")
    assert {"grid", "optuna", "optuna_finetune"} <= set(options)
    assert "lm_shakespeare" not in options  # a W&B sweep definition (conf/sweep/wandb/), not a Hydra option


def test_grid_preset_sweeps_model_task_precision_truncation():
    cfg = compose_with_hydra(["+sweep=grid"])
    params = cfg.hydra.sweeper.params
    assert set(params) == {"model", "task", "precision", "truncation"}
    assert params.model == "gpt1-tiny,gpt2-tiny" and params.truncation == "head,tail"


def test_optuna_presets_search_the_right_way_for_the_task():
    lm = compose_with_hydra(["+sweep=optuna"]).hydra.sweeper
    assert lm._target_.endswith("OptunaSweeper") and lm.direction == "minimize"  # LM loss
    assert set(lm.params) == {"optimizer.lr", "scheduler.warmup_steps", "trainer.batch_size"}
    assert lm.max_failure_rate == 1.0
    finetune = compose_with_hydra(["+sweep=optuna_finetune"])
    assert finetune.task.name == "classification"
    assert finetune.hydra.sweeper.direction == "maximize"  # accuracy
    assert finetune.hydra.sweeper.params["task.lm_coef"] == "interval(0.0, 1.0)"
    assert compose_with_hydra(["+sweep=optuna", "task=classification"]).hydra.sweeper.direction == "maximize"


def test_launcher_configs_compose():
    parallel = compose_with_hydra(["hydra/launcher=parallel"]).hydra.launcher
    assert parallel._target_.endswith("JoblibLauncher") and parallel.n_jobs == 2 and parallel.prefer == "processes"
    pytest.importorskip("hydra_plugins.hydra_submitit_launcher", reason="pip install -e '.[slurm]'")
    slurm = compose_with_hydra(["hydra/launcher=slurm", "hydra.launcher.partition=gpu"]).hydra.launcher
    assert slurm._target_.endswith("SlurmLauncher") and slurm.partition == "gpu" and slurm.tasks_per_node == 1
    from hydra.utils import get_class

    assert get_class(slurm._target_).__name__ == "SlurmLauncher"


# --- names and groups of a multirun's jobs ----------------------------------------------------------

def test_names_come_from_the_keys_that_vary_seed_included():
    from gpt_exp.multirun import job_name, varying_keys

    # the command line sweeps seed and pins truncation; the preset sweeps model and truncation, fixes task
    varying = varying_keys(["+sweep=grid", "seed=1,2", "truncation=head", "device=cpu"],
                           {"model": "gpt1-tiny,gpt2-tiny", "truncation": "head,tail", "task": "lm"})
    assert varying == ["model", "seed"]
    job = ["+sweep=grid", "seed=2", "truncation=head", "device=cpu", "model=gpt2-tiny", "task=lm"]
    assert job_name("gpt2-tiny-lm-fp32", job, varying) == "gpt2-tiny-lm-fp32[model=gpt2-tiny,seed=2]"
    names = {job_name("gpt2-tiny-lm-fp32", [f"seed={seed}", "trainer.max_steps=5"], varying_keys(
        ["seed=1,2", "trainer.max_steps=5"], None)) for seed in (1, 2)}
    assert names == {"gpt2-tiny-lm-fp32[seed=1]", "gpt2-tiny-lm-fp32[seed=2]"}  # two jobs, two names
    # an Optuna search: its distributions vary; a sampled float is shortened
    optuna = varying_keys([], {"optimizer.lr": "tag(log, interval(1e-4, 1e-2))", "trainer.batch_size": "choice(8, 16)"})
    assert optuna == ["optimizer.lr", "trainer.batch_size"]
    assert job_name("x", ["optimizer.lr=0.0012345678901", "trainer.batch_size=8"], optuna) == \
        "x[optimizer.lr=0.001235,trainer.batch_size=8]"
    assert job_name("x", ["seed=1"], []) == "x"  # nothing varies: the plain name


def test_the_group_is_the_sweeps_date_and_time():
    from gpt_exp.multirun import sweep_group

    assert sweep_group("multirun/2026-12-03/05-16-00") == "2026-12-03_05-16-00"
    assert sweep_group("multirun/2026-12-04/05-16-00") != sweep_group("multirun/2026-12-03/05-16-00")
    assert sweep_group("multirun/2026-12-03/05-16-00_grid") == "2026-12-03_05-16-00_grid"  # a preset's
    assert sweep_group("multirun/gpt1_ablation/2026-12-03_05-16-00") == "2026-12-03_05-16-00"
    assert sweep_group("/tmp/my-sweep") == "my-sweep"  # a directory of the user's own naming
    cfg = compose_with_hydra(["+sweep=grid"])  # and the callback that records a multirun is configured
    assert cfg.hydra.callbacks.gpt_exp_multirun._target_ == "gpt_exp.multirun.MultirunRecorder"


# --- the W&B sweep definition and the local driver ----------------------------------------------------

def test_wandb_sweep_yaml_validates_and_every_proposal_composes(capsys):
    from gpt_exp.tools.sweep_local import load_sweep, main, sweeps_engine

    sweeps = sweeps_engine()  # W&B's own sweep engine and schema

    definition = yaml.safe_load((SWEEPS / "wandb" / "lm_shakespeare.yaml").read_text())
    assert sweeps.schema_violations_from_proposed_config(definition) == []
    assert "${args_no_hyphens}" in definition["command"] and definition["metric"]["name"] == "best/loss"
    load_sweep(SWEEPS / "wandb" / "lm_shakespeare.yaml")
    # a dry run proposes runs with W&B's engine and composes each one's config
    assert main([str(SWEEPS / "wandb" / "lm_shakespeare.yaml"), "--dry-run", "--count", "4", "--", "device=cpu"]) == 0
    commands = [line for line in capsys.readouterr().out.splitlines() if line.startswith("[")]
    assert len(commands) == 4 and all(" -m gpt_exp " in c and "logger.mode=offline" in c for c in commands)
    assert len({c.split(" optimizer.lr=")[1].split()[0] for c in commands}) == 4  # random lr draws


def test_a_broken_sweep_definition_is_refused_with_the_reason(tmp_path):
    from gpt_exp.tools.sweep_local import load_sweep, run_sweep

    bad = tmp_path / "bad.yaml"
    bad.write_text("method: grid\nparamters: {optimizer.lr: {values: [0.1]}}\n")
    with pytest.raises(ConfigError, match="method.*parameters"):
        load_sweep(bad)
    bad.write_text("method: random\nparameters: {optimizer.lr: {min: 1}}\ncommand: [python, -m, gpt_exp, \"${args_no_hyphens}\"]\n")
    with pytest.raises(ConfigError, match="not a valid W&B sweep"):
        load_sweep(bad)
    bad.write_text("method: grid\nparameters: {optimizer.lr: {values: [0.1]}}\n")
    with pytest.raises(ConfigError, match="args_no_hyphens"):  # W&B's default command passes --key=value
        load_sweep(bad)
    bad.write_text("method: grid\nparameters: {optimizer.lrr: {values: [0.1]}}\n"
                   "command: [python, -m, gpt_exp, \"${args_no_hyphens}\"]\n")
    with pytest.raises(ConfigError, match="optimizer.lrr"):
        run_sweep(bad, tmp_path / "sweep", dry_run=True)


@pytest.mark.slow
def test_local_driver_runs_a_grid_and_records_a_crash(tmp_path, shakespeare_excerpt, capsys):
    from gpt_exp.tools.sweep_local import main

    definition = tmp_path / "sweep.yaml"
    definition.write_text(yaml.safe_dump({
        "name": "local-grid", "method": "grid", "metric": {"name": "best/loss", "goal": "minimize"},
        "parameters": {"trainer.batch_size": {"values": [100000, 8]}, "optimizer.lr": {"value": 0.003}},
        "command": ["${env}", "${interpreter}", "-m", "gpt_exp", "logger.mode=online", "${args_no_hyphens}"]}))
    sweep_dir = tmp_path / "sweep"
    extra = without(TINY, "trainer.batch_size", "optimizer.lr", "logger.mode") + shakespeare_excerpt + SHORT
    assert main([str(definition), "--sweep-dir", str(sweep_dir), "--", *extra]) == 1  # after both runs ran
    crashed, finished = job_dirs(sweep_dir)
    assert json.loads((crashed / "summary.json").read_text())["status"] == "failed"
    assert "trainer.batch_size=100000" in (crashed / "error.txt").read_text()
    assert json.loads((finished / "summary.json").read_text())["status"] == "finished"
    last = capsys.readouterr().out.strip().splitlines()[-1]  # one line names the failed run and its error.txt
    assert last.startswith("sweep: 1 of 2 jobs failed: gpt2-tiny-lm-fp32[trainer.batch_size=100000] (")
    assert str(crashed / "error.txt") in last
    offline = wandb_run(finished)  # the runs go offline, named by the swept value (lr is the same in both)
    assert offline["name"] == "gpt2-tiny-lm-fp32[trainer.batch_size=8]" and offline["exit_code"] == 0
    assert wandb_group(finished) == "sweep"
    table = (sweep_dir / "comparison" / "comparison.csv").read_text()
    assert "failed" in table and "finished" in table


# --- real multiruns through the command line ----------------------------------------------------------

@pytest.mark.slow
def test_2x2_multirun_in_parallel_gives_4_distinct_runs_and_a_table(tmp_path, shakespeare_excerpt):
    sweep_dir = tmp_path / "grid"
    done = cli(["-m", "+sweep=grid", "hydra/launcher=parallel", "device.num_threads=1", "truncation=head",
                "model=gpt1-tiny,gpt2-tiny", "optimizer.lr=1e-3,3e-3", *without(TINY, "optimizer.lr", "logger.mode"),
                *shakespeare_excerpt, *SHORT, "logger.mode=offline", f"hydra.sweep.dir={sweep_dir}"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    jobs = job_dirs(sweep_dir)
    assert len(jobs) == 4
    seen_ids, final_losses = set(), set()
    for job in jobs:
        config = yaml.safe_load((job / "config.yaml").read_text())
        overrides = yaml.safe_load((job / ".hydra" / "overrides.yaml").read_text())
        assert f"model={config['model']['name']}" in overrides
        lr = next(o for o in overrides if o.startswith("optimizer.lr=")).split("=")[1]
        assert float(lr) == config["optimizer"]["lr"]
        summary = json.loads((job / "summary.json").read_text())
        assert summary["status"] == "finished"
        rows = [json.loads(line) for line in (job / "metrics.jsonl").read_text().splitlines()]
        assert [r["step"] for r in rows if "train/loss" in r] == [2, 4, 6]  # its own steps, once each
        assert max(r["train/lr"] for r in rows if "train/lr" in r) == pytest.approx(config["optimizer"]["lr"])
        final_losses.add(round(summary["summary"]["best/loss"], 6))
        run = wandb_run(job)
        assert run["exit_code"] == 0 and run["config"]["model"]["name"] == config["model"]["name"]
        assert run["name"] == config["run_name"] == f"{config['model']['name']}-lm-fp32[model={config['model']['name']},optimizer.lr={lr}]"
        assert wandb_group(job) == "grid"  # a sweep directory of the user's own naming
        seen_ids.add(summary["wandb_id"])
    assert len(seen_ids) == 4 and len(final_losses) == 4

    written = compare([sweep_dir], tmp_path / "comparison")
    assert written["swept"] == ["model", "optimizer.lr"]
    assert [r.status for r in written["runs"]] == ["finished"] * 4
    assert {p.name for p in written["plots"]} >= {"loss_curves.png", "loss_vs_model.png", "loss_vs_optimizer.lr.png"}


@pytest.mark.slow
def test_a_crashing_job_is_recorded_the_sweep_goes_on_and_exits_1(tmp_path, shakespeare_excerpt):
    """batch_size=100000 passes the config check and fails at run time; seed=1 is the same in both jobs."""
    root = tmp_path / "multirun"
    done = cli(["-m", "trainer.batch_size=100000,8", "seed=1", *without(TINY, "trainer.batch_size", "logger.mode"),
                *shakespeare_excerpt, *SHORT, "trainer.max_steps=2", "trainer.eval_interval=2", "logger.mode=offline",
                f"hydra.sweep.dir={root}/${{now:%Y-%m-%d}}/${{now:%H-%M-%S}}"])  # the default layout, in tmp
    assert done.returncode == 1, done.stdout[-3000:] + done.stderr[-5000:]
    (sweep_dir,) = root.glob("*/*")
    crashed, finished = job_dirs(sweep_dir)
    record = json.loads((crashed / "summary.json").read_text())
    assert record["status"] == "failed" and "trainer.batch_size=100000" in record["error"]
    assert "Traceback" in (crashed / "error.txt").read_text()
    summary = json.loads((finished / "summary.json").read_text())
    assert summary["status"] == "finished"  # the job after the failed one ran to its end
    failures = [line for line in done.stderr.splitlines() if line.startswith("multirun:")]
    assert len(failures) == 1 and failures[0].startswith("multirun: 1 of 2 jobs failed: ")
    assert "gpt2-tiny-lm-fp32[trainer.batch_size=100000] (ValueError: " in failures[0]
    assert str(crashed / "error.txt") in failures[0]
    # named by what varies (not seed=1, the same in both), and the name is one in config, summary and W&B
    name = "gpt2-tiny-lm-fp32[trainer.batch_size=8]"
    assert yaml.safe_load((finished / "config.yaml").read_text())["run_name"] == name
    assert summary["run_name"] == name and record["run_name"] == "gpt2-tiny-lm-fp32[trainer.batch_size=100000]"
    run = wandb_run(finished)
    assert run["name"] == name and run["config"]["run_name"] == name
    # the group is the sweep's date and time, unique across days
    assert wandb_group(finished) == f"{sweep_dir.parent.name}_{sweep_dir.name}"
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}_\d{2}-\d{2}-\d{2}", wandb_group(finished))
    written = compare([sweep_dir], tmp_path / "comparison")
    assert [r.status for r in written["runs"]] == ["finished", "failed"]


@pytest.mark.slow
def test_optuna_preset_runs_3_trials_and_keeps_the_best(tmp_path, shakespeare_excerpt):
    sweep_dir = tmp_path / "optuna"
    searched = ("optimizer.lr", "scheduler.warmup_steps", "trainer.batch_size")
    done = cli(["-m", "+sweep=optuna", "hydra.sweeper.n_trials=3", *without(TINY, *searched), *shakespeare_excerpt, *SHORT,
                "trainer.max_steps=4", "trainer.eval_interval=2", f"hydra.sweep.dir={sweep_dir}"])
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-5000:]
    trials = job_dirs(sweep_dir)
    assert len(trials) == 3
    values, sampled = [], set()
    for trial in trials:
        summary = json.loads((trial / "summary.json").read_text())
        assert summary["status"] == "finished"
        values.append(summary["summary"]["best/loss"])
        overrides = yaml.safe_load((trial / ".hydra" / "overrides.yaml").read_text())
        sampled.add(next(o for o in overrides if o.startswith("optimizer.lr=")))
    assert len(sampled) == 3  # each trial tried its own learning rate
    result = yaml.safe_load((sweep_dir / "optimization_results.yaml").read_text())
    assert result["best_value"] == pytest.approx(min(values))  # minimised, as the LM task asks
    assert set(result["best_params"]) == set(searched)
