"""Bad input fails fast: one line `config error: <key>=<value>: ... Fix: ...`, exit code 2, no traceback,
nothing written but the log (no checkpoint, no model/, no W&B run).

One table of bad invocations covers every category of issue 11 (wrong type, out of range, not a
choice, unknown key, missing required key, contradicting keys, Hydra composition errors, bad data
files and records, bad `model.init_from` folders, what the machine cannot do) and every config group.
The table runs through ONE driver process (tests/bad_input_driver.py: Hydra's compose, then the CLI's
own task function), and a few cases run as real `python -m gpt_exp` processes for the exit-code path.
"""
from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT, compose

from gpt_exp.config_check import check_settings

DRIVER = ROOT / "tests" / "bad_input_driver.py"
CONFIG_SECONDS = 10  # every check that needs no data runs before any work, in under this
WRITTEN = ("checkpoints", "model", "wandb", "config.yaml", "metrics.jsonl", "tokenizer")

# id, overrides ({tmp} is the case folder with the files below), text the one-line message must contain, kind
# kind: config (no data needed: < CONFIG_SECONDS), data (after loading the data, before training), env (the machine)
CASES = [
    # ---- the 14 failures listed in issue 11
    ("issue_lr_negative", ["optimizer.lr=-1"], "optimizer.lr=-1: must be > 0", "config"),
    ("issue_lr_text", ["optimizer.lr=abc"], "optimizer.lr='abc': must be a number", "config"),
    ("issue_grad_norm_negative", ["trainer.max_grad_norm=-1"], "trainer.max_grad_norm=-1", "config"),
    ("issue_warmup_negative", ["scheduler.warmup_steps=-3"], "scheduler.warmup_steps=-3", "config"),
    ("issue_seed_negative", ["seed=-1"], "seed=-1: must be >= 0", "config"),
    ("issue_seed_text", ["seed=abc"], "seed='abc': must be a whole number", "config"),
    ("issue_dropout_over_1", ["model.dropout=1.5"], "model.dropout=1.5", "config"),
    ("issue_zero_layers", ["model.n_layer=0"], "model.n_layer=0", "config"),
    ("issue_logger_mode", ["logger.mode=shouting"], "logger.mode='shouting': must be one of", "config"),
    ("issue_unknown_root_key", ["+unknown_key=1"], "unknown_key=1: the top level of the config has no key", "config"),
    ("issue_dev_null", ["data=text_files", "data.files.train=/dev/null"], "data.files.train=/dev/null", "config"),
    ("issue_binary_file", ["data=text_files", "data.files.train={tmp}/blob.bin"], "is not text", "data"),
    ("issue_init_from_empty_config", ["model.init_from={tmp}/empty_config"], "model.init_from=", "config"),
    ("issue_one_choice", ["task=multiple_choice", "data=text_files", "data.files.train={tmp}/one_choice.jsonl"],
     "fewer than 2 choices", "data"),
    ("unknown_lm_key_on_classification", ["task=classification", "debug=smoke", "+task.sample_max_new_tokens=10"],
     "task.sample_max_new_tokens=10", "config"),
    # ---- wrong types, every group
    ("type_batch_size_float", ["trainer.batch_size=1.5"], "trainer.batch_size=1.5: must be a whole number", "config"),
    ("type_compile_text", ["trainer.compile=maybe"], "trainer.compile='maybe': must be true or false", "config"),
    ("type_compile_cache_text", ["trainer.compile_cache=maybe"], "trainer.compile_cache='maybe': must be true or false", "config"),
    ("type_n_layer_text", ["model.n_layer=two"], "model.n_layer='two'", "config"),
    ("type_tags_number", ["logger.tags=5"], "logger.tags=5: must be a list", "config"),
    ("type_loss_scale_number", ["precision=fp16", "precision.loss_scale=3"], "precision.loss_scale=3", "config"),
    ("type_max_train_samples", ["data.max_train_samples=abc"], "data.max_train_samples='abc'", "config"),
    ("type_lm_coef", ["task=classification", "task.lm_coef=abc"], "task.lm_coef='abc'", "config"),
    ("type_num_beams", ["task=summarization", "task.generation.num_beams=x"], "task.generation.num_beams='x'", "config"),
    ("type_head_fraction", ["truncation.head_fraction=half"], "truncation.head_fraction='half'", "config"),
    ("type_device_id", ["device.device_id=abc"], "device.device_id='abc'", "config"),
    ("type_betas_scalar", ["optimizer.betas=0.9"], "optimizer.betas=0.9: must be a list", "config"),
    ("type_vocab_size", ["tokenizer.vocab_size=big"], "tokenizer.vocab_size='big'", "config"),
    ("type_both_orders", ["task=similarity", "task.both_orders=3"], "task.both_orders=3", "config"),
    ("type_lr_infinite", ["optimizer.lr=inf"], "optimizer.lr=inf: must be a finite number", "config"),
    # ---- out of range
    ("range_lr_zero", ["optimizer.lr=0"], "optimizer.lr=0", "config"),
    ("range_lr_huge", ["optimizer.lr=5"], "optimizer.lr=5: must be <= 1", "config"),
    ("range_batch_size", ["trainer.batch_size=0"], "trainer.batch_size=0", "config"),
    ("range_grad_accum", ["trainer.grad_accum_steps=0"], "trainer.grad_accum_steps=0", "config"),
    ("range_max_steps", ["trainer.max_steps=-1"], "trainer.max_steps=-1", "config"),
    ("range_eval_interval", ["trainer.eval_interval=0"], "trainer.eval_interval=0", "config"),
    ("range_eval_batches", ["trainer.eval_batches=0"], "trainer.eval_batches=0", "config"),
    ("range_max_epochs", ["trainer.max_epochs=0"], "trainer.max_epochs=0", "config"),
    ("range_min_lr_ratio", ["scheduler.min_lr_ratio=2"], "scheduler.min_lr_ratio=2", "config"),
    ("range_weight_decay", ["optimizer.weight_decay=-0.1"], "optimizer.weight_decay=-0.1", "config"),
    ("range_beta2", ["optimizer.betas=[0.9,1.0]"], "optimizer.betas[1]=1.0: must be < 1", "config"),
    ("range_eps", ["optimizer.eps=0"], "optimizer.eps=0", "config"),
    ("range_n_head", ["model.n_head=0"], "model.n_head=0", "config"),
    ("range_epsilon", ["model.layer_norm_epsilon=0"], "model.layer_norm_epsilon=0", "config"),
    ("range_max_eval_samples", ["data.max_eval_samples=-5"], "data.max_eval_samples=-5", "config"),
    ("range_head_fraction", ["truncation.head_fraction=1.5"], "truncation.head_fraction=1.5", "config"),
    ("range_head_dropout", ["task=entailment", "task.head_dropout=1"], "task.head_dropout=1", "config"),
    ("range_lm_coef", ["task=classification", "task.lm_coef=-1"], "task.lm_coef=-1", "config"),
    ("range_max_seq_len", ["task.max_seq_len=0"], "task.max_seq_len=0", "config"),
    ("range_sample_temperature", ["task.sample_temperature=0"], "task.sample_temperature=0", "config"),
    ("range_top_p", ["task=summarization", "task.generation.top_p=0"], "task.generation.top_p=0", "config"),
    ("range_num_threads", ["device.num_threads=0"], "device.num_threads=0", "config"),
    ("range_vocab_size", ["tokenizer.vocab_size=10"], "tokenizer.vocab_size=10", "config"),
    ("range_loss_scale_init", ["precision=fp16", "precision.loss_scale.init=0.5"], "precision.loss_scale.init=0.5",
     "config"),
    ("range_show_predictions", ["task=multiple_choice", "task.show_predictions=-1"], "task.show_predictions=-1",
     "config"),
    # ---- not one of the choices
    ("choice_scheduler", ["scheduler.name=exp"], "scheduler.name='exp'", "config"),
    ("choice_optimizer", ["optimizer.name=sgd"], "optimizer.name='sgd'", "config"),
    ("choice_truncation", ["truncation.strategy=middle"], "truncation.strategy='middle'", "config"),
    ("choice_pairs", ["truncation.pairs=both"], "truncation.pairs='both'", "config"),
    ("choice_arch", ["model.arch=gpt3"], "model.arch='gpt3'", "config"),
    ("choice_device_target", ["device.target=tpu"], "device.target='tpu'", "config"),
    ("choice_amp_level", ["precision.amp_level=O4"], "precision.amp_level='O4'", "config"),
    ("choice_matmul_kernel", ["precision=bf16_matmul", "precision.matmul_kernel=mkl"], "precision.matmul_kernel='mkl'",
     "config"),
    ("choice_loss_on", ["task=summarization", "task.loss_on=none"], "task.loss_on='none'", "config"),
    ("choice_strategy", ["task=summarization", "task.generation.strategy=nucleus"], "task.generation.strategy=", "config"),
    ("choice_rouge_tokens", ["task=summarization", "data.rouge_tokens=bytes"], "data.rouge_tokens='bytes'", "config"),
    ("choice_backend", ["distributed=data_parallel", "distributed.backend=mpi"], "distributed.backend='mpi'", "config"),
    # ---- unknown keys: the node's keys listed, the nearest suggested
    ("unknown_trainer", ["+trainer.max_step=5"], "Fix: trainer.max_steps=5 (the nearest key)", "config"),
    ("unknown_model", ["+model.n_layers=2"], "Fix: model.n_layer=2", "config"),
    ("unknown_optimizer", ["+optimizer.learning_rate=1"], "optimizer.learning_rate=1", "config"),
    ("unknown_data", ["+data.text_fild=x"], "Fix: data.text_field='x'", "config"),
    ("unknown_task_finetune", ["task=classification", "+task.lm_coeff=0.1"], "Fix: task.lm_coef=0.1", "config"),
    ("unknown_task_lm", ["+task.sample_prompt=[a]"], "task.sample_prompt=['a']", "config"),
    ("unknown_logger", ["+logger.projct=x"], "Fix: logger.project='x'", "config"),
    ("unknown_precision", ["+precision.scale=2"], "precision.scale=2", "config"),
    ("unknown_generation", ["task=summarization", "+task.generation.beams=3"], "task.generation.beams=3", "config"),
    ("unknown_tokenizer", ["+tokenizer.vocab=5"], "tokenizer.vocab=5", "config"),
    ("unknown_device", ["+device.gpu=1"], "device.gpu=1", "config"),
    ("unknown_scheduler", ["+scheduler.warmup=5"], "Fix: scheduler.warmup_steps=5", "config"),
    ("unknown_truncation", ["+truncation.side=left"], "truncation.side='left'", "config"),
    ("unknown_paths", ["+paths.data=x"], "paths.data='x'", "config"),
    ("unknown_distributed", ["distributed=data_parallel", "+distributed.backnd=x"], "Fix: distributed.backend='x'",
     "config"),
    ("unknown_special_token", ["task=entailment", "+task.special_tokens.end=x"], "task.special_tokens.end='x'", "config"),
    # ---- required keys left at ???
    ("required_train_file", ["data=text_files"], "data.files.train=???", "config"),
    ("required_hub_tokenizer", ["tokenizer=hub"], "tokenizer.name=???", "config"),
    ("required_saved_tokenizer", ["tokenizer=saved"], "tokenizer.path=???", "config"),
    # ---- keys that contradict each other
    ("cross_heads", ["model.n_head=3"], "model.n_embd=128 is not divisible by model.n_head=3", "config"),
    ("cross_positions", ["task.max_seq_len=1024"], "task.max_seq_len=1024 is longer than model.n_positions=256", "config"),
    ("cross_no_source", ["data.name=null"], "data: set exactly one of", "config"),
    ("cross_two_sources", ["data.hub_id=x"], "data: set exactly one of", "config"),
    ("cross_unknown_dataset", ["data.name=shakespear"], "data.name='shakespear'", "config"),
    ("cross_min_new_tokens", ["task=summarization", "task.generation.min_new_tokens=40"],
     "task.generation.min_new_tokens=40", "config"),
    ("cross_max_new_tokens", ["task=summarization", "task.generation.max_new_tokens=300"],
     "task.generation.max_new_tokens=300", "config"),
    ("cross_zero_shot_needs_weights", ["experiment=summarization_zero_shot"], "model.init_from is not set", "config"),
    ("cross_score_range", ["task=similarity", "task.score_range=[5.0,0.0]"], "task.score_range=[5.0, 0.0]", "config"),
    ("cross_one_label", ["task=classification", "task.label_names=[only]"], "task.label_names=['only']", "config"),
    ("cross_interpolation", ["run_name=${model.nam}"], "run_name=${model.nam}: cannot be resolved", "config"),
    # ---- Hydra's own composition errors
    ("hydra_unknown_option", ["model=gpt3"], "model=gpt3: no such option", "config"),
    ("hydra_override_missing_key", ["trainer.max_step=3"], "Fix: trainer.max_steps=3", "config"),
    ("hydra_add_existing_key", ["+seed=3"], "+seed=3: seed already exists", "config"),
    ("hydra_unknown_debug", ["debug=nope"], "debug=nope: no such option", "config"),
    ("hydra_files_of_builtin", ["data.files.train=a.txt"], "data.files.train=a.txt", "config"),
    # ---- data files: checked by a stat before the work, by their content after loading
    ("file_missing", ["data=text_files", "data.files.train={tmp}/nope.txt"], "does not exist", "config"),
    ("file_directory", ["data=text_files", "data.files.train={tmp}"], "is a directory", "config"),
    ("file_empty", ["data=text_files", "data.files.train={tmp}/empty.txt"], "is empty", "config"),
    ("file_empty_validation", ["data=text_files", "data.files.train={tmp}/text.txt",
                               "data.files.validation={tmp}/empty.txt"], "data.files.validation=", "config"),
    ("file_latin1", ["data=text_files", "data.files.train={tmp}/latin1.txt"], "is not UTF-8 text", "data"),
    ("file_bad_json", ["data=text_files", "data.files.train={tmp}/bad.jsonl"], "cannot be read as JSON lines", "data"),
    ("file_label_missing", ["task=classification", "data=text_files", "data.files.train={tmp}/no_label.jsonl"],
     "data.label_field='label' is not a field", "data"),
    ("file_choices_missing", ["task=multiple_choice", "data=text_files", "data.files.train={tmp}/no_choices.jsonl"],
     "data.choices_field='choices' is not a field", "data"),
    ("file_lm_field_missing", ["data=text_files", "data.files.train={tmp}/no_label.jsonl", "data.text_field=body"],
     "data.text_field='body'", "data"),
    # ---- model.init_from folders
    ("init_bad_json", ["model.init_from={tmp}/bad_json"], "is not readable JSON", "config"),
    ("init_random_weights", ["model.init_from={tmp}/random_weights"], "is not a readable safetensors file", "config"),
    ("init_no_weights", ["model.init_from={tmp}/no_weights"], "no model.safetensors", "config"),
    ("init_not_a_folder", ["model.init_from=./no/such/run"], "model.init_from=./no/such/run", "config"),
    ("init_hub_offline", ["model.init_from=gpt2"], "model.init_from='gpt2' is a hub name", "config"),
    # ---- what this machine cannot do
    ("env_ascend", ["device=ascend"], "device=ascend", "env"),
    ("env_bf16_cpu", ["device=cpu", "precision=bf16"], "precision=bf16", "env"),
    ("env_resume_empty", ["trainer.resume={tmp}"], "trainer.resume=", "env"),
]

