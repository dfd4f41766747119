"""`python -m gpt_exp sample`: completions from a finished run's exported model, with no data and no new run.

Also what a user finds in that run afterwards: files they can read and copy, and, when a fine-tune starts
from it, records that name the model the weights really are.
"""
from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import ROOT, TINY, compose

from gpt_exp.errors import ConfigError
from gpt_exp.sample import OPTIONS, load, model_folder, sample
from gpt_exp.sample import complete as complete_with

PROMPT = "First Citizen:"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory, shakespeare_excerpt) -> Path:
    """A tiny GPT-1 LM run, trained once for the whole module."""
    from gpt_exp.run import train

    run = tmp_path_factory.mktemp("sample") / "gpt1-lm"
    train(compose(TINY + shakespeare_excerpt + ["model=gpt1-tiny", "trainer.max_steps=12", "trainer.eval_interval=12",
                                                "task.sample_prompts=[]"]), run, "gpt1-lm")
    return run


@pytest.fixture(scope="module")
def loaded(run_dir):
    """(model, tokenizer) as `sample` loads them, once: each load compiles the decoding graphs anew."""
    return load(model_folder(run_dir), device="cpu")


def complete(loaded, **options) -> list[str]:
    return complete_with(*loaded, **options)


@pytest.fixture(scope="module")
def greedy_text(loaded) -> str:
    return complete(loaded, prompt=PROMPT, strategy="greedy", max_new_tokens=12)[0]


def test_the_run_leaves_files_a_user_can_read_and_copy(run_dir):
    for path in [*(run_dir / "checkpoints").glob("*.ckpt"), run_dir / "model" / "model.safetensors"]:
        assert stat.S_IMODE(path.stat().st_mode) == 0o644, path  # MindSpore wrote 0400, safetensors 0600


def test_greedy_is_deterministic_and_the_budget_is_a_prefix(loaded, greedy_text):
    from gpt_exp.generate import generate

    # in tokens: a 12-step model's greedy text may be only newlines, which the printed text leaves out
    model, tokenizer = loaded
    prompt_ids = tokenizer.encode(PROMPT)
    twelve, three = (generate(model, [prompt_ids], max_new_tokens=n, strategy="greedy", eos_token_id=tokenizer.eos_id,
                              pad_token_id=tokenizer.pad_id)[0] for n in (12, 3))
    assert 0 < len(three) <= 3 and list(three) == list(twelve[:len(three)])
    assert greedy_text.startswith(PROMPT)
    assert complete(loaded, prompt=PROMPT, strategy="greedy", max_new_tokens=12) == [greedy_text]
    shorter = complete(loaded, prompt=PROMPT, strategy="greedy", max_new_tokens=3)
    assert len(shorter) == 1 and greedy_text.startswith(shorter[0])
    assert len(complete(loaded, prompt=PROMPT, strategy="beam", num_beams=3, max_new_tokens=6)) == 1


def test_a_seed_reproduces_its_samples_and_another_seed_differs(loaded):
    def draw(seed):
        return complete(loaded, num_samples=4, max_new_tokens=16, temperature=1.5, top_k=0, seed=seed)

    first = draw(1)
    assert len(first) == 4 and len(set(first)) > 1  # four independent draws, not one repeated
    assert draw(1) == first and draw(2) != first


@pytest.mark.parametrize("narrowing", [{"top_k": 1}, {"top_p": 1e-6}])
def test_sampling_narrowed_to_the_top_token_is_greedy(loaded, greedy_text, narrowing):
    texts = complete(loaded, prompt=PROMPT, num_samples=2, max_new_tokens=12, **narrowing)
    assert texts == [greedy_text] * 2


def test_an_hf_format_folder_samples_like_its_run(run_dir, greedy_text, tmp_path):
    """A folder as transformers' save_pretrained leaves it: config.json, weights, tokenizer.json + tokenizer_config.json."""
    folder = tmp_path / "hf"
    shutil.copytree(run_dir / "model", folder)
    (folder / "special_tokens.json").unlink()  # gpt_exp's own role file: the roles now come from tokenizer_config.json
    assert sample(folder, prompt=PROMPT, strategy="greedy", max_new_tokens=12, device="cpu") == [greedy_text]


