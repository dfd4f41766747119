"""Every option of every config group composes, and bad input fails fast with a message that names the fix."""
from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CONFIG_DIR, ROOT, compose
from omegaconf import OmegaConf

from gpt_exp.errors import ConfigError
from gpt_exp.run import check_config

GROUPS = sorted(p.name for p in CONFIG_DIR.iterdir() if p.is_dir() and p.name not in ("hydra", "local"))


def group_options():
    for group in GROUPS:
        for option in sorted((CONFIG_DIR / group).glob("*.yaml")):
            # a sweep preset is added to a multirun (`+sweep=grid`); the defaults list has no sweep
            yield f"{'+' if group == 'sweep' else ''}{group}={option.stem}"


@pytest.mark.parametrize("override", list(group_options()))
def test_every_group_option_composes_and_resolves(override):
    extra = ["data.files.train=README.md"] if override == "data=text_files" else []
    cfg = compose([override] + extra)
    OmegaConf.resolve(cfg)
    assert cfg.task.max_seq_len > 0 and cfg.model.n_layer > 0


def test_the_groups_the_issue_names_have_their_options():
    expected = {
        "model": {"gpt1", "gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl", "gpt1-tiny", "gpt2-tiny"},
        "device": {"cpu", "gpu", "ascend", "auto"},
        "truncation": {"head", "tail"},
        "precision": {"fp32"},
        "task": {"lm"},
    }
    for group, options in expected.items():
        present = {p.stem for p in (CONFIG_DIR / group).glob("*.yaml")}
        assert options <= present, f"{group} lacks {options - present}"


def test_paper_sizes():
    gpt1 = compose(["model=gpt1", "task=classification"]).model
    assert (gpt1.n_layer, gpt1.n_embd, gpt1.n_head, gpt1.n_positions, gpt1.dropout) == (12, 768, 12, 512, 0.1)
    assert compose(["model=gpt1"]).model.dropout == 0.0  # task=lm's short-run recipe turns dropout off
    sizes = {name: compose([f"model={name}"]).model for name in ("gpt2", "gpt2-medium", "gpt2-large", "gpt2-xl")}
    assert [(m.n_layer, m.n_embd) for m in sizes.values()] == [(12, 768), (24, 1024), (36, 1280), (48, 1600)]
    assert all(m.n_positions == 1024 for m in sizes.values())


def test_default_config_passes_the_checks():
    assert check_config(compose(["device=cpu"])) == "CPU"


def _error(overrides) -> str:
    start = time.perf_counter()
    with pytest.raises(ConfigError) as info:
        check_config(compose(overrides))
    assert time.perf_counter() - start < 10, "a config error must come before any long work"
    return str(info.value)


def test_ascend_on_a_machine_without_one():
    message = _error(["device=ascend"])
    assert "Ascend" in message and "device=cpu" in message


def test_max_seq_len_over_n_positions():
    message = _error(["model=gpt1-tiny", "task.max_seq_len=1024"])
    assert "task.max_seq_len=1024" in message and "model.n_positions=256" in message


def test_missing_data_file(tmp_path):
    message = _error(["data=text_files", f"data.files.train={tmp_path}/nope.txt"])
    assert "data.files.train" in message and "does not exist" in message


def test_unknown_builtin_dataset():
    assert "data.name='nope'" in _error(["data.name=nope"])


def test_hub_name_without_network_fails_fast():
    message = _error(["model.init_from=openai-community/gpt2"])
    assert "model.init_from" in message and "local folder" in message


def test_hub_dataset_without_network_fails_fast():
    message = _error(["data.name=null", "data.hub_id=karpathy/tiny_shakespeare"])
    assert "data.hub_id" in message and "data.files.train" in message


def test_console_script_is_installed():
    script = Path(sys.executable).with_name("gpt-exp")
    result = subprocess.run([str(script), "--cfg", "job", "model=gpt2"], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0 and "n_embd: 768" in result.stdout


def test_bf16_on_cpu_is_refused_with_the_reason():
    pytest.importorskip("mindspore")
    cfg = compose(["device=cpu"])
    cfg.precision.dtype = "bfloat16"
    with pytest.raises(ConfigError, match="bfloat16"):
        check_config(cfg)


def test_bad_trainer_value():
    assert "trainer.batch_size" in _error(["trainer.batch_size=0"])


def test_resume_needs_a_checkpoint(tmp_path):
    assert "trainer.resume" in _error([f"trainer.resume={tmp_path}"])


def _cli(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "gpt_exp", *args], capture_output=True, text=True,
                          cwd=ROOT, timeout=timeout)


def test_cli_help_lists_groups_and_options():
    out = _cli("--help").stdout
    for line in ("model: gpt1, gpt1-tiny, gpt2", "device: ascend, auto, cpu, gpu", "task: "):
        assert line in out


def test_cli_prints_the_composed_config():
    out = _cli("--cfg", "job", "model=gpt1-tiny", "task.max_seq_len=64").stdout
    cfg = OmegaConf.create(out)
    assert cfg.model.arch == "gpt1" and cfg.task.max_seq_len == 64


def test_cli_unknown_group_option_names_the_choices():
    result = _cli("model=gpt3")
    assert result.returncode != 0
    assert "model/gpt3" in result.stderr and "gpt2-tiny" in result.stderr


def test_cli_config_error_is_one_clear_line(tmp_path):
    result = _cli("device=ascend", f"hydra.run.dir={tmp_path}/run")
    assert result.returncode == 2
    assert "config error: device=ascend" in result.stderr
    assert "Traceback" not in result.stderr