# The same path through a real process: Hydra's command line, exit code and stderr as a user sees them.
SUBPROCESS_CASES = ["hydra_unknown_option", "hydra_override_missing_key", "issue_lr_negative", "issue_unknown_root_key",
                    "issue_dev_null"]


def write_inputs(folder: Path) -> None:
    """The small bad files the cases point at."""
    from safetensors.numpy import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "blob.bin").write_bytes(bytes(range(256)) * 8)  # 2 KB with NUL bytes
    (folder / "latin1.txt").write_bytes("café crème brûlée\n".encode("latin-1") * 50)
    (folder / "empty.txt").write_bytes(b"")
    (folder / "text.txt").write_text("To be, or not to be, that is the question.\n" * 50)
    (folder / "bad.jsonl").write_text('{"text": "fine"}\n{not json at all\n')
    lines = lambda record: "".join(json.dumps({**record, "i": i}) + "\n" for i in range(30))  # noqa: E731
    (folder / "one_choice.jsonl").write_text(lines({"context": "why did he go", "choices": ["to eat"], "label": 0}))
    (folder / "no_label.jsonl").write_text(lines({"text": "a fine movie"}))
    (folder / "no_choices.jsonl").write_text(lines({"context": "why", "answers": ["a", "b"], "label": 0}))
    gpt2 = {"model_type": "gpt2", "vocab_size": 100, "n_positions": 64, "n_embd": 16, "n_layer": 1, "n_head": 2}
    for name, config, weights in [("empty_config", "{}", os.urandom(4096)), ("bad_json", "{", None),
                                  ("random_weights", json.dumps(gpt2), os.urandom(4096)),
                                  ("no_weights", json.dumps(gpt2), None)]:
        (folder / name).mkdir()
        (folder / name / "config.json").write_text(config)
        if weights is not None:
            (folder / name / "model.safetensors").write_bytes(struct.pack("<Q", 10**6) + weights)
    good = folder / "good_weights"
    good.mkdir()
    (good / "config.json").write_text(json.dumps({**gpt2, "n_positions": 1024}))
    import numpy as np

    save_file({"wte.weight": np.zeros((2, 2), np.float32)}, str(good / "model.safetensors"))