def test_the_command_prints_the_text_and_writes_nothing(run_dir, greedy_text, tmp_path):
    before = sorted(p.relative_to(run_dir) for p in run_dir.rglob("*"))
    result = _cli(["sample", str(run_dir), f"prompt={PROMPT}", "strategy=greedy", "max_new_tokens=12", "device=cpu"],
                  cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout == greedy_text + "\n"
    assert "loaded in" in result.stderr
    assert sorted(p.relative_to(run_dir) for p in run_dir.rglob("*")) == before
    assert list(tmp_path.iterdir()) == []  # no outputs/, .hydra/ or wandb/ where it ran


def test_help_lists_every_option_with_its_default():
    result = _cli(["sample", "--help"])
    assert result.returncode == 0
    for name, option in OPTIONS.items():
        assert f"{name}={option.default if option.default != '' else repr('')}" in result.stdout


@pytest.mark.parametrize("args,message", [
    (["/no/such/run"], "sample /no/such/run: does not exist"),
    (["{run}", "temprature=0.5"], "temprature=0.5: `sample` has no option 'temprature'"),
    (["{run}", "top_k=many"], "top_k=many: not an int"),
    (["{run}", "strategy=nucleus"], "strategy=nucleus: must be a decoding strategy"),
    (["{run}", "temperature=0"], "temperature=0.0: must be above 0"),
    (["{run}", "top_p=1.5"], "top_p=1.5: must be in (0, 1]"),
    (["{run}", "num_samples=0"], "num_samples=0: must be at least 1"),
    (["{run}", "{run}"], "give exactly one run directory"),
    (["{unfinished}"], "this run has no exported model"),
])
def test_bad_input_is_one_config_error_line_and_exit_2(run_dir, tmp_path, args, message):
    unfinished = tmp_path / "unfinished"
    (unfinished / "checkpoints").mkdir(parents=True)
    (unfinished / "config.yaml").write_text("model: {name: gpt1-tiny}\n")
    result = _cli(["sample", *(a.format(run=run_dir, unfinished=unfinished) for a in args)])
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("config error: ") and message in lines[0], result.stderr
    assert "Fix:" in lines[0]


def test_the_python_call_checks_its_options_too(run_dir):
    with pytest.raises(ConfigError, match="num_beams=0"):
        sample(run_dir, strategy="beam", num_beams=0)
    with pytest.raises(ConfigError, match="no option 'beams'"):
        sample(run_dir, beams=2)


def _cli(args: list[str], cwd: Path = ROOT) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    return subprocess.run([sys.executable, "-m", "gpt_exp", *args], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=300)


# ---------------------------------------------------------------------------- labels of a run that loads weights

def test_the_source_model_name(run_dir, tmp_path):
    from gpt_exp.model.build import source_model_name

    assert source_model_name(None, "gpt2-tiny") == "gpt2-tiny"
    assert source_model_name(str(run_dir), "gpt2-tiny") == "gpt1-tiny"  # the run's own config.yaml
    shutil.copytree(run_dir / "model", tmp_path / "exported")
    assert source_model_name(str(tmp_path / "exported"), "gpt2-tiny") == "gpt1-2x64"  # no preset has this shape
    assert source_model_name("openai-gpt", "gpt2-tiny") == "openai-gpt"  # a hub id: its name, with no network
    assert source_model_name(str(tmp_path / "missing"), "gpt2-tiny") == "gpt2-tiny"  # check_config reports it


def test_a_finetune_is_named_and_recorded_by_the_model_it_loads(run_dir, tmp_path):
    """model=gpt2-tiny with the weights of a GPT-1 run: every record says gpt1-tiny, and where the weights came from."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from conftest import CONFIG_DIR
    from gpt_exp.run import train
    from gpt_exp.wandb_records import read_finished_run

    overrides = [o for o in TINY if not o.startswith(("data.", "task.max_seq_len", "logger.mode"))] + [
        "task=classification", "model=gpt2-tiny", f"model.init_from={run_dir}", "data.max_train_samples=16",
        "data.max_eval_samples=8", "task.max_seq_len=32", "trainer.max_steps=0", "logger.mode=offline"]
    with initialize_config_dir(version_base="1.3", config_dir=str(CONFIG_DIR)):
        hydra_cfg = hydra_compose(config_name="train", overrides=overrides, return_hydra_config=True)
    assert hydra_cfg.run_name == "gpt1-tiny-classification-fp32"
    assert hydra_cfg.hydra.run.dir.endswith("_gpt1-tiny-classification-fp32")  # the directory Hydra makes

    cfg = compose(overrides)
    finetune = tmp_path / "finetune"
    train(cfg, finetune, cfg.run_name)
    source = json.loads((run_dir / "model" / "config.json").read_text())
    saved = (finetune / "config.yaml").read_text()
    for line in ("name: gpt1-tiny", "arch: gpt1", f"n_layer: {source['n_layer']}", f"n_embd: {source['n_embd']}",
                 f"init_from: {run_dir}"):
        assert f"\n  {line}\n" in saved, line
    summary = json.loads((finetune / "summary.json").read_text())
    assert summary["init_from"] == str(run_dir) and summary["run_name"] == "gpt1-tiny-classification-fp32"
    wandb_run = read_finished_run(finetune)
    assert wandb_run["name"] == "gpt1-tiny-classification-fp32"
    assert {k: wandb_run["config"]["model"][k] for k in ("name", "arch", "n_embd")} == \
        {"name": "gpt1-tiny", "arch": "gpt1", "n_embd": source["n_embd"]}