def with_paths(overrides: list[str], folder: Path, case_id: str) -> list[str]:
    filled = [o.replace("{tmp}", str(folder / "inputs")) for o in overrides]
    return filled + [f"paths.output_dir={folder / 'runs' / case_id}", f"paths.cache_dir={folder / 'cache'}"]


@pytest.fixture(scope="module")
def driver_results(tmp_path_factory) -> tuple[Path, dict[str, dict]]:
    folder = tmp_path_factory.mktemp("bad_input")
    write_inputs(folder / "inputs")
    cases = [{"id": case_id, "overrides": with_paths(overrides, folder, case_id)}
             for case_id, overrides, _, _ in CASES]
    (folder / "cases.json").write_text(json.dumps(cases))
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1", "GPT_EXP_OFFLINE": "1"}
    done = subprocess.run([sys.executable, str(DRIVER), str(folder / "cases.json")], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=600)
    results = {}
    for line in done.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            results[record["id"]] = record
    assert len(results) == len(CASES), f"the driver stopped early:\n{done.stderr[-3000:]}"
    return folder, results


def test_the_table_covers_every_category_and_group():
    assert len(CASES) >= 50 and len({c[0] for c in CASES}) == len(CASES)
    named = " ".join(" ".join(overrides) for _, overrides, _, _ in CASES)
    for group in ("paths", "data", "tokenizer", "truncation", "task", "model", "device", "distributed", "precision",
                  "optimizer", "scheduler", "trainer", "logger", "seed"):
        assert f"{group}." in named or f"{group}=" in named, group


@pytest.mark.parametrize("case_id, overrides, expected, kind", CASES, ids=[c[0] for c in CASES])
def test_bad_invocation_is_refused_in_one_line(driver_results, case_id, overrides, expected, kind):
    folder, results = driver_results
    result = results[case_id]
    assert_refused(result["exit"], result["stderr"], expected)
    if kind == "config":
        assert result["seconds"] < CONFIG_SECONDS, f"{case_id} took {result['seconds']:.1f} s"
    run_dir = folder / "runs" / case_id
    assert not [name for name in WRITTEN if (run_dir / name).exists()], f"{case_id} wrote into {run_dir}"


def assert_refused(code: int, stderr: str, expected: str) -> None:
    lines = [line for line in stderr.splitlines() if line.strip()]  # data loading may show progress bars first
    errors = [line for line in lines if line.startswith(("config error: ", "data unavailable: "))]
    assert code == 2, f"exit code {code}:\n{stderr[-2000:]}"
    assert "Traceback" not in stderr, stderr[-2000:]
    assert len(errors) == 1 and lines[-1] == errors[0], stderr[-2000:]
    assert expected in errors[0], f"{expected!r} not in {errors[0]!r}"
    assert "Fix: " in errors[0], errors[0]


@pytest.mark.parametrize("case_id", SUBPROCESS_CASES)
def test_bad_invocation_from_the_command_line(tmp_path, case_id):
    overrides, expected = next((c[1], c[2]) for c in CASES if c[0] == case_id)
    run_dir = tmp_path / "run"
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "gpt_exp", *overrides, f"hydra.run.dir={run_dir}"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": ""})
    assert time.perf_counter() - start < CONFIG_SECONDS
    assert_refused(done.returncode, done.stderr, expected)
    left = sorted(p.name for p in run_dir.iterdir()) if run_dir.exists() else []
    assert set(left) <= {".hydra", "cli.log", "__main__.log"}, left


def test_hydra_full_error_keeps_the_traceback(tmp_path):
    done = subprocess.run([sys.executable, "-m", "gpt_exp", "model=gpt3", f"hydra.run.dir={tmp_path}"],
                          capture_output=True, text=True, cwd=ROOT, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(ROOT), "HYDRA_FULL_ERROR": "1"})
    assert done.returncode != 0 and "Traceback" in done.stderr and "model/gpt3" in done.stderr


# ---- and the good ones pass: every preset with every task, every group option

TASKS = ["lm", "classification", "entailment", "similarity", "multiple_choice", "summarization"]


@pytest.mark.parametrize("task", TASKS)
def test_debug_smoke_passes_the_check_with_every_task(task):
    check_settings(compose([f"task={task}", "debug=smoke"]))


@pytest.mark.parametrize("experiment", sorted(p.stem for p in (ROOT / "conf" / "experiment").glob("*.yaml")))
def test_every_experiment_passes_the_check(experiment, tmp_path):
    write_inputs(tmp_path)
    extra = {"gpt1_ablation": ["ablation.arm=scratch"],
             "summarization_zero_shot": [f"model.init_from={tmp_path / 'good_weights'}"],
             "summarization_finetune": [f"model.init_from={tmp_path / 'good_weights'}"],
             "gpt1_pretrain": [f"data.files.{split}={tmp_path / 'text.txt'}" for split in ("train", "validation", "test")]}
    check_settings(compose([f"experiment={experiment}", *extra.get(experiment, [])]))


@pytest.mark.parametrize("task", ["classification", "entailment", "similarity", "multiple_choice"])
def test_the_ablation_preset_passes_with_every_finetune_task(task):
    check_settings(compose(["experiment=gpt1_ablation", "ablation.arm=scratch", f"task={task}"]))


def test_every_group_option_passes_the_check(tmp_path):
    (tmp_path / "a.txt").write_text("text\n")
    # experiment and sweep presets need a pre-training run or a multirun: test_config and test_sweeps compose them
    for group in sorted(p.name for p in (ROOT / "conf").iterdir() if p.is_dir() and p.name not in ("hydra", "experiment", "sweep")):
        for option in sorted((ROOT / "conf" / group).glob("*.yaml")):
            extra = {"text_files": [f"data.files.train={tmp_path / 'a.txt'}"],
                     "summarization_files": [f"data.files.train={tmp_path / 'a.txt'}"],
                     "hub": ["tokenizer.name=gpt2"], "saved": [f"tokenizer.path={tmp_path}"]}.get(option.stem, [])
            check_settings(compose([f"{group}={option.stem}", *extra]))


def test_task_constructors_take_exactly_the_schema_keys():
    """The schema and the task classes declare the same keys, so a key reaches its code by name."""
    import dataclasses
    import inspect

    from hydra.utils import get_class

    from gpt_exp.config_schema import TASKS

    for target, task_schema in TASKS.items():
        parameters = set(inspect.signature(get_class(target)).parameters)
        declared = {f.name for f in dataclasses.fields(task_schema)} - {"_target_"}
        assert parameters == declared, (target, parameters ^ declared)
